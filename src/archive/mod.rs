//! Writing the bundle: [`write_bundle`] streams the plan's entries, in order, through
//! deterministic tar headers into zstd (multi-threaded, with frame checksums), gzip or plain tar,
//! into a temporary file beside the output that is renamed into place only when complete.

mod error;
pub mod gzip;
pub mod header;
pub mod read;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use tar::EntryType;

use crate::error::Result;
use crate::plan::{Body, Plan, PlannedEntry};
use crate::progress::Reporter;
use crate::relocate::Edit;
use crate::scan::EntryKind;
use crate::scan::Error as ScanError;
use crate::stream::{CHUNK, read_full};
pub use error::Error;
use header::{Member, write_header, write_padding};

/// The archive formats gopack writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Format {
    /// zstd-compressed tar (the default).
    TarZst,
    /// gzip-compressed tar, for tools that only take gz (Spark/YARN).
    TarGz,
    /// Uncompressed tar.
    Tar,
    /// A container image in one tar that is both an OCI image layout and a docker archive
    /// (written by [`crate::oci`]).
    Oci,
    /// A container image as an OCI image layout directory (written by [`crate::oci`]).
    OciDir,
    /// A self-extracting installer: a POSIX sh header followed by a gzip-compressed tar
    /// (written by [`crate::installer`]).
    Sh,
    /// A self-extracting installer whose payload is zstd-compressed (`--payload zstd`).
    ShZstd,
}

impl Format {
    /// Chooses the format from a name (`tar.zst`, `tzst`, `tar.gz`, `tgz`, `tar`, `oci`,
    /// `oci.tar`, `oci-dir`).
    pub fn from_name(name: &str) -> Option<Format> {
        match name.trim_start_matches('.') {
            "tar.zst" | "tzst" | "zst" => Some(Format::TarZst),
            "tar.gz" | "tgz" | "gz" => Some(Format::TarGz),
            "tar" => Some(Format::Tar),
            "oci" | "oci.tar" => Some(Format::Oci),
            "oci-dir" => Some(Format::OciDir),
            "sh" => Some(Format::Sh),
            _ => None,
        }
    }

    /// Whether this is a container image format ([`crate::oci::write_image`] writes it).
    pub fn is_image(self) -> bool {
        matches!(self, Format::Oci | Format::OciDir)
    }

    /// Whether this is a self-extracting installer ([`crate::installer::write_installer`]).
    pub fn is_installer(self) -> bool {
        matches!(self, Format::Sh | Format::ShZstd)
    }

    /// Chooses the format from the output file's extension.
    pub fn from_path(path: &Path) -> Option<Format> {
        let name = path.file_name()?.to_str()?;
        [
            ".tar.zst", ".tzst", ".tar.gz", ".tgz", ".oci.tar", ".tar", ".sh",
        ]
        .iter()
        .find(|ext| name.ends_with(*ext))
        .and_then(|ext| Format::from_name(ext))
    }
}

/// How the bundle is written.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// Archive format.
    pub format: Format,
    /// Compression level (zstd 1–22, gzip 1–9).
    pub level: i32,
    /// Compression threads (zstd, gzip).
    pub threads: u32,
    /// Directory inside the archive that holds the environment.
    pub arcroot: Option<Vec<u8>>,
    /// Overwrite an existing output.
    pub force: bool,
}

/// What [`write_bundle`] wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Written {
    /// The output file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Archive members written.
    pub members: u64,
    /// Uncompressed content bytes.
    pub content_bytes: u64,
}

enum Encoder {
    Zstd(zstd::Encoder<'static, BufWriter<File>>),
    Gzip(gzip::ParallelGzip<BufWriter<File>>),
    Plain(BufWriter<File>),
}

impl Write for Encoder {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Encoder::Zstd(e) => e.write(buf),
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Plain(e) => e.write(buf),
        }
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Encoder::Zstd(e) => e.write_all(buf),
            Encoder::Gzip(e) => e.write_all(buf),
            Encoder::Plain(e) => e.write_all(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Encoder::Zstd(e) => e.flush(),
            Encoder::Gzip(e) => e.flush(),
            Encoder::Plain(e) => e.flush(),
        }
    }
}

/// The zstd encoder of bundles and image layers: a checksummed frame, compressed on `threads`
/// workers (at least one, so that the output does not depend on the thread count and bundles are
/// the same bytes on every machine).
///
/// At the fast levels the jobs the workers take are 4 MiB, twice zstd's window there, instead
/// of zstd's default (four times the window, 8 MiB at level 3): each worker buffers its job's
/// input and output, and with 2 workers the default costs ~100 MB against ~30 MB, for output
/// 0.5% larger and no slower (`benches/compare.sh`). Higher levels keep zstd's jobs, whose
/// windows are larger.
pub(crate) fn zstd_encoder<W: Write>(
    sink: W,
    level: i32,
    threads: u32,
) -> std::io::Result<zstd::Encoder<'static, W>> {
    let mut encoder = zstd::Encoder::new(sink, level)?;
    encoder.include_checksum(true)?;
    encoder.multithread(threads.max(1))?;
    if level <= 5 {
        encoder.set_parameter(zstd::stream::raw::CParameter::JobSize(4 << 20))?;
    }
    Ok(encoder)
}

impl Encoder {
    fn new(file: File, options: &WriteOptions) -> std::io::Result<Encoder> {
        let sink = BufWriter::with_capacity(1 << 20, file);
        Ok(match options.format {
            Format::TarZst => Encoder::Zstd(zstd_encoder(sink, options.level, options.threads)?),
            // Independent 1 MiB pieces on all cores: the same bytes for any thread count.
            Format::TarGz => Encoder::Gzip(gzip::ParallelGzip::new(
                sink,
                options.level.clamp(1, 9) as u32,
                options.threads.max(1) as usize,
            )?),
            Format::Tar => Encoder::Plain(sink),
            Format::Oci | Format::OciDir | Format::Sh | Format::ShZstd => {
                return Err(std::io::Error::other(
                    "images and installers are written by gopack::oci and gopack::installer",
                ));
            }
        })
    }

    fn finish(self) -> std::io::Result<File> {
        let sink = match self {
            Encoder::Zstd(e) => e.finish()?,
            Encoder::Gzip(e) => e.finish()?,
            Encoder::Plain(e) => e,
        };
        sink.into_inner().map_err(|err| err.into_error())
    }
}

/// The encoder while the bundle is written. Dropped on an error or an interruption, it is freed
/// on a helper thread: freeing a multi-threaded zstd encoder waits for every job it has queued
/// (seconds each at high levels), and nobody needs their output.
struct Detached(Option<Encoder>);

impl Drop for Detached {
    fn drop(&mut self) {
        if let Some(encoder) = self.0.take() {
            // If no thread can be started, the closure (and the encoder) is dropped right here.
            let _ = std::thread::Builder::new()
                .name("gopack-drop-encoder".into())
                .spawn(move || drop(encoder));
        }
    }
}

impl std::ops::Deref for Detached {
    type Target = Encoder;
    #[expect(
        clippy::expect_used,
        reason = "only `finish` empties it, and it consumes it"
    )]
    fn deref(&self) -> &Encoder {
        self.0.as_ref().expect("not finished")
    }
}

impl std::ops::DerefMut for Detached {
    #[expect(
        clippy::expect_used,
        reason = "only `finish` empties it, and it consumes it"
    )]
    fn deref_mut(&mut self) -> &mut Encoder {
        self.0.as_mut().expect("not finished")
    }
}

impl Write for Detached {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        (**self).write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        (**self).write_all(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        (**self).flush()
    }
}

/// Checks that the output can be written, before any work: its directory exists and it does
/// not exist unless `force`.
///
/// # Errors
/// [`Error::OutputExists`], [`Error::OutputDirMissing`].
pub fn check_output(output: &Path, force: bool) -> Result<()> {
    let dir = output_dir(output);
    if !dir.is_dir() {
        return Err(Error::OutputDirMissing { path: dir }.into());
    }
    if !force && fs_err::symlink_metadata(output).is_ok() {
        return Err(Error::OutputExists {
            path: output.to_path_buf(),
        }
        .into());
    }
    Ok(())
}

fn output_dir(output: &Path) -> PathBuf {
    match output.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Writes the bundle for `plan`; `extra` members (gopack's metadata and scripts) are already
/// part of the plan's entries. Nothing is left behind on error or cancellation.
///
/// # Errors
/// I/O errors naming the file, [`ScanError::ChangedDuringPack`], [`crate::Error::Interrupted`].
pub fn write_bundle(
    plan: &Plan,
    output: &Path,
    options: &WriteOptions,
    cancel: &AtomicBool,
    reporter: &dyn Reporter,
) -> Result<Written> {
    check_output(output, options.force)?;
    reporter.stage("writing");
    let dir = output_dir(output);
    let temp = tempfile::Builder::new()
        .prefix(".gopack-partial-")
        .tempfile_in(&dir)
        .map_err(|source| {
            crate::Error::io(
                format!("cannot create a temporary file in `{}`", dir.display()),
                source,
            )
        })?;
    let write_error =
        |source| crate::Error::io(format!("cannot write `{}`", output.display()), source);
    let file = temp.as_file().try_clone().map_err(write_error)?;
    let mut out = Detached(Some(Encoder::new(file, options).map_err(write_error)?));
    let stream = TarStream {
        prefix: &plan.prefix,
        arcroot: options.arcroot.as_deref(),
        cancel,
        reporter,
    };
    let counts = stream.write_entries(&plan.entries, &mut out, &write_error)?;
    let (members, content_bytes) = (counts.members, counts.content_bytes);
    // Two zero blocks end a tar archive.
    out.write_all(&[0u8; 1024]).map_err(write_error)?;
    let file = out
        .0
        .take()
        .ok_or_else(|| std::io::Error::other("the compressor was finished twice"))
        .and_then(Encoder::finish)
        .map_err(write_error)?;
    file.sync_all().map_err(write_error)?;
    let size = file.metadata().map_err(write_error)?.len();
    publish(temp, output, 0o644, options.force, cancel, &write_error)?;
    Ok(Written {
        path: output.to_path_buf(),
        size,
        members,
        content_bytes,
    })
}

/// How many members [`TarStream::write_entries`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TarCounts {
    /// Archive members written.
    pub members: u64,
    /// Content bytes written (without headers and padding).
    pub content_bytes: u64,
}

/// Writes planned entries as deterministic tar members (see [`header`]) into any writer: the
/// bundle and the layers of an image both go through it, so both hold the same bytes for the
/// same entry.
pub struct TarStream<'a> {
    /// The environment that [`Body::Disk`] files are read from.
    pub prefix: &'a Path,
    /// The directory inside the archive that the entries (and hard-link targets) go under.
    pub arcroot: Option<&'a [u8]>,
    /// Set on Ctrl-C; checked between members and while copying.
    pub cancel: &'a AtomicBool,
    /// Told how many content bytes were written.
    pub reporter: &'a dyn Reporter,
}

impl TarStream<'_> {
    /// Writes each entry's header, content and padding, in the order given. The end-of-archive
    /// marker is the caller's to write.
    ///
    /// # Errors
    /// `write_error` for failed writes, [`ScanError::Unreadable`], [`ScanError::ChangedDuringPack`],
    /// [`crate::Error::Interrupted`].
    pub fn write_entries<'e, W: Write>(
        &self,
        entries: impl IntoIterator<Item = &'e PlannedEntry>,
        out: &mut W,
        write_error: &dyn Fn(std::io::Error) -> crate::Error,
    ) -> Result<TarCounts> {
        let cancel = self.cancel;
        let mut buffer = vec![0u8; CHUNK];
        let mut counts = TarCounts::default();
        for planned in entries {
            if cancel.load(Ordering::Relaxed) {
                return Err(crate::Error::Interrupted);
            }
            let entry = &planned.entry;
            let path = with_root(self.arcroot, &entry.path);
            let (entry_type, link) = match &entry.kind {
                EntryKind::Dir => (EntryType::Directory, None),
                EntryKind::File => (EntryType::Regular, None),
                EntryKind::HardLink { target } => {
                    (EntryType::Link, Some(with_root(self.arcroot, target)))
                }
                EntryKind::Symlink { target } => (EntryType::Symlink, Some(target.clone())),
            };
            let size = planned.packed_size();
            let member = Member {
                path: &path,
                entry_type,
                mode: entry.mode,
                mtime: entry.mtime,
                size,
                link: link.as_deref(),
            };
            write_header(out, &member).map_err(write_error)?;
            match &planned.body {
                Body::None => {}
                Body::Generated(bytes) => out.write_all(bytes).map_err(write_error)?,
                Body::Disk { edit, size, .. } => {
                    let source = entry.absolute(self.prefix);
                    copy_file(
                        &source,
                        entry,
                        edit,
                        *size,
                        out,
                        &mut buffer,
                        cancel,
                        self.reporter,
                        write_error,
                    )?;
                }
                Body::External { source, .. } => {
                    let unreadable = |err| ScanError::Unreadable {
                        path: source.clone(),
                        source: err,
                    };
                    let mut file = crate::error::open_file(source).map_err(unreadable)?;
                    let mut copied = 0u64;
                    loop {
                        let read = read_full(&mut file, &mut buffer).map_err(unreadable)?;
                        if read == 0 {
                            break;
                        }
                        out.write_all(&buffer[..read]).map_err(write_error)?;
                        copied += read as u64;
                        if cancel.load(Ordering::Relaxed) {
                            return Err(crate::Error::Interrupted);
                        }
                    }
                    if copied != size {
                        return Err(ScanError::ChangedDuringPack {
                            path: source.clone(),
                        }
                        .into());
                    }
                }
            }
            write_padding(out, size).map_err(write_error)?;
            counts.members += 1;
            counts.content_bytes += size;
        }
        Ok(counts)
    }
}

fn with_root(root: Option<&[u8]>, path: &[u8]) -> Vec<u8> {
    match root {
        Some(root) if !root.is_empty() => [root, b"/", path].concat(),
        _ => path.to_vec(),
    }
}

#[allow(clippy::too_many_arguments)]
fn copy_file(
    source: &Path,
    entry: &crate::scan::Entry,
    edit: &Edit,
    packed_size: u64,
    out: &mut impl Write,
    buffer: &mut [u8],
    cancel: &AtomicBool,
    reporter: &dyn Reporter,
    write_error: &dyn Fn(std::io::Error) -> crate::Error,
) -> Result<()> {
    if let Edit::Replace(bytes) = edit {
        out.write_all(bytes).map_err(write_error)?;
        reporter.written(packed_size);
        return Ok(());
    }
    let unreadable = |err| ScanError::Unreadable {
        path: source.to_path_buf(),
        source: err,
    };
    let file = crate::error::open_file(source).map_err(unreadable)?;
    let metadata = file.metadata().map_err(unreadable)?;
    if metadata.len() != entry.size || metadata.mtime().max(0) as u64 != entry.mtime {
        return Err(ScanError::ChangedDuringPack {
            path: source.to_path_buf(),
        }
        .into());
    }
    let mut reader = crate::relocate::apply::edited_reader(&file, entry.size, edit);
    let mut copied = 0u64;
    loop {
        let read = read_full(&mut reader, buffer).map_err(unreadable)?;
        if read == 0 {
            break;
        }
        out.write_all(&buffer[..read]).map_err(write_error)?;
        copied += read as u64;
        reporter.written(read as u64);
        if cancel.load(Ordering::Relaxed) {
            return Err(crate::Error::Interrupted);
        }
    }
    if copied != packed_size {
        return Err(ScanError::ChangedDuringPack {
            path: source.to_path_buf(),
        }
        .into());
    }
    Ok(())
}

/// Makes a completely written temporary file the output: sets its mode, and renames it into
/// place (over an existing output only with `force`). A signal that came during the final
/// flush still leaves nothing, since only this rename makes the output.
///
/// # Errors
/// [`crate::Error::Interrupted`], [`Error::OutputExists`], I/O errors through `write_error`.
pub(crate) fn publish(
    temp: tempfile::NamedTempFile,
    output: &Path,
    mode: u32,
    force: bool,
    cancel: &AtomicBool,
    write_error: &dyn Fn(std::io::Error) -> crate::Error,
) -> Result<()> {
    temp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(write_error)?;
    if cancel.load(Ordering::Relaxed) {
        return Err(crate::Error::Interrupted);
    }
    let persisted = if force {
        temp.persist(output).map_err(|err| err.error)
    } else {
        temp.persist_noclobber(output).map_err(|err| err.error)
    };
    persisted.map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            Error::OutputExists {
                path: output.to_path_buf(),
            }
            .into()
        } else {
            write_error(source)
        }
    })?;
    Ok(())
}
