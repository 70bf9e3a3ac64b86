//! Applying a relocation: the one engine behind `--dest-prefix` (streamed into the archive),
//! `gopack unpack` (in its staging directory) and, rendered as sh, `bin/gopack-unpack`
//! ([`super::script`]). A relocation always goes from the prefix the files hold now to the new
//! one; text follows the rule of [`super::text`], binary C strings are rendered from their
//! recorded pieces and NUL-padded to their room.

// Offsets and sizes here come from files: arithmetic on them is checked.
#![deny(clippy::arithmetic_side_effects)]

use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::Error as RelocateError;
use super::text::TextRewriter;
use super::{BinaryRecord, ByteString, Patch, Relocation, TextRecord};
use crate::error::{Error, Result};
use crate::stream::CHUNK;

impl TextRecord {
    /// The streaming rewrite of this file from `from` to `to`.
    pub fn rewriter(&self, from: &[u8], to: &[u8]) -> TextRewriter {
        let first_line = self.shebang.as_ref().map(|line| line.render(to).0);
        TextRewriter::new(
            &self.quoting.escape(from),
            &self.quoting.escape(to),
            first_line,
        )
    }
}

impl BinaryRecord {
    /// The same-length patches that write every slot for `to`.
    ///
    /// # Errors
    /// [`RelocateError::PrefixTooLong`] when a slot has no room for `to`.
    pub fn patches(&self, to: &[u8]) -> Result<Vec<Patch>> {
        self.slots
            .iter()
            .map(|slot| {
                slot.render(to)
                    .map(|bytes| Patch {
                        offset: slot.offset,
                        bytes,
                    })
                    .ok_or_else(|| RelocateError::PrefixTooLong {
                        prefix: String::from_utf8_lossy(to).into_owned(),
                        len: to.len(),
                        files: vec![format!(
                            "{} (room {} bytes)",
                            self.path.display(),
                            slot.room
                        )],
                    })
            })
            .collect::<std::result::Result<_, _>>()
            .map_err(Into::into)
    }
}

/// Reads `inner` with same-length patches applied on the fly.
pub struct PatchedReader<R> {
    inner: R,
    position: u64,
    patches: Vec<Patch>,
}

impl<R: Read> PatchedReader<R> {
    /// Reads `inner` from its start with `patches` applied.
    pub fn new(inner: R, patches: Vec<Patch>) -> Self {
        PatchedReader {
            inner,
            position: 0,
            patches,
        }
    }
}

impl<R: Read> Read for PatchedReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buffer)?;
        let start = self.position;
        let end = start.saturating_add(read as u64);
        for patch in &self.patches {
            let patch_end = patch.offset.saturating_add(patch.bytes.len() as u64);
            if patch_end <= start || patch.offset >= end {
                continue;
            }
            // The overlap of this read and the patch, in each one's own coordinates: both
            // differences are within a buffer's length, as the checks above ensure.
            let (from, to) = (patch.offset.max(start), patch_end.min(end));
            let in_buffer =
                (from.saturating_sub(start) as usize)..(to.saturating_sub(start) as usize);
            let in_patch = (from.saturating_sub(patch.offset) as usize)
                ..(to.saturating_sub(patch.offset) as usize);
            if let (Some(target), Some(bytes)) =
                (buffer.get_mut(in_buffer), patch.bytes.get(in_patch))
            {
                target.copy_from_slice(bytes);
            }
        }
        self.position = end;
        Ok(read)
    }
}

/// Reads `inner` through a text rewrite, so the new content is never held whole.
pub struct RewritingReader<R> {
    inner: R,
    rewriter: TextRewriter,
    input: Vec<u8>,
    output: Vec<u8>,
    taken: usize,
    done: bool,
}

impl<R: Read> RewritingReader<R> {
    /// Reads `inner` rewritten by `rewriter`.
    pub fn new(inner: R, rewriter: TextRewriter) -> Self {
        RewritingReader {
            inner,
            rewriter,
            input: vec![0; CHUNK],
            output: Vec::with_capacity(CHUNK + 4096),
            taken: 0,
            done: false,
        }
    }
}

impl<R: Read> Read for RewritingReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        while self.taken == self.output.len() {
            if self.done {
                return Ok(0);
            }
            self.output.clear();
            self.taken = 0;
            let read = self.inner.read(&mut self.input)?;
            if read == 0 {
                self.rewriter.finish(&mut self.output);
                self.done = true;
            } else {
                self.rewriter.feed(&self.input[..read], &mut self.output);
            }
        }
        let pending = self.output.get(self.taken..).unwrap_or_default();
        let count = buffer.len().min(pending.len());
        buffer[..count].copy_from_slice(&pending[..count]);
        self.taken = self.taken.saturating_add(count);
        Ok(count)
    }
}

/// The bytes a file is packed with: `file` (of `size` bytes) with `edit` applied, streamed.
pub fn edited_reader<'a>(
    file: &'a std::fs::File,
    size: u64,
    edit: &'a super::Edit,
) -> Box<dyn Read + 'a> {
    use super::Edit;
    let mut whole = file.take(size);
    match edit {
        Edit::None => Box::new(whole),
        Edit::Replace(bytes) => Box::new(&bytes[..]),
        Edit::AnonymisedRecord => {
            // The record was rendered the same way when it was planned; a failure to read it
            // now is passed on by the reader.
            let mut content = Vec::new();
            match whole
                .read_to_end(&mut content)
                .map(|_| crate::conda::meta::anonymise_record(&content))
            {
                Ok(Some(clean)) => Box::new(std::io::Cursor::new(clean)),
                Ok(None) => Box::new(std::io::Cursor::new(content)),
                Err(err) => Box::new(FailingReader(Some(err))),
            }
        }
        Edit::Patch(patches) => Box::new(PatchedReader::new(whole, patches.clone())),
        Edit::Relocate(text) => Box::new(RewritingReader::new(
            whole,
            text.record.rewriter(&text.from, &text.to),
        )),
    }
}

/// A reader that fails once with the error it holds.
struct FailingReader(Option<std::io::Error>);

impl Read for FailingReader {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        match self.0.take() {
            Some(err) => Err(err),
            None => Ok(0),
        }
    }
}

/// What one record does to its file.
pub(super) enum Change<'a> {
    Text(&'a TextRecord),
    /// Slot patches; whether the file is Mach-O (re-signed after patching).
    Binary(Vec<Patch>, bool),
}

/// One file to rewrite: its record's path, its other names, and the change.
pub(super) struct Planned<'a> {
    pub path: &'a ByteString,
    pub links: &'a [ByteString],
    pub change: Change<'a>,
}

/// What [`relocate_tree`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Relocated {
    /// Files rewritten.
    pub files: u64,
    /// Python scripts whose `#!` line could be written neither plain nor in the sh form.
    pub broken_shebangs: Vec<ByteString>,
}

/// Every file `relocation` rewrites for `to`, and the Python scripts whose `#!` line cannot
/// hold `to`; checked first, so nothing changes when a slot has no room.
pub(super) fn plan_changes<'a>(
    relocation: &'a Relocation,
    to: &[u8],
) -> Result<(Vec<Planned<'a>>, Vec<ByteString>)> {
    check_target(to)?;
    relocation.check_fits(to)?;
    let mut changes = Vec::with_capacity(
        relocation
            .text
            .len()
            .saturating_add(relocation.binary.len()),
    );
    let mut broken = Vec::new();
    for record in &relocation.text {
        changes.push(Planned {
            path: &record.path,
            links: &record.links,
            change: Change::Text(record),
        });
        if let Some(line) = &record.shebang
            && !line.render(to).1
        {
            broken.push(record.path.clone());
        }
    }
    for record in &relocation.binary {
        changes.push(Planned {
            path: &record.path,
            links: &record.links,
            change: Change::Binary(record.patches(to)?, record.macho),
        });
    }
    Ok((changes, broken))
}

/// The new bytes of `source` (the file at `file`) under `change`, streamed.
pub(super) fn changed_content<'a>(
    source: &'a std::fs::File,
    file: &Path,
    change: &Change<'_>,
    from: &[u8],
    to: &[u8],
) -> Result<Box<dyn Read + 'a>> {
    Ok(match change {
        Change::Text(record) => Box::new(RewritingReader::new(source, record.rewriter(from, to))),
        Change::Binary(patches, false) => Box::new(PatchedReader::new(source, patches.clone())),
        Change::Binary(patches, true) => {
            // Mach-O: re-signed over its patched bytes, read whole (super::macho).
            let unreadable = |err| Error::io(format!("cannot read `{}`", file.display()), err);
            let size = source.metadata().map_err(unreadable)?.len();
            let edit = super::Edit::Patch(patches.clone());
            match super::macho::signed_edit(source, size, edit).map_err(unreadable)? {
                super::Edit::Patch(signed) => Box::new(PatchedReader::new(source, signed)),
                _ => Box::new(PatchedReader::new(source, patches.clone())),
            }
        }
    })
}

/// Where an environment records the prefix its files hold after a relocation.
pub const PREFIX_STATE: &str = ".gopack/prefix";

/// The prefix the files of the environment at `root` hold: the one recorded by the last
/// relocation (`--dest-prefix` or an unpack), else `packed`, the one in the records.
///
/// # Errors
/// I/O errors other than a missing file; a recorded prefix that is a symlink.
pub fn current_prefix(root: &Path, packed: &[u8]) -> Result<Vec<u8>> {
    Ok(read_state(&root.join(PREFIX_STATE))?.unwrap_or_else(|| packed.to_vec()))
}

/// Records that the files of the environment at `root` now hold `prefix`.
///
/// # Errors
/// I/O errors naming the file.
pub fn record_prefix(root: &Path, prefix: &[u8]) -> Result<()> {
    write_state(root, PREFIX_STATE, prefix)
}

/// A small state file (at most 4 KiB) of the relocation, or `None` when there is none; never
/// read through a symlink.
pub(super) fn read_state(path: &Path) -> Result<Option<Vec<u8>>> {
    let fail = |source| Error::io(format!("cannot read `{}`", path.display()), source);
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path);
    match opened {
        Ok(file) => {
            let mut bytes = Vec::new();
            file.take(4096).read_to_end(&mut bytes).map_err(fail)?;
            Ok(Some(bytes))
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(fail(source)),
    }
}

/// Writes the state file `name` of the environment at `root` (mode 0644) under its staged name,
/// `NAME.gopack-new`, and renames it into place: it is never half-written, whatever the old
/// file's mode, and a run stopped in between leaves only the staged name, which both
/// `bin/gopack-unpack` and the relocator remove.
pub(super) fn write_state(root: &Path, name: &str, content: &[u8]) -> Result<()> {
    let path = root.join(name);
    let staged = staged_path(&path);
    let fail = |source| Error::io(format!("cannot write `{}`", path.display()), source);
    remove_if_present(&staged)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&staged)
        .map_err(fail)?;
    file.write_all(content).map_err(fail)?;
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .map_err(fail)?;
    drop(file);
    fs_err::rename(&staged, &path).map_err(fail)
}

/// `path` with the suffix of a file staged beside it: `NAME.gopack-new`.
pub(super) fn staged_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".gopack-new");
    PathBuf::from(name)
}

/// Removes a file; a missing one is fine.
pub(super) fn remove_if_present(path: &Path) -> Result<()> {
    match fs_err::remove_file(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(Error::io(
            format!("cannot remove `{}`", path.display()),
            err,
        )),
        _ => Ok(()),
    }
}

/// Refuses a prefix that no relocation path can carry, as a source or a target: one holding a
/// newline (the sh engine and every shell that sources `bin/activate` read paths line by line)
/// or a NUL.
///
/// # Errors
/// [`RelocateError::UnreachablePrefix`].
pub fn check_target(to: &[u8]) -> Result<()> {
    if to.contains(&b'\n') || to.contains(&0) {
        return Err(RelocateError::UnreachablePrefix {
            path: PathBuf::from(std::ffi::OsStr::from_bytes(to)),
            reason: "it holds a newline, which the unpack script and activation cannot carry; \
                     use a path without one"
                .into(),
        }
        .into());
    }
    Ok(())
}

/// A record's path, checked to stay below the root: relative, no `..`, no empty or NUL names.
///
/// # Errors
/// [`RelocateError::HostileRecord`] naming the record.
pub fn record_path(root: &Path, path: &[u8]) -> Result<PathBuf> {
    let hostile = |reason: &str| RelocateError::HostileRecord {
        path: String::from_utf8_lossy(path).into_owned(),
        reason: reason.to_string(),
    };
    if path.is_empty() || path.contains(&0) || path.starts_with(b"/") {
        return Err(hostile("not a relative path").into());
    }
    let mut out = root.to_path_buf();
    for component in Path::new(std::ffi::OsStr::from_bytes(path)).components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            _ => return Err(hostile("it leads outside the environment").into()),
        }
    }
    Ok(out)
}

/// Relocates the environment at `root` (a private staging tree: nothing else writes there) from
/// `from`, the prefix its files hold, to `to`. Every record is checked before any file changes.
/// Each rewritten file replaces the old one by a rename, keeping its mode and modification
/// time; its hard-linked names are linked to the new file; Python bytecode of a rewritten `.py`
/// is removed.
///
/// # Errors
/// [`RelocateError::PrefixTooLong`] listing every slot without room; [`RelocateError::HostileRecord`] for a
/// record that names no regular file below `root`; I/O errors naming the file.
pub fn relocate_tree(
    root: &Path,
    relocation: &Relocation,
    from: &[u8],
    to: &[u8],
    cancel: &AtomicBool,
) -> Result<Relocated> {
    check_target(to)?;
    if from == to {
        return Ok(Relocated::default());
    }
    let (changes, broken_shebangs) = plan_changes(relocation, to)?;
    let mut summary = Relocated {
        files: 0,
        broken_shebangs,
    };
    for planned in changes {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Interrupted);
        }
        let file = record_path(root, &planned.path.0)?;
        let source = open_regular(&file, planned.path)?;
        let reader = changed_content(&source, &file, &planned.change, from, to)?;
        let dir = file.parent().unwrap_or(Path::new("."));
        let temp = tempfile::Builder::new()
            .prefix(".gopack-new-")
            .tempfile_in(dir)
            .map_err(|source| {
                Error::io(format!("cannot write beside `{}`", file.display()), source)
            })?;
        write_like(temp.as_file(), &file, &source, reader)?;
        temp.persist(&file)
            .map_err(|err| Error::io(format!("cannot replace `{}`", file.display()), err.error))?;
        for link in planned.links {
            relink(&file, &record_path(root, &link.0)?)?;
        }
        if planned.path.0.ends_with(b".py") {
            drop_bytecode(&file);
        }
        summary.files = summary.files.saturating_add(1);
    }
    Ok(summary)
}

pub(super) fn open_regular(path: &Path, record: &ByteString) -> Result<std::fs::File> {
    // O_NOFOLLOW: a record never reaches through a symlink.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|source| {
            Error::io(
                format!("cannot open `{}` to relocate it", path.display()),
                source,
            )
        })?;
    let meta = file
        .metadata()
        .map_err(|source| Error::io(format!("cannot read `{}`", path.display()), source))?;
    if !meta.is_file() {
        return Err(RelocateError::HostileRecord {
            path: record.display(),
            reason: "it names something that is not a regular file".into(),
        }
        .into());
    }
    Ok(file)
}

/// Writes `content` into `out`, a new file beside `path`, and gives it `original`'s mode and
/// modification time.
pub(super) fn write_like(
    mut out: &std::fs::File,
    path: &Path,
    original: &std::fs::File,
    mut content: impl Read,
) -> Result<()> {
    let meta = original
        .metadata()
        .map_err(|source| Error::io(format!("cannot read `{}`", path.display()), source))?;
    let beside = |source| Error::io(format!("cannot write beside `{}`", path.display()), source);
    let mut buffer = vec![0u8; CHUNK];
    loop {
        let read = content
            .read(&mut buffer)
            .map_err(|source| Error::io(format!("cannot read `{}`", path.display()), source))?;
        if read == 0 {
            break;
        }
        out.write_all(&buffer[..read]).map_err(beside)?;
    }
    out.set_permissions(meta.permissions()).map_err(beside)?;
    let mtime = filetime::FileTime::from_last_modification_time(&meta);
    filetime::set_file_handle_times(out, None, Some(mtime)).map_err(beside)?;
    Ok(())
}

/// Makes `link` another name of `file`, atomically (a new link beside it, renamed over it).
fn relink(file: &Path, link: &Path) -> Result<()> {
    let fail = |source| {
        Error::io(
            format!("cannot link `{}` to the relocated file", link.display()),
            source,
        )
    };
    let dir = link.parent().unwrap_or(Path::new("."));
    let temp = tempfile::Builder::new()
        .prefix(".gopack-link-")
        .make_in(dir, |temp| fs_err::hard_link(file, temp))
        .map_err(fail)?;
    temp.persist(link).map_err(|err| fail(err.error))?;
    Ok(())
}

/// Removes `__pycache__/<stem>.*.pyc` of a rewritten Python source, so Python cannot load values
/// compiled from the old text.
pub(super) fn drop_bytecode(source: &Path) {
    let (Some(dir), Some(stem)) = (source.parent(), source.file_stem()) else {
        return;
    };
    let Ok(entries) = fs_err::read_dir(dir.join("__pycache__")) else {
        return;
    };
    let mut prefix = stem.as_bytes().to_vec();
    prefix.push(b'.');
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name.as_bytes().starts_with(&prefix) && name.as_bytes().ends_with(b".pyc") {
            let _ = fs_err::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patched_reader_applies_patches_across_reads() {
        let data = b"0123456789".to_vec();
        let patches = vec![Patch {
            offset: 3,
            bytes: b"abc".to_vec(),
        }];
        let mut reader = PatchedReader::new(&data[..], patches);
        let mut out = Vec::new();
        let mut buffer = [0u8; 4];
        loop {
            let read = reader.read(&mut buffer).unwrap();
            if read == 0 {
                break;
            }
            out.extend_from_slice(&buffer[..read]);
        }
        assert_eq!(out, b"012abc6789");
    }

    #[test]
    fn record_paths_stay_inside() {
        let root = Path::new("/r");
        assert_eq!(record_path(root, b"a/./b").unwrap(), Path::new("/r/a/b"));
        for bad in [&b"/etc/x"[..], b"a/../../x", b"", b"a\0b"] {
            assert!(record_path(root, bad).is_err());
        }
    }
}
