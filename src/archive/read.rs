//! Reading bundles. [`open_bundle`] recognises the compression by its magic bytes and refuses,
//! by name, anything that is not a tar archive (a zip, a text file, an ELF binary, …);
//! [`TarReader`] is a small tar reader written for hostile input: every header is
//! checksummed, metadata headers (PAX, GNU long names) are bounded, a member's content is read
//! only when the caller asks and never past its declared size, and [`TarReader::finish`] reads
//! the stream to its end so that the zstd frame checksum (or the gzip CRC) is verified.
//! The manifest is the first member; [`read_manifest`] decompresses only the start.

// Offsets and sizes here come from files: arithmetic on them is checked.
#![deny(clippy::arithmetic_side_effects)]

use std::fs::File;
use std::io::{BufReader, Cursor, Read};
use std::path::{Path, PathBuf};

use crate::archive::Error as ArchiveError;
use crate::error::{Error, Result, escape_bytes, escape_str};
use crate::manifest::{MANIFEST_PATH, Manifest, normalize_path};

/// The largest manifest gopack reads (256 MiB); a bigger one is refused before it is read.
pub const MANIFEST_LIMIT: u64 = 256 << 20;
/// The largest PAX extended header or GNU long name read.
const METADATA_LIMIT: u64 = 1 << 20;
/// Metadata headers allowed in a row before a member.
const METADATA_RUN: usize = 8;
/// How much may follow the end-of-archive marker (zeros only): GNU tar pads to 10 KiB records.
const TRAILER_LIMIT: u64 = 1 << 20;
const BLOCK: usize = 512;

/// The type of a tar member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A hard link to a member extracted earlier.
    HardLink,
    /// Anything else (devices, fifos, sparse files, …): the tar type flag.
    Other(u8),
}

impl MemberKind {
    /// The type as people call it.
    pub fn describe(self) -> String {
        match self {
            MemberKind::File => "a regular file".into(),
            MemberKind::Dir => "a directory".into(),
            MemberKind::Symlink => "a symlink".into(),
            MemberKind::HardLink => "a hard link".into(),
            MemberKind::Other(b'3') => "a character device".into(),
            MemberKind::Other(b'4') => "a block device".into(),
            MemberKind::Other(b'6') => "a fifo".into(),
            MemberKind::Other(b'S') => "a sparse file".into(),
            MemberKind::Other(flag) => format!("an entry of tar type `{}`", escape_bytes(&[flag])),
        }
    }
}

/// One member's header, with PAX and GNU long-name extensions applied.
#[derive(Debug, Clone)]
pub struct Member {
    /// The path as stored (not yet checked).
    pub path: Vec<u8>,
    /// Its type.
    pub kind: MemberKind,
    /// Permission bits as stored.
    pub mode: u32,
    /// Modification time in seconds.
    pub mtime: u64,
    /// Content size.
    pub size: u64,
    /// Link target (symlinks, hard links), empty otherwise.
    pub link: Vec<u8>,
}

impl Member {
    /// The path, escaped for messages.
    pub fn shown(&self) -> String {
        escape_bytes(&self.path)
    }
}

/// A decompressed tar stream read member by member.
pub struct TarReader {
    bundle: PathBuf,
    inner: Box<dyn Read>,
    /// Content bytes of the current member not read yet.
    remaining: u64,
    /// Padding after the current member's content.
    padding: u64,
    /// Bytes of the tar stream consumed.
    offset: u64,
    ended: bool,
}

impl TarReader {
    fn bad(&self, message: impl Into<String>) -> Error {
        ArchiveError::BadBundle {
            path: self.bundle.clone(),
            message: message.into(),
        }
        .into()
    }

    fn read_error(&self, err: &std::io::Error) -> Error {
        if err.kind() == std::io::ErrorKind::UnexpectedEof {
            self.bad(format!(
                "truncated: the archive ends at byte {} of its tar stream",
                self.offset
            ))
        } else {
            self.bad(format!(
                "corrupt or truncated bundle (at byte {} of its tar stream): {}",
                self.offset,
                escape_str(&err.to_string())
            ))
        }
    }

    /// Reads exactly `buffer.len()` bytes.
    fn read_exact(&mut self, buffer: &mut [u8]) -> Result<()> {
        match self.inner.read_exact(buffer) {
            Ok(()) => {
                self.offset = self.offset.saturating_add(buffer.len() as u64);
                Ok(())
            }
            Err(err) => Err(self.read_error(&err)),
        }
    }

    /// Discards `count` bytes.
    fn skip(&mut self, count: u64) -> Result<()> {
        let copied = std::io::copy(&mut (&mut self.inner).take(count), &mut std::io::sink())
            .map_err(|err| self.read_error(&err))?;
        self.offset = self.offset.saturating_add(copied);
        if copied != count {
            return Err(self.read_error(&std::io::ErrorKind::UnexpectedEof.into()));
        }
        Ok(())
    }

    /// The next member's header, or `None` at the end-of-archive marker. Content the caller
    /// did not read of the previous member is skipped.
    ///
    /// # Errors
    /// [`ArchiveError::BadBundle`] for corrupt, truncated or unsupported headers.
    pub fn next_member(&mut self) -> Result<Option<Member>> {
        if self.ended {
            return Ok(None);
        }
        // `remaining` comes from the header (a PAX size may be any u64).
        let rest = self
            .remaining
            .checked_add(self.padding)
            .ok_or_else(|| self.bad("a member's size is too large"))?;
        self.skip(rest)?;
        self.remaining = 0;
        self.padding = 0;
        let mut ext = Extensions::default();
        for _ in 0..=METADATA_RUN {
            let at = self.offset;
            let mut block = [0u8; BLOCK];
            self.read_exact(&mut block)?;
            if block.iter().all(|&b| b == 0) {
                self.ended = true;
                return Ok(None);
            }
            let header = parse_header(&block)
                .map_err(|reason| self.bad(format!("corrupt tar header at byte {at}: {reason}")))?;
            match header.flag {
                b'x' | b'g' | b'L' | b'K' => {
                    if header.size > METADATA_LIMIT {
                        return Err(self.bad(format!(
                            "an extended tar header at byte {at} is {} bytes; at most {METADATA_LIMIT} are read",
                            header.size
                        )));
                    }
                    let mut data = vec![0u8; header.size as usize];
                    self.read_exact(&mut data)?;
                    self.skip(padding(header.size))?;
                    match header.flag {
                        b'x' => ext.pax(&data).map_err(|reason| {
                            self.bad(format!("corrupt PAX header at byte {at}: {reason}"))
                        })?,
                        b'g' => {
                            let mut global = Extensions::default();
                            global.pax(&data).map_err(|reason| {
                                self.bad(format!("corrupt PAX header at byte {at}: {reason}"))
                            })?;
                            if global.path.is_some()
                                || global.link.is_some()
                                || global.size.is_some()
                            {
                                return Err(self.bad(format!(
                                    "a global PAX header at byte {at} sets paths or sizes for every member; gopack does not write these"
                                )));
                            }
                        }
                        b'L' => ext.path = Some(trim_nul(&data).to_vec()),
                        _ => ext.link = Some(trim_nul(&data).to_vec()),
                    }
                }
                flag => {
                    let size = ext.size.unwrap_or(header.size);
                    let kind = match flag {
                        b'0' | b'\0' | b'7' => MemberKind::File,
                        b'1' => MemberKind::HardLink,
                        b'2' => MemberKind::Symlink,
                        b'5' => MemberKind::Dir,
                        other => MemberKind::Other(other),
                    };
                    let member = Member {
                        path: ext.path.unwrap_or(header.path),
                        kind,
                        mode: header.mode,
                        mtime: ext.mtime.unwrap_or(header.mtime),
                        size,
                        link: ext.link.unwrap_or(header.link),
                    };
                    // Only a regular file's content is ever read; anything else must have none.
                    if member.kind != MemberKind::File && member.size != 0 {
                        return Err(self.bad(format!(
                            "`{}` is {} with {} bytes of content",
                            member.shown(),
                            member.kind.describe(),
                            member.size
                        )));
                    }
                    self.remaining = size;
                    self.padding = padding(size);
                    return Ok(Some(member));
                }
            }
        }
        Err(self.bad(format!(
            "more than {METADATA_RUN} extended tar headers in a row"
        )))
    }

    /// Reads the current member's content; `Ok(0)` once its declared size is read.
    ///
    /// # Errors
    /// [`ArchiveError::BadBundle`] when the stream is corrupt or ends early.
    pub fn read_content(&mut self, buffer: &mut [u8]) -> Result<usize> {
        if self.remaining == 0 || buffer.is_empty() {
            return Ok(0);
        }
        let want = (buffer.len() as u64).min(self.remaining) as usize;
        let read = loop {
            match self.inner.read(&mut buffer[..want]) {
                Ok(read) => break read,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(err) => return Err(self.read_error(&err)),
            }
        };
        if read == 0 {
            return Err(self.read_error(&std::io::ErrorKind::UnexpectedEof.into()));
        }
        // `read` is at most `want`, which is at most `remaining`.
        self.remaining = self.remaining.saturating_sub(read as u64);
        self.offset = self.offset.saturating_add(read as u64);
        Ok(read)
    }

    /// After the end-of-archive marker: reads the rest of the stream, which must be zeros, to
    /// its end, so that the decompressor checks the zstd frame checksum or the gzip CRC.
    ///
    /// # Errors
    /// [`ArchiveError::BadBundle`] when the marker was not reached, data follows it, or the
    /// compressed stream's check fails.
    pub fn finish(mut self) -> Result<()> {
        if !self.ended {
            return Err(self.bad("the archive was not read to its end"));
        }
        let mut buffer = vec![0u8; 64 * 1024];
        let mut trailer = 0u64;
        loop {
            let read = match self.inner.read(&mut buffer) {
                Ok(0) => return Ok(()),
                Ok(read) => read,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(self.read_error(&err)),
            };
            trailer = trailer.saturating_add(read as u64);
            self.offset = self.offset.saturating_add(read as u64);
            if trailer > TRAILER_LIMIT || buffer[..read].iter().any(|&b| b != 0) {
                return Err(self.bad(
                    "data follows the end of the archive: the bundle was altered or is not gopack's",
                ));
            }
        }
    }
}

fn padding(size: u64) -> u64 {
    match size.checked_rem(BLOCK as u64).unwrap_or(0) {
        0 => 0,
        partial => (BLOCK as u64).saturating_sub(partial),
    }
}

fn trim_nul(data: &[u8]) -> &[u8] {
    match data.iter().rposition(|&b| b != 0) {
        Some(last) => &data[..=last],
        None => &[],
    }
}

/// Values from PAX extended headers and GNU long names for the next member.
#[derive(Default)]
struct Extensions {
    path: Option<Vec<u8>>,
    link: Option<Vec<u8>>,
    size: Option<u64>,
    mtime: Option<u64>,
}

impl Extensions {
    /// Applies PAX records (`LEN key=value\n`); keys gopack does not need are ignored.
    fn pax(&mut self, mut data: &[u8]) -> std::result::Result<(), String> {
        while !data.is_empty() {
            let space = data
                .iter()
                .position(|&b| b == b' ')
                .ok_or("a record without a length")?;
            let len: usize = std::str::from_utf8(&data[..space])
                .ok()
                .and_then(|text| text.parse().ok())
                .ok_or("a record with a bad length")?;
            // `LEN key=value\n`: LEN counts the whole record, its own digits included.
            let record = (len <= data.len() && data.get(len.wrapping_sub(1)) == Some(&b'\n'))
                .then(|| data.get(space..len.saturating_sub(1)))
                .flatten()
                .and_then(|rest| rest.strip_prefix(b" "))
                .ok_or("a record with a bad length")?;
            let equals = record
                .iter()
                .position(|&b| b == b'=')
                .ok_or("a record without `=`")?;
            let (key, value) = (&record[..equals], &record[equals..][1..]);
            let number = |value: &[u8]| -> std::result::Result<u64, String> {
                let text = std::str::from_utf8(value).map_err(|_| "a bad number")?;
                let whole = text.split('.').next().unwrap_or_default();
                whole.parse().map_err(|_| "a bad number".to_string())
            };
            match key {
                b"path" => self.path = Some(value.to_vec()),
                b"linkpath" => self.link = Some(value.to_vec()),
                b"size" => self.size = Some(number(value)?),
                b"mtime" => self.mtime = Some(number(value).unwrap_or(0)),
                _ => {}
            }
            data = &data[len..];
        }
        Ok(())
    }
}

/// The fields of one 512-byte header.
struct RawHeader {
    path: Vec<u8>,
    mode: u32,
    size: u64,
    mtime: u64,
    flag: u8,
    link: Vec<u8>,
}

/// Whether a block is a tar header: its checksum matches (as an unsigned or, like old tars,
/// a signed byte sum).
fn checksum_matches(block: &[u8; BLOCK]) -> bool {
    let Ok(stored) = number(&block[148..156]) else {
        return false;
    };
    let mut unsigned: u64 = 0;
    let mut signed: i64 = 0;
    for (i, &byte) in block.iter().enumerate() {
        let byte = if (148..156).contains(&i) { b' ' } else { byte };
        // 512 bytes cannot overflow either sum.
        unsigned = unsigned.wrapping_add(u64::from(byte));
        signed = signed.wrapping_add(i64::from(byte as i8));
    }
    stored == unsigned || i64::try_from(stored).is_ok_and(|stored| stored == signed)
}

fn parse_header(block: &[u8; BLOCK]) -> std::result::Result<RawHeader, String> {
    if !checksum_matches(block) {
        return Err("bad checksum".into());
    }
    let field = |range: std::ops::Range<usize>| trim_at_nul(&block[range]).to_vec();
    let mut path = field(0..100);
    // POSIX ustar keeps the start of long paths in `prefix`; GNU tar's `ustar  ` header uses
    // that space for other fields.
    if &block[257..263] == b"ustar\0" {
        let prefix = field(345..500);
        if !prefix.is_empty() {
            path = [prefix, b"/".to_vec(), path].concat();
        }
    }
    let numeric = |range: std::ops::Range<usize>, what: &str| {
        number(&block[range]).map_err(|reason| format!("{what}: {reason}"))
    };
    let mode = numeric(100..108, "mode")?;
    Ok(RawHeader {
        path,
        mode: u32::try_from(mode & 0o7777).unwrap_or(0),
        size: numeric(124..136, "size")?,
        mtime: numeric(136..148, "mtime")?,
        flag: block[156],
        link: field(157..257),
    })
}

fn trim_at_nul(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    &field[..end]
}

/// A numeric header field: octal digits (space or NUL padded), or GNU's base-256 form.
fn number(field: &[u8]) -> std::result::Result<u64, String> {
    if field.first().is_some_and(|&b| b & 0x80 != 0) {
        if field[0] != 0x80 {
            return Err("a negative or oversized binary number".into());
        }
        let mut value: u64 = 0;
        for &byte in &field[1..] {
            value = value
                .checked_mul(256)
                .and_then(|v| v.checked_add(u64::from(byte)))
                .ok_or("a number too large")?;
        }
        return Ok(value);
    }
    let text = field
        .iter()
        .position(|&b| b != b' ' && b != 0)
        .map_or(&field[..0], |start| &field[start..]);
    let end = text
        .iter()
        .position(|&b| b == b' ' || b == 0)
        .unwrap_or(text.len());
    if text[end..].iter().any(|&b| b != b' ' && b != 0) {
        return Err("not an octal number".into());
    }
    let mut value: u64 = 0;
    for &digit in &text[..end] {
        let digit = char::from(digit).to_digit(8).ok_or("not an octal number")?;
        value = value
            .checked_mul(8)
            .and_then(|v| v.checked_add(u64::from(digit)))
            .ok_or("a number too large")?;
    }
    Ok(value)
}

/// Reads up to `BLOCK` bytes from the start of `reader` (fewer only at its end).
fn read_head(reader: &mut dyn Read) -> std::io::Result<Vec<u8>> {
    let mut head = vec![0u8; BLOCK];
    let filled = crate::stream::read_full(reader, &mut head)?;
    head.truncate(filled);
    Ok(head)
}

fn is_tar_head(head: &[u8]) -> bool {
    match <&[u8; BLOCK]>::try_from(head) {
        Ok(block) => block.iter().all(|&b| b == 0) || checksum_matches(block),
        Err(_) => false,
    }
}

/// What a file that is not a tar archive is, from its first bytes, as a noun phrase.
pub fn identify(head: &[u8]) -> &'static str {
    const MAGIC: &[(&[u8], &str)] = &[
        (b"PK\x03\x04", "a zip archive"),
        (b"PK\x05\x06", "an empty zip archive"),
        (b"PK\x07\x08", "a zip archive"),
        (b"\xfd7zXZ\x00", "an xz-compressed file"),
        (b"BZh", "a bzip2-compressed file"),
        (b"7z\xbc\xaf\x27\x1c", "a 7z archive"),
        (b"Rar!\x1a\x07", "a RAR archive"),
        (b"\x04\x22\x4d\x18", "an lz4-compressed file"),
        (b"\x5d\x00\x00", "an lzma-compressed file"),
        (b"LZIP", "an lzip-compressed file"),
        (b"\x7fELF", "an ELF executable or library"),
        (b"\xcf\xfa\xed\xfe", "a Mach-O executable or library"),
        (b"\xce\xfa\xed\xfe", "a Mach-O executable or library"),
        (
            b"\xca\xfe\xba\xbe",
            "a Mach-O universal binary or a Java class file",
        ),
        (b"MZ", "a Windows executable"),
        (b"%PDF", "a PDF document"),
        (b"\x89PNG", "a PNG image"),
        (b"\xff\xd8\xff", "a JPEG image"),
        (b"GIF8", "a GIF image"),
        (b"SQLite format 3\x00", "an SQLite database"),
        (b"!<arch>\n", "an ar archive (a .deb or a static library)"),
        (b"\xed\xab\xee\xdb", "an RPM package"),
        (b"\x1f\x8b", "gzip-compressed data"),
        (b"\x28\xb5\x2f\xfd", "zstd-compressed data"),
    ];
    if head.is_empty() {
        return "an empty file";
    }
    if let Some((_, what)) = MAGIC.iter().find(|(magic, _)| head.starts_with(magic)) {
        return what;
    }
    let text = match std::str::from_utf8(head) {
        Ok(text) => Some(text),
        // A multi-byte character cut at the end of the sample is still text.
        Err(err) if err.error_len().is_none() => {
            std::str::from_utf8(&head[..err.valid_up_to()]).ok()
        }
        Err(_) => None,
    };
    match text {
        Some(text) if !text.contains('\0') => {
            let start = text.trim_start().to_ascii_lowercase();
            if start.starts_with("<!doctype html") || start.starts_with("<html") {
                "an HTML page (a failed download?)"
            } else if start.starts_with("<?xml") {
                "an XML document"
            } else if start.starts_with('{') || start.starts_with('[') {
                "a JSON or text file"
            } else if start.starts_with("#!") {
                "a script"
            } else {
                "a text file"
            }
        }
        _ => "data of an unknown kind",
    }
}

/// Opens `path` as a decompressed tar stream, recognising zstd, gzip and plain tar by their
/// first bytes.
///
/// # Errors
/// [`ArchiveError::NotABundle`] naming what the file is when it is not a (compressed) tar archive;
/// [`ArchiveError::BadBundle`] when it cannot be read or its start is corrupt.
// Its errors name the bundle already; fs-err's would name it twice. (`allow`, not `expect`:
// the lint is configured only in CI, `.ci/clippy.toml`.)
#[allow(clippy::disallowed_methods)]
pub fn open_bundle(path: &Path) -> Result<TarReader> {
    let bad = |message: String| ArchiveError::BadBundle {
        path: path.to_path_buf(),
        message,
    };
    let not_a_bundle = |what: &str| ArchiveError::NotABundle {
        path: path.to_path_buf(),
        what: what.to_string(),
    };
    // The error names the bundle already: the plain I/O error, not fs-err's, follows it.
    let meta = std::fs::metadata(path).map_err(|err| bad(format!("cannot open it: {err}")))?;
    if meta.is_dir() {
        return Err(not_a_bundle("a directory").into());
    }
    let file = File::open(path).map_err(|err| bad(format!("cannot open it: {err}")))?;
    let mut file = BufReader::with_capacity(1 << 20, file);
    let mut head = read_head(&mut file).map_err(|err| bad(format!("cannot read it: {err}")))?;
    // A self-extracting installer (`create --format sh`): the bundle starts at its offset.
    if let Some(offset) = installer_payload_offset(&head) {
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(offset))
            .map_err(|err| bad(format!("cannot read it: {err}")))?;
        head = read_head(&mut file).map_err(|err| bad(format!("cannot read it: {err}")))?;
    }
    // `decoded` is the tar stream after `tar_head`, its first block.
    let (compression, tar_head, decoded): (Option<&str>, Vec<u8>, Box<dyn Read>) =
        if head.starts_with(b"\x28\xb5\x2f\xfd") || head.starts_with(b"\x1f\x8b") {
            let raw = Cursor::new(head.clone()).chain(file);
            let (name, mut decoded): (&str, Box<dyn Read + Send>) = if head.starts_with(b"\x1f\x8b")
            {
                ("gzip", Box::new(flate2::read::GzDecoder::new(raw)))
            } else {
                let decoder = zstd::Decoder::new(raw).map_err(|err| bad(format!("zstd: {err}")))?;
                ("zstd", Box::new(decoder))
            };
            let tar_head = read_head(&mut decoded).map_err(|err| {
                bad(format!(
                    "its {name} data is corrupt or truncated: {}",
                    escape_str(&err.to_string())
                ))
            })?;
            // Decompression runs ahead on its own thread while the caller hashes and writes.
            (Some(name), tar_head, Box::new(ReadAhead::new(decoded)))
        } else {
            (None, head, Box::new(file))
        };
    if !is_tar_head(&tar_head) {
        let what = match compression {
            Some("zstd") => "zstd-compressed data that is not a tar archive".to_string(),
            Some(_) => "gzip-compressed data that is not a tar archive".to_string(),
            None => identify(&tar_head).to_string(),
        };
        return Err(not_a_bundle(&what).into());
    }
    Ok(TarReader {
        bundle: path.to_path_buf(),
        inner: Box::new(Cursor::new(tar_head).chain(decoded)),
        remaining: 0,
        padding: 0,
        offset: 0,
        ended: false,
    })
}

/// Reads `inner` on a thread of its own, up to [`READ_AHEAD`] chunks ahead of the caller. The
/// thread ends at the end of `inner`, at its first error (passed on), or when the reader is
/// dropped.
struct ReadAhead {
    chunks: std::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
    /// Chunks read to their end go back to the thread to be filled again: no 1 MiB allocation
    /// (an `mmap` and its page faults, at this size) per chunk of a large bundle.
    spent: std::sync::mpsc::Sender<Vec<u8>>,
    current: Cursor<Vec<u8>>,
    done: bool,
}

/// Chunks in flight between the decompressing thread and the reader.
const READ_AHEAD: usize = 4;
/// Size of one chunk.
const CHUNK: usize = 1 << 20;

impl ReadAhead {
    fn new(mut inner: Box<dyn Read + Send>) -> ReadAhead {
        let (sender, chunks) = std::sync::mpsc::sync_channel(READ_AHEAD);
        let (spent, recycled) = std::sync::mpsc::channel::<Vec<u8>>();
        std::thread::spawn(move || {
            loop {
                let mut chunk = recycled.try_recv().unwrap_or_default();
                chunk.resize(CHUNK, 0);
                match crate::stream::read_full(&mut inner, &mut chunk) {
                    Ok(filled) => {
                        chunk.truncate(filled);
                        // A short chunk is the last one.
                        if (filled > 0 && sender.send(Ok(chunk)).is_err()) || filled < CHUNK {
                            return;
                        }
                    }
                    Err(err) => {
                        let _ = sender.send(Err(err));
                        return;
                    }
                }
            }
        });
        ReadAhead {
            chunks,
            spent,
            current: Cursor::new(Vec::new()),
            done: false,
        }
    }
}

impl Read for ReadAhead {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let read = self.current.read(buffer)?;
            if read > 0 || buffer.is_empty() || self.done {
                return Ok(read);
            }
            match self.chunks.recv() {
                Ok(Ok(chunk)) => {
                    let spent = std::mem::replace(&mut self.current, Cursor::new(chunk));
                    // The thread may have ended already; the chunk is then simply freed.
                    let _ = self.spent.send(spent.into_inner());
                }
                Ok(Err(err)) => {
                    self.done = true;
                    return Err(err);
                }
                // The thread ended after the last chunk.
                Err(_) => self.done = true,
            }
        }
    }
}

/// The start of a bundle: the manifest (validated), its raw bytes and header, the directory
/// that holds the environment inside the archive (`--arcroot`, empty without), and the
/// directory members that came before the manifest (`.gopack/`), for the caller to verify.
pub struct Leading {
    /// The parsed, validated manifest.
    pub manifest: Manifest,
    /// Its bytes as stored.
    pub bytes: Vec<u8>,
    /// Its member header.
    pub member: Member,
    /// The archive's root directory with a trailing `/`, or empty.
    pub arcroot: Vec<u8>,
    /// Directory members before the manifest.
    pub before: Vec<Member>,
}

/// Reads members up to and including the manifest: only the `.gopack` directory may come
/// before it, and it is at most [`MANIFEST_LIMIT`] bytes.
///
/// # Errors
/// [`ArchiveError::BadBundle`] when the bundle does not start with a readable, valid manifest.
pub fn read_leading(reader: &mut TarReader) -> Result<Leading> {
    let not_gopack = |reader: &TarReader| {
        reader.bad(format!(
            "`{MANIFEST_PATH}` is not its first member: it was not written by gopack"
        ))
    };
    let mut before: Vec<Member> = Vec::new();
    loop {
        let Some(member) = reader.next_member()? else {
            return Err(reader.bad(format!(
                "no `{MANIFEST_PATH}` at its start: it was not written by gopack"
            )));
        };
        let Ok(name) = normalize_path(&member.path) else {
            return Err(not_gopack(reader));
        };
        let arcroot = if name == MANIFEST_PATH.as_bytes() {
            Some(Vec::new())
        } else {
            name.strip_suffix(format!("/{MANIFEST_PATH}").as_bytes())
                .map(|root| [root, b"/"].concat())
        };
        match (arcroot, member.kind) {
            (Some(arcroot), MemberKind::File) => {
                if member.size > MANIFEST_LIMIT {
                    return Err(reader.bad(format!(
                        "its manifest is {} bytes; gopack reads manifests of at most {} MiB",
                        member.size,
                        MANIFEST_LIMIT >> 20
                    )));
                }
                let mut bytes = vec![0u8; member.size as usize];
                let mut filled = 0;
                while filled < bytes.len() {
                    let read = reader.read_content(&mut bytes[filled..])?;
                    filled = filled.saturating_add(read);
                }
                let manifest =
                    Manifest::from_json(&bytes).map_err(|message| reader.bad(message))?;
                let gopack_dir = [arcroot.as_slice(), b".gopack"].concat();
                if before
                    .iter()
                    .any(|dir| normalize_path(&dir.path).ok().as_deref() != Some(&gopack_dir))
                {
                    return Err(not_gopack(reader));
                }
                return Ok(Leading {
                    manifest,
                    bytes,
                    member,
                    arcroot,
                    before,
                });
            }
            (None, MemberKind::Dir) if before.is_empty() => before.push(member),
            _ => return Err(not_gopack(reader)),
        }
    }
}

/// Reads the manifest from the start of a bundle without extracting anything.
///
/// # Errors
/// [`ArchiveError::NotABundle`], or [`ArchiveError::BadBundle`] when the first member is not a readable,
/// valid gopack manifest.
pub fn read_manifest(path: &Path) -> Result<Manifest> {
    let mut reader = open_bundle(path)?;
    Ok(read_leading(&mut reader)?.manifest)
}

/// How every self-extracting installer ([`crate::installer`]) starts, up to the payload offset's digits.
pub const INSTALLER_MAGIC: &[u8] = b"#!/bin/sh\n# gopack self-extracting installer\ngi_offset=";

/// The payload's offset in an installer that starts with `head`, or `None` when `head` is not
/// the start of a gopack installer.
pub fn installer_payload_offset(head: &[u8]) -> Option<u64> {
    let rest = head.strip_prefix(INSTALLER_MAGIC)?;
    let digits: Vec<u8> = rest
        .iter()
        .copied()
        .take_while(u8::is_ascii_digit)
        .collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::header::{Member as Out, write_header, write_padding};
    use tar::EntryType;

    /// Path, type, link target, content.
    type Spec<'a> = (&'a [u8], EntryType, &'a [u8], &'a [u8]);

    fn archive(members: &[Spec<'_>]) -> Vec<u8> {
        let mut out = Vec::new();
        for (path, entry_type, link, data) in members {
            let member = Out {
                path,
                entry_type: *entry_type,
                mode: 0o640,
                mtime: 9,
                size: data.len() as u64,
                link: (!link.is_empty()).then_some(*link),
            };
            write_header(&mut out, &member).unwrap();
            out.extend_from_slice(data);
            write_padding(&mut out, data.len() as u64).unwrap();
        }
        out.extend_from_slice(&[0u8; 1024]);
        out
    }

    fn reader(bytes: Vec<u8>) -> TarReader {
        TarReader {
            bundle: PathBuf::from("b.tar"),
            inner: Box::new(Cursor::new(bytes)),
            remaining: 0,
            padding: 0,
            offset: 0,
            ended: false,
        }
    }

    #[test]
    fn reads_what_the_writer_writes_including_pax_paths_and_links() {
        let long = [b"dir/".to_vec(), vec![b'n'; 300]].concat();
        let long_link = vec![b'l'; 150];
        let bytes = archive(&[
            (b"a.txt", EntryType::Regular, b"", b"hello"),
            (&long, EntryType::Regular, b"", b"x"),
            (b"d", EntryType::Directory, b"", b""),
            (b"s", EntryType::Symlink, &long_link, b""),
            (b"h", EntryType::Link, b"a.txt", b""),
        ]);
        let mut tar = reader(bytes);
        let first = tar.next_member().unwrap().unwrap();
        assert_eq!(
            (
                first.path.as_slice(),
                first.kind,
                first.mode,
                first.mtime,
                first.size
            ),
            (&b"a.txt"[..], MemberKind::File, 0o640, 9, 5)
        );
        let mut buffer = [0u8; 3];
        assert_eq!(tar.read_content(&mut buffer).unwrap(), 3);
        // The rest of `a.txt` is skipped.
        let second = tar.next_member().unwrap().unwrap();
        assert_eq!(second.path, long);
        let mut content = Vec::new();
        let mut chunk = [0u8; 16];
        loop {
            let read = tar.read_content(&mut chunk).unwrap();
            if read == 0 {
                break;
            }
            content.extend_from_slice(&chunk[..read]);
        }
        assert_eq!(content, b"x");
        let dir = tar.next_member().unwrap().unwrap();
        assert_eq!(
            (dir.path.as_slice(), dir.kind),
            (&b"d/"[..], MemberKind::Dir)
        );
        let link = tar.next_member().unwrap().unwrap();
        assert_eq!(
            (link.kind, link.link.clone()),
            (MemberKind::Symlink, long_link)
        );
        let hard = tar.next_member().unwrap().unwrap();
        assert_eq!(
            (hard.kind, hard.link.as_slice()),
            (MemberKind::HardLink, &b"a.txt"[..])
        );
        assert!(tar.next_member().unwrap().is_none());
        tar.finish().unwrap();
    }

    #[test]
    fn corrupt_headers_truncation_and_trailing_data_are_errors() {
        let good = archive(&[(b"a", EntryType::Regular, b"", b"abc")]);
        let mut flipped = good.clone();
        flipped[10] ^= 1;
        let err = reader(flipped).next_member().unwrap_err().to_string();
        assert!(err.contains("bad checksum"), "{err}");

        let mut tar = reader(good[..514].to_vec());
        tar.next_member().unwrap().unwrap();
        let mut buffer = [0u8; 8];
        let err = loop {
            match tar.read_content(&mut buffer) {
                Ok(0) => panic!("read past the end"),
                Ok(_) => {}
                Err(err) => break err.to_string(),
            }
        };
        assert!(err.contains("truncated"), "{err}");

        let mut trailing = good.clone();
        trailing.extend_from_slice(b"junk");
        let mut tar = reader(trailing);
        while tar.next_member().unwrap().is_some() {}
        let err = tar.finish().unwrap_err().to_string();
        assert!(err.contains("follows the end"), "{err}");
    }

    #[test]
    fn huge_extended_headers_are_refused_unread() {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(EntryType::XHeader);
        header.set_size(1 << 40);
        header.set_cksum();
        let mut bytes = header.as_bytes().to_vec();
        bytes.extend_from_slice(&[b'9'; 512]);
        let err = reader(bytes).next_member().unwrap_err().to_string();
        assert!(err.contains("at most"), "{err}");
    }

    #[test]
    fn a_pax_size_at_the_top_of_u64_is_an_error_not_an_overflow() {
        // A PAX record can declare any u64 size; skipping such a member's content and padding
        // must not wrap around to a small count (or panic).
        let record = "29 size=18446744073709551615\n";
        let mut pax = tar::Header::new_ustar();
        pax.set_entry_type(EntryType::XHeader);
        pax.set_size(record.len() as u64);
        pax.set_cksum();
        let mut bytes = pax.as_bytes().to_vec();
        bytes.extend_from_slice(record.as_bytes());
        bytes.resize(1024, 0);
        bytes.extend(archive(&[(b"a", EntryType::Regular, b"", b"abc")]));
        let mut tar = reader(bytes);
        let huge = tar.next_member().unwrap().unwrap();
        assert_eq!(huge.size, u64::MAX);
        let err = tar.next_member().unwrap_err().to_string();
        assert!(err.contains("too large"), "{err}");
    }

    #[test]
    fn numbers_octal_and_base256() {
        assert_eq!(number(b"0000644\0").unwrap(), 0o644);
        assert_eq!(number(b"   17 \0").unwrap(), 0o17);
        assert_eq!(number(b"\0\0\0\0").unwrap(), 0);
        assert!(number(b"12x4\0").is_err());
        assert!(number(b"1 2\0").is_err());
        assert_eq!(number(&[0x80, 0, 0, 1, 0]).unwrap(), 256);
        assert!(number(&[0xff, 0xff]).is_err());
        assert!(number(&[0x80, 1, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn identifies_common_non_bundles() {
        assert_eq!(identify(b""), "an empty file");
        assert_eq!(identify(b"PK\x03\x04rest"), "a zip archive");
        assert_eq!(identify(b"\x7fELF\x02\x01"), "an ELF executable or library");
        assert_eq!(identify(b"hello world\n"), "a text file");
        assert_eq!(identify("caf\u{e9}".as_bytes()), "a text file");
        assert_eq!(identify(b"\x00\x9f\x92\x01"), "data of an unknown kind");
        assert_eq!(
            identify(b"<!DOCTYPE html>"),
            "an HTML page (a failed download?)"
        );
    }
}
