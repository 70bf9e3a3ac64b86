//! Extraction into the staging directory: every member is checked against the manifest —
//! listed, of the listed type, size, mode and link target — before anything of it is written,
//! a file's content is read only up to its declared size and hashed while it is written, and
//! every listed entry must arrive. Only the manifest itself is unlisted.

// Offsets and sizes here come from files: arithmetic on them is checked.
#![deny(clippy::arithmetic_side_effects)]

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use sha2::{Digest, Sha256};

use super::Error as UnpackError;
use crate::archive::Error as ArchiveError;
use crate::archive::read::{Leading, Member, MemberKind, TarReader};
use crate::error::{Error, Result, escape_bytes};
use crate::manifest::{FileRecord, MANIFEST_PATH, Manifest, normalize_path};
use crate::progress::Reporter;

use super::place::is_reserved;
use super::sys;

/// How modes are applied, as GNU tar does: the superuser keeps the archive's permission bits,
/// anyone else gets the process umask applied. Special bits (setuid, setgid, sticky) are never
/// restored.
#[derive(Debug, Clone, Copy)]
pub(super) struct Modes {
    keep: bool,
    umask: u32,
}

impl Modes {
    /// The modes rule of this process.
    pub(super) fn of_process() -> Modes {
        Modes {
            keep: sys::is_root(),
            umask: sys::umask(),
        }
    }

    /// The mode to give an entry stored with `mode`.
    pub(super) fn apply(self, mode: u32) -> u32 {
        let mode = mode & 0o777;
        if self.keep { mode } else { mode & !self.umask }
    }
}

/// A path relative to the staging root that was checked: normalised, no `..`, no root.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Inside(Vec<u8>);

impl Inside {
    fn new(bytes: &[u8]) -> std::result::Result<Inside, String> {
        normalize_path(bytes).map(Inside)
    }

    fn under(&self, root: &Path) -> PathBuf {
        root.join(OsStr::from_bytes(&self.0))
    }

    fn as_path(&self) -> &Path {
        Path::new(OsStr::from_bytes(&self.0))
    }
}

/// Whether a symlink at `link` (relative) with `target` stays inside the root, lexically.
pub(super) fn symlink_stays_inside(link: &Path, target: &[u8]) -> bool {
    if target.is_empty() || target.starts_with(b"/") {
        return false;
    }
    // How many directories deep the link's own directory is.
    let mut depth = link.components().count().saturating_sub(1);
    for component in Path::new(OsStr::from_bytes(target)).components() {
        match component {
            Component::Normal(_) => depth = depth.saturating_add(1),
            Component::ParentDir => match depth.checked_sub(1) {
                Some(up) => depth = up,
                None => return false,
            },
            Component::CurDir => {}
            _ => return false,
        }
    }
    true
}

/// What extraction leaves for the end: directory modes and times (set after relocation,
/// which writes into directories), and counts.
pub(super) struct Extracted {
    dirs: Vec<(PathBuf, u32, u64)>,
    /// Members extracted, the manifest included.
    pub entries: u64,
    /// Files whose sha256 was verified.
    pub verified: u64,
}

impl Extracted {
    /// Gives directories their final modes and times, deepest first.
    ///
    /// # Errors
    /// I/O errors.
    pub(super) fn finish_dirs(&self) -> Result<()> {
        for (dir, mode, mtime) in self.dirs.iter().rev() {
            fs_err::set_permissions(dir, std::fs::Permissions::from_mode(*mode))
                .map_err(|source| Error::io("cannot set a directory's mode", source))?;
            set_mtime(dir, *mtime)?;
        }
        Ok(())
    }
}

struct Extractor<'a> {
    bundle: &'a Path,
    root: &'a Path,
    arcroot: &'a [u8],
    listed: HashMap<&'a [u8], &'a FileRecord>,
    arrived: HashMap<Vec<u8>, &'a str>,
    modes: Modes,
    dirs: Vec<(PathBuf, u32, u64)>,
    symlinks: Vec<(String, PathBuf)>,
    buffer: Vec<u8>,
    entries: u64,
    verified: u64,
}

/// Extracts the rest of the bundle after its manifest into `root`.
///
/// # Errors
/// [`UnpackError::HostileEntry`], [`ArchiveError::BadBundle`], [`Error::Interrupted`], I/O errors.
#[expect(
    clippy::too_many_arguments,
    reason = "the manifest's bytes are moved in apart from `leading`, so they can be dropped once written"
)]
pub(super) fn extract(
    bundle: &Path,
    mut reader: TarReader,
    leading: &Leading,
    manifest_bytes: Vec<u8>,
    root: &Path,
    modes: Modes,
    cancel: &AtomicBool,
    reporter: &dyn Reporter,
) -> Result<Extracted> {
    let manifest: &Manifest = &leading.manifest;
    let mut extractor = Extractor {
        bundle,
        root,
        arcroot: &leading.arcroot,
        listed: manifest
            .files
            .iter()
            .map(|record| (record.path.0.as_slice(), record))
            .collect(),
        arrived: HashMap::with_capacity(manifest.files.len()),
        modes,
        dirs: Vec::new(),
        symlinks: Vec::new(),
        buffer: vec![0u8; 256 * 1024],
        entries: 0,
        verified: 0,
    };
    for member in &leading.before {
        extractor.member(&mut reader, member, cancel, reporter)?;
    }
    extractor.manifest(leading, manifest_bytes)?;
    while let Some(member) = reader.next_member()? {
        extractor.member(&mut reader, &member, cancel, reporter)?;
    }
    reader.finish()?;
    extractor.finish()
}

impl<'a> Extractor<'a> {
    fn bad(&self, message: String) -> Error {
        ArchiveError::BadBundle {
            path: self.bundle.to_path_buf(),
            message,
        }
        .into()
    }

    /// The member's path relative to the environment's root, checked.
    fn relative(&self, member: &Member) -> Result<Inside> {
        let hostile = |reason: String| UnpackError::HostileEntry {
            entry: member.shown(),
            reason,
        };
        let full = normalize_path(&member.path).map_err(hostile)?;
        let stripped = if self.arcroot.is_empty() {
            &full[..]
        } else {
            full.strip_prefix(self.arcroot)
                .ok_or_else(|| hostile("it lies outside the bundle's root directory".into()))?
        };
        let relative = Inside::new(stripped).map_err(hostile)?;
        let top = relative.0.split(|&c| c == b'/').next().unwrap_or_default();
        if is_reserved(top) {
            return Err(hostile(
                "names beginning with `.gopack-unpack-`, `.gopack-old-` or `.gopack-ready-` are reserved for gopack's temporary files".into(),
            ).into());
        }
        Ok(relative)
    }

    /// Refuses to write below anything that is not a real directory (an earlier symlink);
    /// creates missing parents.
    fn parents(&self, relative: &Inside, shown: &str) -> Result<()> {
        let mut current = self.root.to_path_buf();
        let parent = relative.as_path().parent().unwrap_or(Path::new(""));
        for part in parent.components() {
            current.push(part);
            match fs_err::symlink_metadata(&current) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(UnpackError::HostileEntry {
                        entry: shown.into(),
                        reason: "it would be written through a symlink".into(),
                    }
                    .into());
                }
                Ok(meta) if !meta.is_dir() => {
                    return Err(UnpackError::HostileEntry {
                        entry: shown.into(),
                        reason: "a parent is not a directory".into(),
                    }
                    .into());
                }
                Ok(_) => {}
                Err(_) => std::fs::DirBuilder::new()
                    .mode(0o700)
                    .create(&current)
                    .map_err(|source| {
                        Error::io(format!("cannot create `{}`", current.display()), source)
                    })?,
            }
        }
        Ok(())
    }

    /// Writes the manifest itself, the one member the manifest cannot list.
    fn manifest(&mut self, leading: &Leading, bytes: Vec<u8>) -> Result<()> {
        let relative = Inside(MANIFEST_PATH.as_bytes().to_vec());
        let shown = MANIFEST_PATH.to_string();
        self.parents(&relative, &shown)?;
        let target = relative.under(self.root);
        let mut file = create_file(&target, &shown)?;
        file.write_all(&bytes)
            .map_err(|source| Error::io(format!("cannot write `{shown}`"), source))?;
        drop(file);
        drop(bytes);
        self.set_file_meta(&target, leading.member.mode, leading.member.mtime)?;
        self.arrived.insert(relative.0, "file");
        self.entries = self.entries.saturating_add(1);
        Ok(())
    }

    fn member(
        &mut self,
        reader: &mut TarReader,
        member: &Member,
        cancel: &AtomicBool,
        reporter: &dyn Reporter,
    ) -> Result<()> {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Interrupted);
        }
        let shown = member.shown();
        let hostile = |reason: String| UnpackError::HostileEntry {
            entry: shown.clone(),
            reason,
        };
        let relative = self.relative(member)?;
        let kind = match member.kind {
            MemberKind::File => "file",
            MemberKind::Dir => "dir",
            MemberKind::Symlink => "symlink",
            MemberKind::HardLink => "hardlink",
            MemberKind::Other(_) => {
                return Err(hostile(format!(
                    "it is {}; only files, directories and links are extracted",
                    member.kind.describe()
                ))
                .into());
            }
        };
        if member.kind == MemberKind::Symlink
            && !symlink_stays_inside(relative.as_path(), &member.link)
        {
            return Err(hostile(format!(
                "symlink to `{}` leads outside the destination",
                escape_bytes(&member.link)
            ))
            .into());
        }
        if self.arrived.contains_key(&relative.0) {
            return Err(hostile("the archive holds it twice".into()).into());
        }
        let record = *self.listed.get(relative.0.as_slice()).ok_or_else(|| {
            self.bad(format!(
                "`{shown}` is not listed in the manifest: the bundle was altered"
            ))
        })?;
        let differs = |what: String| {
            self.bad(format!(
                "`{shown}` differs from the manifest ({what}): the bundle is corrupt or was altered"
            ))
        };
        if record.kind.as_str() != kind {
            return Err(differs(format!(
                "it is {}, the manifest lists a {}",
                member.kind.describe(),
                record.kind
            )));
        }
        if member.mode & 0o777 != record.mode & 0o777 {
            return Err(differs(format!(
                "mode {:o}, the manifest says {:o}",
                member.mode & 0o777,
                record.mode & 0o777
            )));
        }
        self.parents(&relative, &shown)?;
        let target = relative.under(self.root);
        if kind != "dir" && fs_err::symlink_metadata(&target).is_ok() {
            return Err(hostile("the archive holds it twice".into()).into());
        }
        match member.kind {
            MemberKind::Dir => self.dir(&target, member)?,
            MemberKind::File => {
                let size = record.size.unwrap_or(0);
                if member.size != size {
                    return Err(differs(format!(
                        "{} bytes, the manifest says {size}",
                        member.size
                    )));
                }
                let sha256 = self.file(reader, &target, &shown, cancel, reporter)?;
                if record.sha256.map(|listed| listed.0) != Some(sha256) {
                    return Err(self.bad(format!(
                        "`{shown}` does not match its sha256 in the manifest: the bundle is corrupt or was altered"
                    )));
                }
                self.set_file_meta(&target, member.mode, member.mtime)?;
                self.verified = self.verified.saturating_add(1);
            }
            MemberKind::Symlink => {
                if record.target.as_ref().map(|t| t.0.as_slice()) != Some(&member.link[..]) {
                    return Err(differs(format!(
                        "it points to `{}`",
                        escape_bytes(&member.link)
                    )));
                }
                fs_err::os::unix::fs::symlink(OsStr::from_bytes(&member.link), &target).map_err(
                    |source| Error::io(format!("cannot create symlink `{shown}`"), source),
                )?;
                set_mtime(&target, member.mtime)?;
                self.symlinks.push((shown.clone(), target));
            }
            MemberKind::HardLink => self.hard_link(&target, member, record, &shown)?,
            MemberKind::Other(_) => unreachable!("refused above"),
        }
        self.arrived.insert(relative.0, record.kind.as_str());
        self.entries = self.entries.saturating_add(1);
        Ok(())
    }

    fn dir(&mut self, target: &Path, member: &Member) -> Result<()> {
        match fs_err::symlink_metadata(target) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(UnpackError::HostileEntry {
                    entry: member.shown(),
                    reason: "a directory would replace another entry".into(),
                }
                .into());
            }
            Err(_) => std::fs::DirBuilder::new()
                .mode(0o700)
                .create(target)
                .map_err(|source| {
                    Error::io(format!("cannot create `{}`", target.display()), source)
                })?,
        }
        // Writable until the end; the final mode is set after relocation.
        self.dirs.push((
            target.to_path_buf(),
            self.modes.apply(member.mode),
            member.mtime,
        ));
        Ok(())
    }

    /// Writes a file's content (exactly its declared size), checking `cancel` between chunks;
    /// returns its sha256.
    fn file(
        &mut self,
        reader: &mut TarReader,
        target: &Path,
        shown: &str,
        cancel: &AtomicBool,
        reporter: &dyn Reporter,
    ) -> Result<[u8; 32]> {
        let mut file = create_file(target, shown)?;
        let mut hasher = Sha256::new();
        loop {
            if cancel.load(Ordering::Relaxed) {
                return Err(Error::Interrupted);
            }
            let read = reader.read_content(&mut self.buffer)?;
            if read == 0 {
                break;
            }
            hasher.update(&self.buffer[..read]);
            file.write_all(&self.buffer[..read])
                .map_err(|source| Error::io(format!("cannot write `{shown}`"), source))?;
            reporter.written(read as u64);
        }
        Ok(hasher.finalize().into())
    }

    fn hard_link(
        &mut self,
        target: &Path,
        member: &Member,
        record: &FileRecord,
        shown: &str,
    ) -> Result<()> {
        let hostile = |reason: &str| UnpackError::HostileEntry {
            entry: shown.into(),
            reason: reason.into(),
        };
        let link = normalize_path(&member.link)
            .map_err(|reason| hostile(&format!("hard link target: {reason}")))?;
        let link = if self.arcroot.is_empty() {
            &link[..]
        } else {
            link.strip_prefix(self.arcroot)
                .ok_or_else(|| hostile("hard link target outside the bundle's root directory"))?
        };
        if record.target.as_ref().map(|t| t.0.as_slice()) != Some(link) {
            return Err(self.bad(format!(
                "`{shown}` differs from the manifest (it links to `{}`): the bundle is corrupt or was altered",
                escape_bytes(link)
            )));
        }
        if self.arrived.get(link) != Some(&"file") {
            return Err(
                hostile("hard link to something that is not a file extracted earlier").into(),
            );
        }
        let source = Inside(link.to_vec()).under(self.root);
        match fs_err::symlink_metadata(&source) {
            Ok(meta) if meta.is_file() => {}
            _ => {
                return Err(
                    hostile("hard link to something that is not a file extracted earlier").into(),
                );
            }
        }
        fs_err::hard_link(&source, target)
            .map_err(|err| Error::io(format!("cannot create hard link `{shown}`"), err))
    }

    fn set_file_meta(&self, target: &Path, mode: u32, mtime: u64) -> Result<()> {
        fs_err::set_permissions(
            target,
            std::fs::Permissions::from_mode(self.modes.apply(mode)),
        )
        .map_err(|source| Error::io("cannot set a file's mode", source))?;
        set_mtime(target, mtime)
    }

    fn finish(self) -> Result<Extracted> {
        let mut missing: Vec<String> = self
            .listed
            .keys()
            .filter(|path| !self.arrived.contains_key(**path))
            .map(|path| escape_bytes(path))
            .collect();
        if !missing.is_empty() {
            missing.sort();
            let count = missing.len();
            missing.truncate(5);
            return Err(self.bad(format!(
                "truncated or altered: {count} entr{} listed in the manifest {} missing, e.g. {}",
                if count == 1 { "y" } else { "ies" },
                if count == 1 { "is" } else { "are" },
                missing.join(", ")
            )));
        }
        check_symlink_chains(self.root, &self.symlinks)?;
        Ok(Extracted {
            dirs: self.dirs,
            entries: self.entries,
            verified: self.verified,
        })
    }
}

/// Creates a new file for writing, never through a symlink and never over an existing entry.
fn create_file(target: &Path, shown: &str) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(sys::nofollow() | sys::cloexec())
        .open(target)
        .map_err(|source| Error::io(format!("cannot create `{shown}`"), source))
}

/// Each symlink passed the lexical check alone; resolved together (a link through another
/// link) they must still end inside the root.
fn check_symlink_chains(root: &Path, symlinks: &[(String, PathBuf)]) -> Result<()> {
    let root = fs_err::canonicalize(root)
        .map_err(|source| Error::io("cannot resolve the staging directory", source))?;
    for (shown, link) in symlinks {
        // The longest part of the link's resolution that exists must be inside the root.
        let target =
            fs_err::read_link(link).map_err(|source| Error::io("cannot read a symlink", source))?;
        let mut probe = link.parent().unwrap_or(&root).join(target);
        let resolved = loop {
            match fs_err::canonicalize(&probe) {
                Ok(resolved) => break Some(resolved),
                Err(_) => {
                    if !probe.pop() {
                        break None;
                    }
                }
            }
        };
        if let Some(resolved) = resolved
            && !resolved.starts_with(&root)
        {
            return Err(UnpackError::HostileEntry {
                entry: shown.clone(),
                reason: "symlink leads outside the destination through other symlinks".into(),
            }
            .into());
        }
    }
    Ok(())
}

/// Sets a path's modification time without following a symlink.
pub(super) fn set_mtime(path: &Path, mtime: u64) -> Result<()> {
    let seconds = i64::try_from(mtime).unwrap_or(i64::MAX);
    let time = filetime::FileTime::from_unix_time(seconds, 0);
    filetime::set_symlink_file_times(path, time, time).map_err(|source| {
        Error::io(
            format!("cannot set the time of `{}`", path.display()),
            source,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_must_stay_inside() {
        assert!(symlink_stays_inside(Path::new("bin/go"), b"../go/bin/go"));
        assert!(symlink_stays_inside(Path::new("lib/x"), b"libx.so"));
        assert!(!symlink_stays_inside(Path::new("bin/go"), b"../../etc"));
        assert!(!symlink_stays_inside(Path::new("x"), b"/etc/passwd"));
        assert!(!symlink_stays_inside(Path::new("a/b"), b"../c/../../../x"));
    }

    #[test]
    fn modes_follow_gnu_tar() {
        let root = Modes {
            keep: true,
            umask: 0o077,
        };
        assert_eq!(root.apply(0o4755), 0o755);
        let user = Modes {
            keep: false,
            umask: 0o027,
        };
        assert_eq!(user.apply(0o755), 0o750);
        assert_eq!(user.apply(0o666), 0o640);
    }
}
