//! `gopack unpack`: [`unpack`] extracts a bundle natively into a staging directory beside the
//! destination, verifies every file against the manifest's sha256, applies the relocation
//! records for the destination (the same records `bin/gopack-unpack` applies), and renames the
//! staging directory into place, so the destination is never half-filled.
//!
//! # Security
//! Archive paths are hostile until checked: absolute paths, `..` components, empty or NUL names,
//! entries below a symlink, symlinks whose target leads outside the destination, hard links to
//! anything but a regular file extracted earlier, and device files, fifos and other special
//! entries are refused with an error naming the entry. Nothing is written outside the staging
//! directory, which is removed on any error.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use sha2::{Digest, Sha256};
use tar::EntryType;

use crate::archive::read::open_tar;
use crate::error::{Error, Result};
use crate::manifest::{MANIFEST_PATH, Manifest};
use crate::plan::Relocation;
use crate::progress::Reporter;
use crate::relocate::text::replace_all;

/// Checked options of `gopack unpack`.
#[derive(Debug, Clone)]
pub struct UnpackOptions {
    /// The bundle.
    pub bundle: PathBuf,
    /// Where the environment goes.
    pub dest: PathBuf,
    /// Replace a non-empty destination.
    pub force: bool,
}

/// What `unpack` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UnpackSummary {
    /// The destination.
    pub dest: PathBuf,
    /// Entries extracted.
    pub entries: u64,
    /// Files whose sha256 was verified.
    pub verified: u64,
    /// Files relocated.
    pub relocated: u64,
}

/// Extracts and relocates a bundle.
///
/// # Errors
/// [`Error::DestinationNotEmpty`], [`Error::HostileEntry`], [`Error::BadBundle`] for corrupt,
/// truncated or tampered bundles, [`Error::PrefixTooLong`], I/O errors.
pub fn unpack(
    options: &UnpackOptions,
    cancel: &AtomicBool,
    reporter: &dyn Reporter,
) -> Result<UnpackSummary> {
    let dest = std::path::absolute(&options.dest).map_err(|source| {
        Error::io(
            format!("cannot resolve `{}`", options.dest.display()),
            source,
        )
    })?;
    check_destination(&dest, options.force)?;
    let parent = dest
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    fs_err::create_dir_all(&parent)
        .map_err(|source| Error::io("cannot create the destination's parent", source))?;
    let staging = tempfile::Builder::new()
        .prefix(".gopack-unpack-")
        .tempdir_in(&parent)
        .map_err(|source| {
            Error::io(
                format!(
                    "cannot create a staging directory in `{}`",
                    parent.display()
                ),
                source,
            )
        })?;
    reporter.stage("extracting");
    let (manifest, entries, verified) = extract(&options.bundle, staging.path(), cancel, reporter)?;
    reporter.stage("relocating");
    let relocated = relocate_tree(
        staging.path(),
        &manifest.relocation,
        dest.as_os_str().as_bytes(),
    )?;
    std::fs::write(
        staging.path().join(".gopack/prefix"),
        dest.as_os_str().as_bytes(),
    )
    .map_err(|source| Error::io("cannot record the prefix", source))?;
    std::fs::set_permissions(staging.path(), std::fs::Permissions::from_mode(0o755))
        .map_err(|source| Error::io("cannot set the destination's mode", source))?;
    put_in_place(staging, &dest)?;
    Ok(UnpackSummary {
        dest,
        entries,
        verified,
        relocated,
    })
}

fn check_destination(dest: &Path, force: bool) -> Result<()> {
    match std::fs::symlink_metadata(dest) {
        Err(_) => Ok(()),
        Ok(meta) if meta.is_dir() => {
            let empty = std::fs::read_dir(dest)
                .map_err(|source| Error::io(format!("cannot read `{}`", dest.display()), source))?
                .next()
                .is_none();
            if empty || force {
                Ok(())
            } else {
                Err(Error::DestinationNotEmpty {
                    path: dest.to_path_buf(),
                })
            }
        }
        Ok(_) if force => Ok(()),
        Ok(_) => Err(Error::DestinationNotEmpty {
            path: dest.to_path_buf(),
        }),
    }
}

/// Swaps the staging directory into place: an old destination is moved aside first and removed
/// only after the new one is in place.
fn put_in_place(staging: tempfile::TempDir, dest: &Path) -> Result<()> {
    let staged = staging.keep();
    let fail = |source| {
        Error::io(
            format!(
                "cannot move the unpacked environment to `{}`",
                dest.display()
            ),
            source,
        )
    };
    if std::fs::symlink_metadata(dest).is_ok() {
        let aside = dest.with_file_name(format!(
            ".gopack-old-{}-{}",
            dest.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            std::process::id()
        ));
        std::fs::rename(dest, &aside).map_err(fail)?;
        if let Err(source) = std::fs::rename(&staged, dest) {
            let _ = std::fs::rename(&aside, dest);
            let _ = std::fs::remove_dir_all(&staged);
            return Err(fail(source));
        }
        let removed = if aside.is_dir() {
            std::fs::remove_dir_all(&aside)
        } else {
            std::fs::remove_file(&aside)
        };
        removed.map_err(|source| {
            Error::io(
                format!("cannot remove the old `{}`", aside.display()),
                source,
            )
        })?;
        return Ok(());
    }
    std::fs::rename(&staged, dest).map_err(|source| {
        let _ = std::fs::remove_dir_all(&staged);
        fail(source)
    })
}

/// A relative path from the archive, checked: no root, no `..`, no empty or NUL names.
fn safe_relative(name: &[u8]) -> std::result::Result<PathBuf, String> {
    if name.is_empty() || name.contains(&0) {
        return Err("empty name or NUL byte".into());
    }
    if name.starts_with(b"/") {
        return Err("absolute path".into());
    }
    let mut out = PathBuf::new();
    for component in Path::new(OsStr::from_bytes(name)).components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err("`..` leads outside the destination".into()),
            Component::RootDir | Component::Prefix(_) => return Err("absolute path".into()),
        }
    }
    if out.as_os_str().is_empty() {
        return Err("empty name".into());
    }
    Ok(out)
}

/// Whether a symlink at `link` (relative) with `target` stays inside the root, lexically.
fn symlink_stays_inside(link: &Path, target: &[u8]) -> bool {
    if target.is_empty() || target.starts_with(b"/") {
        return false;
    }
    let mut depth: i64 = link.components().count() as i64 - 1;
    for component in Path::new(OsStr::from_bytes(target)).components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            Component::CurDir => {}
            _ => return false,
        }
    }
    true
}

/// Refuses to write below anything that is not a real directory (an earlier symlink).
fn check_parents(root: &Path, relative: &Path, entry: &str) -> Result<()> {
    let mut current = root.to_path_buf();
    let parent = relative.parent().unwrap_or(Path::new(""));
    for part in parent.components() {
        current.push(part);
        match std::fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(Error::HostileEntry {
                    entry: entry.into(),
                    reason: "it would be written through a symlink".into(),
                });
            }
            Ok(meta) if !meta.is_dir() => {
                return Err(Error::HostileEntry {
                    entry: entry.into(),
                    reason: "a parent is not a directory".into(),
                });
            }
            Ok(_) => {}
            Err(_) => {
                fs_err::create_dir(&current)
                    .map_err(|source| Error::io("cannot create a directory", source))?;
            }
        }
    }
    Ok(())
}

fn extract(
    bundle: &Path,
    root: &Path,
    cancel: &AtomicBool,
    reporter: &dyn Reporter,
) -> Result<(Manifest, u64, u64)> {
    let bad = |message: String| Error::BadBundle {
        path: bundle.to_path_buf(),
        message,
    };
    let mut archive = tar::Archive::new(open_tar(bundle)?);
    let entries = archive
        .entries()
        .map_err(|err| bad(format!("not a tar archive: {err}")))?;
    let mut manifest: Option<Manifest> = None;
    let mut expected: HashMap<Vec<u8>, (String, u64)> = HashMap::new();
    let mut dir_times: Vec<(PathBuf, u64)> = Vec::new();
    let mut count = 0u64;
    let mut verified = 0u64;
    let mut buffer = vec![0u8; 256 * 1024];
    let mut symlinks: Vec<(String, PathBuf)> = Vec::new();
    let mut arcroot: Option<Vec<u8>> = None;
    for entry in entries {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Interrupted);
        }
        let mut entry = entry.map_err(|err| bad(format!("corrupt or truncated archive: {err}")))?;
        let name = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&name).into_owned();
        let hostile = |reason: String| Error::HostileEntry {
            entry: shown.clone(),
            reason,
        };
        let full = safe_relative(&name).map_err(&hostile)?;
        let full_key = full.as_os_str().as_bytes();
        // A bundle made with --arcroot holds the environment under a directory: the manifest's
        // path tells which, and everything else must be below it.
        if manifest.is_none() && arcroot.is_none() {
            if let Some(root_part) = full_key.strip_suffix(MANIFEST_PATH.as_bytes()) {
                arcroot = Some(root_part.to_vec());
            } else if !full_key.ends_with(b".gopack")
                && entry.header().entry_type() != EntryType::Directory
            {
                return Err(bad(format!(
                    "`{MANIFEST_PATH}` is not its first member: it was not written by gopack"
                )));
            } else {
                continue; // `.gopack/` (or the arcroot's directories) before the manifest
            }
        }
        let root_part = arcroot.as_deref().unwrap_or_default();
        let Some(stripped) = full_key.strip_prefix(root_part) else {
            return Err(hostile(
                "it lies outside the bundle's root directory".into(),
            ));
        };
        let relative = safe_relative(stripped).map_err(&hostile)?;
        let header = entry.header().clone();
        let mode = header.mode().unwrap_or(0o644) & 0o777;
        let mtime = header.mtime().unwrap_or(0);
        let target = root.join(&relative);
        let key = relative.as_os_str().as_bytes().to_vec();
        check_parents(root, &relative, &shown)?;
        if std::fs::symlink_metadata(&target).is_ok() && header.entry_type() != EntryType::Directory
        {
            return Err(hostile("the archive holds it twice".into()));
        }
        match header.entry_type() {
            EntryType::Directory => {
                match std::fs::symlink_metadata(&target) {
                    Ok(meta) if meta.is_dir() => {}
                    Ok(_) => return Err(hostile("a directory would replace another entry".into())),
                    Err(_) => fs_err::create_dir(&target)
                        .map_err(|source| Error::io("cannot create a directory", source))?,
                }
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode | 0o700))
                    .map_err(|source| Error::io("cannot set a directory's mode", source))?;
                dir_times.push((target, mtime));
            }
            EntryType::Regular | EntryType::Continuous => {
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc_nofollow())
                    .open(&target)
                    .map_err(|source| Error::io(format!("cannot create `{shown}`"), source))?;
                let mut hasher = Sha256::new();
                let mut manifest_bytes = Vec::new();
                let is_manifest = key == MANIFEST_PATH.as_bytes();
                loop {
                    let read = entry.read(&mut buffer).map_err(|err| {
                        bad(format!("corrupt or truncated archive at `{shown}`: {err}"))
                    })?;
                    if read == 0 {
                        break;
                    }
                    hasher.update(&buffer[..read]);
                    if is_manifest {
                        manifest_bytes.extend_from_slice(&buffer[..read]);
                    }
                    file.write_all(&buffer[..read])
                        .map_err(|source| Error::io(format!("cannot write `{shown}`"), source))?;
                    reporter.written(read as u64);
                }
                drop(file);
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode))
                    .map_err(|source| Error::io("cannot set a file's mode", source))?;
                set_mtime(&target, mtime)?;
                if is_manifest {
                    let parsed = Manifest::from_json(&manifest_bytes).map_err(bad)?;
                    for file in &parsed.files {
                        if let (Some(sha), Some(size)) = (&file.sha256, file.size) {
                            expected.insert(file.path.0.clone(), (sha.clone(), size));
                        }
                    }
                    manifest = Some(parsed);
                } else if let Some((sha, _)) = expected.remove(&key) {
                    if hex::encode(hasher.finalize()) != sha {
                        return Err(bad(format!(
                            "`{shown}` does not match its sha256 in the manifest: the bundle is corrupt or was altered"
                        )));
                    }
                    verified += 1;
                } else if !key.starts_with(b".gopack/") {
                    return Err(bad(format!(
                        "`{shown}` is not listed in the manifest: the bundle was altered"
                    )));
                }
            }
            EntryType::Symlink => {
                let link = entry
                    .link_name_bytes()
                    .ok_or_else(|| hostile("symlink without a target".into()))?
                    .into_owned();
                if !symlink_stays_inside(&relative, &link) {
                    return Err(hostile(format!(
                        "symlink to `{}` leads outside the destination",
                        String::from_utf8_lossy(&link)
                    )));
                }
                std::os::unix::fs::symlink(OsStr::from_bytes(&link), &target).map_err(
                    |source| Error::io(format!("cannot create symlink `{shown}`"), source),
                )?;
                symlinks.push((shown.clone(), target.clone()));
            }
            EntryType::Link => {
                let link = entry
                    .link_name_bytes()
                    .ok_or_else(|| hostile("hard link without a target".into()))?
                    .into_owned();
                let link = link
                    .strip_prefix(arcroot.as_deref().unwrap_or_default())
                    .ok_or_else(|| {
                        hostile("hard link target outside the bundle's root directory".into())
                    })?
                    .to_vec();
                let link_relative = safe_relative(&link)
                    .map_err(|reason| hostile(format!("hard link target: {reason}")))?;
                let source = root.join(&link_relative);
                check_parents(root, &link_relative, &shown)?;
                match std::fs::symlink_metadata(&source) {
                    Ok(meta) if meta.is_file() => {}
                    _ => {
                        return Err(hostile(
                            "hard link to something that is not a file extracted earlier".into(),
                        ));
                    }
                }
                std::fs::hard_link(&source, &target)
                    .map_err(|err| Error::io(format!("cannot create hard link `{shown}`"), err))?;
            }
            other => {
                return Err(hostile(format!(
                    "entries of type {other:?} (devices, fifos, …) are not extracted"
                )));
            }
        }
        count += 1;
    }
    let manifest = manifest.ok_or_else(|| {
        bad(format!(
            "no `{MANIFEST_PATH}`: it was not written by gopack"
        ))
    })?;
    if !expected.is_empty() {
        let mut missing: Vec<String> = expected
            .keys()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect();
        missing.sort();
        missing.truncate(5);
        return Err(bad(format!(
            "truncated: {} file(s) listed in the manifest are missing, e.g. {}",
            expected.len(),
            missing.join(", ")
        )));
    }
    check_symlink_chains(root, &symlinks)?;
    // Directory times last: writing into a directory changes its mtime.
    for (dir, mtime) in dir_times.into_iter().rev() {
        set_mtime(&dir, mtime)?;
    }
    Ok((manifest, count, verified))
}

/// Each symlink passed the lexical check alone; resolved together (a link through another
/// link) they must still end inside the root.
fn check_symlink_chains(root: &Path, symlinks: &[(String, PathBuf)]) -> Result<()> {
    let root = std::fs::canonicalize(root)
        .map_err(|source| Error::io("cannot resolve the staging directory", source))?;
    for (shown, link) in symlinks {
        // The longest part of the link's resolution that exists must be inside the root.
        let target = std::fs::read_link(link)
            .map_err(|source| Error::io("cannot read a symlink", source))?;
        let mut probe = link.parent().unwrap_or(&root).join(target);
        let resolved = loop {
            match std::fs::canonicalize(&probe) {
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
            return Err(Error::HostileEntry {
                entry: shown.clone(),
                reason: "symlink leads outside the destination through other symlinks".into(),
            });
        }
    }
    Ok(())
}

fn libc_nofollow() -> i32 {
    // O_NOFOLLOW: never open through a symlink planted at the final component.
    #[cfg(target_os = "linux")]
    {
        0o400000
    }
    #[cfg(not(target_os = "linux"))]
    {
        0x0100
    }
}

fn set_mtime(path: &Path, mtime: u64) -> Result<()> {
    let time = filetime::FileTime::from_unix_time(mtime as i64, 0);
    filetime::set_symlink_file_times(path, time, time).map_err(|source| {
        Error::io(
            format!("cannot set the time of `{}`", path.display()),
            source,
        )
    })
}

/// Applies the relocation records to the tree at `root` for files that will live at `new_prefix`:
/// the same rewrite `bin/gopack-unpack` does. Every binary slot is checked before any file is
/// changed.
///
/// # Errors
/// [`Error::PrefixTooLong`] listing the slots that do not fit; I/O errors.
pub fn relocate_tree(root: &Path, relocation: &Relocation, new_prefix: &[u8]) -> Result<u64> {
    let old = &relocation.source_prefix.0;
    if old.as_slice() == new_prefix {
        return Ok(0);
    }
    relocation.check_fits(new_prefix)?;
    let path_of = |bytes: &[u8]| -> Result<PathBuf> {
        let relative = safe_relative(bytes).map_err(|reason| Error::HostileEntry {
            entry: String::from_utf8_lossy(bytes).into_owned(),
            reason: format!("relocation record: {reason}"),
        })?;
        Ok(root.join(relative))
    };
    let mut count = 0;
    for record in &relocation.text {
        let path = path_of(&record.path.0)?;
        let content = fs_err::read(&path)
            .map_err(|source| Error::io("cannot read a file to relocate", source))?;
        let new = replace_all(&content, old, new_prefix);
        rewrite(&path, &new)?;
        if record.path.0.ends_with(b".py") {
            drop_bytecode(&path);
        }
        count += 1;
    }
    for record in &relocation.binary {
        let path = path_of(&record.path.0)?;
        let mut content = fs_err::read(&path)
            .map_err(|source| Error::io("cannot read a file to relocate", source))?;
        for slot in &record.slots {
            let bytes = slot.render(new_prefix).expect("checked above");
            let start = slot.offset as usize;
            let end = start + bytes.len();
            if end > content.len() {
                return Err(Error::HostileEntry {
                    entry: record.path.display(),
                    reason: "relocation record points past the end of the file".into(),
                });
            }
            content[start..end].copy_from_slice(&bytes);
        }
        rewrite(&path, &content)?;
        count += 1;
    }
    Ok(count)
}

/// Replaces a file's content through a temporary file and a rename, keeping its mode and mtime.
fn rewrite(path: &Path, content: &[u8]) -> Result<()> {
    let meta = fs_err::metadata(path)
        .map_err(|source| Error::io("cannot read a file to relocate", source))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::Builder::new()
        .prefix(".gopack-new-")
        .tempfile_in(dir)
        .map_err(|source| Error::io(format!("cannot write beside `{}`", path.display()), source))?;
    temp.write_all(content)
        .map_err(|source| Error::io(format!("cannot write beside `{}`", path.display()), source))?;
    temp.as_file()
        .set_permissions(meta.permissions())
        .map_err(|source| Error::io("cannot set a file's mode", source))?;
    let mtime = filetime::FileTime::from_last_modification_time(&meta);
    filetime::set_file_handle_times(temp.as_file(), None, Some(mtime))
        .map_err(|source| Error::io("cannot keep a file's time", source))?;
    temp.persist(path)
        .map_err(|err| Error::io(format!("cannot replace `{}`", path.display()), err.error))?;
    Ok(())
}

/// Removes `__pycache__/<stem>.*.pyc` of a rewritten Python source, so Python cannot load values
/// compiled from the old text.
fn drop_bytecode(source: &Path) {
    let (Some(dir), Some(stem)) = (source.parent(), source.file_stem()) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(dir.join("__pycache__")) else {
        return;
    };
    let mut prefix = stem.as_bytes().to_vec();
    prefix.push(b'.');
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name.as_bytes().starts_with(&prefix) && name.as_bytes().ends_with(b".pyc") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_refused() {
        assert!(safe_relative(b"/etc/passwd").is_err());
        assert!(safe_relative(b"a/../../x").is_err());
        assert!(safe_relative(b"").is_err());
        assert!(safe_relative(b"./").is_err());
        assert_eq!(safe_relative(b"./a/b").unwrap(), PathBuf::from("a/b"));
    }

    #[test]
    fn symlinks_must_stay_inside() {
        assert!(symlink_stays_inside(Path::new("bin/go"), b"../go/bin/go"));
        assert!(symlink_stays_inside(Path::new("lib/x"), b"libx.so"));
        assert!(!symlink_stays_inside(Path::new("bin/go"), b"../../etc"));
        assert!(!symlink_stays_inside(Path::new("x"), b"/etc/passwd"));
        assert!(!symlink_stays_inside(Path::new("a/b"), b"../c/../../../x"));
    }
}
