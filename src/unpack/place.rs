//! Where the unpacked tree is staged and how it takes the destination's place, so that every
//! outcome — success, error, signal, `kill -9`, power loss between two steps — leaves either
//! the old destination or the complete new one, and whatever a killed run left is cleaned (or
//! finished) by the next run for the same destination.
//!
//! Names: a run for destination `…/NAME` works under `.gopack-unpack-NAME-ID` (staging),
//! holds `.gopack-unpack-NAME-ID.lock` locked (`flock`) for its whole life, and may create
//! `.gopack-old-NAME-ID` (the old tree, while swapping without `RENAME_EXCHANGE`) or
//! `.gopack-ready-NAME-ID` (a complete tree being moved up, when staging inside the
//! destination). A name whose lock file is not locked belongs to a dead run. The lock file is
//! created before and removed after everything else of its run.
//!
//! Staging is beside the destination, and the finished tree is swapped in with one atomic
//! `renameat2(RENAME_EXCHANGE)` (two renames where the file system cannot; a run killed between
//! them is rolled back by the next). When the destination is an empty directory whose parent
//! is not writable (a user-owned `/opt/app` under a root-owned `/opt`), or a mount point,
//! staging is inside it and the finished tree's top-level entries are moved up at the end.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::File;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::Error as UnpackError;
use crate::error::{Error, Result};

use super::sys;

const STAGING: &[u8] = b".gopack-unpack-";
const OLD: &[u8] = b".gopack-old-";
const READY: &[u8] = b".gopack-ready-";
const LOCK: &[u8] = b".lock";
const ID_LEN: usize = 10;
const TAG_MAX: usize = 64;

/// Whether a top-level name is one of gopack's temporary names (refused in bundles, so that
/// cleaning never touches a tree's own files).
pub(super) fn is_reserved(name: &[u8]) -> bool {
    [STAGING, OLD, READY]
        .iter()
        .any(|prefix| name.starts_with(prefix))
}

/// The destination as an absolute path with a real last component: `x/..` is resolved, `/`
/// is refused.
///
/// # Errors
/// [`UnpackError::BadDestination`] for `/`; I/O errors resolving the path.
pub(super) fn resolve_destination(dest: &Path) -> Result<PathBuf> {
    let absolute = std::path::absolute(dest)
        .map_err(|source| Error::io(format!("cannot resolve `{}`", dest.display()), source))?;
    let resolved = if absolute.file_name().is_none() {
        fs_err::canonicalize(&absolute)
            .map_err(|source| Error::io(format!("cannot resolve `{}`", dest.display()), source))?
    } else {
        absolute
    };
    if resolved.parent().is_none() || resolved.file_name().is_none() {
        return Err(UnpackError::BadDestination {
            path: dest.to_path_buf(),
            reason: "it is the root directory; name a directory to hold the environment".into(),
        }
        .into());
    }
    Ok(resolved)
}

/// The destination's name as used in temporary names (at most 64 bytes).
fn tag_of(dest: &Path) -> Vec<u8> {
    let name = dest.file_name().map_or(&b""[..], OsStrExt::as_bytes);
    name[..name.len().min(TAG_MAX)].to_vec()
}

fn temp_name(kind: &[u8], tag: &[u8], id: &str, lock: bool) -> OsString {
    let mut name = [kind, tag, b"-", id.as_bytes()].concat();
    if lock {
        name.extend_from_slice(LOCK);
    }
    OsString::from_vec(name)
}

/// The run id in one of our temporary names for `tag`.
fn parse_temp_name(name: &[u8], tag: &[u8]) -> Option<String> {
    let rest = [STAGING, OLD, READY]
        .iter()
        .find_map(|prefix| name.strip_prefix(*prefix))?;
    let rest = if name.starts_with(STAGING) {
        rest.strip_suffix(LOCK).unwrap_or(rest)
    } else {
        rest
    };
    let id = rest.strip_prefix(tag)?.strip_prefix(b"-")?;
    (id.len() == ID_LEN
        && id
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()))
    .then(|| String::from_utf8_lossy(id).into_owned())
}

fn random_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    if let Ok(now) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(now.as_nanos());
    }
    let mut value = hasher.finish();
    (0..ID_LEN)
        .map(|_| {
            let digit = (value % 36) as u8;
            value /= 36;
            char::from(if digit < 10 {
                b'0' + digit
            } else {
                b'a' + digit - 10
            })
        })
        .collect()
}

fn same_file(path: &Path, file: &File) -> bool {
    match (fs_err::symlink_metadata(path), file.metadata()) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Creates and locks a fresh lock file in `dir`; returns it, its path and the run id.
fn create_lock(dir: &Path, tag: &[u8]) -> std::io::Result<(File, PathBuf, String)> {
    for _ in 0..32 {
        let id = random_id();
        let path = dir.join(temp_name(STAGING, tag, &id, true));
        let file = match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(sys::nofollow() | sys::cloexec())
            .open(&path)
        {
            Ok(file) => file,
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(err) => return Err(err),
        };
        // A cleaner that found the name first may hold it (and unlink it): then take another.
        if file.try_lock().is_ok() && same_file(&path, &file) {
            return Ok((file, path, id));
        }
    }
    Err(std::io::Error::other("cannot create a unique staging name"))
}

enum LockState {
    /// A live run holds it (or it cannot be told).
    Held,
    /// Nobody held it; now we do.
    Free(#[allow(dead_code)] File),
    /// There is none.
    Missing,
}

fn take_lock(path: &Path) -> LockState {
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(sys::nofollow() | sys::cloexec())
        .open(path)
    {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return LockState::Missing,
        Err(_) => return LockState::Held,
    };
    if file.try_lock().is_ok() && same_file(path, &file) {
        LockState::Free(file)
    } else {
        LockState::Held
    }
}

/// Removes a file, symlink or directory tree, making directories writable where that is what
/// stops the removal (trees with read-only directories). A missing path is not an error.
pub(super) fn remove_tree(path: &Path) -> std::io::Result<()> {
    let meta = match fs_err::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err),
    };
    if !meta.is_dir() {
        return fs_err::remove_file(path);
    }
    match fs_err::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) if sys::is_permission(&err) => {
            make_writable(path);
            fs_err::remove_dir_all(path)
        }
        Err(err) => Err(err),
    }
}

fn make_writable(root: &Path) {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(meta) = fs_err::symlink_metadata(&dir) else {
            continue;
        };
        if !meta.is_dir() {
            continue;
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o700 != 0o700 {
            let _ = fs_err::set_permissions(&dir, std::fs::Permissions::from_mode(mode | 0o700));
        }
        if let Ok(entries) = fs_err::read_dir(&dir) {
            stack.extend(entries.flatten().map(|entry| entry.path()));
        }
    }
}

/// Moves every entry of `ready` up into `dest`, then removes `ready`. On failure, what was
/// moved is moved back, so `dest` holds all of the tree or none of it.
fn move_up(ready: &Path, dest: &Path) -> std::io::Result<()> {
    let mut moved: Vec<OsString> = Vec::new();
    let result = (|| {
        for entry in fs_err::read_dir(ready)? {
            let name = entry?.file_name();
            let (from, to) = (ready.join(&name), dest.join(&name));
            // Never over something that appeared in the destination meanwhile.
            sys::rename_noreplace(&from, &to).map_err(|err| {
                std::io::Error::new(
                    err.kind(),
                    format!(
                        "cannot move `{}` to `{}`: {err}",
                        from.display(),
                        to.display()
                    ),
                )
            })?;
            moved.push(name);
        }
        fs_err::remove_dir(ready)
    })();
    if result.is_err() {
        for name in moved.iter().rev() {
            let _ = fs_err::rename(dest.join(name), ready.join(name));
        }
    }
    result
}

/// Cleans what killed runs for `dest` left beside it and inside it: staging directories are
/// removed; an old tree moved aside is put back when the destination is missing (the run died
/// between its two renames) and removed otherwise; a complete tree that was being moved up
/// into the destination is moved up. Names whose lock a live run holds are left alone.
/// Best effort: what cannot be cleaned stays for a later run.
pub(super) fn clean_stale(dest: &Path) {
    let tag = tag_of(dest);
    if let Some(parent) = dest.parent() {
        clean_in(parent, &tag, dest, false);
    }
    if fs_err::symlink_metadata(dest).is_ok_and(|meta| meta.is_dir()) {
        clean_in(dest, &tag, dest, true);
    }
}

fn clean_in(dir: &Path, tag: &[u8], dest: &Path, inside: bool) {
    let Ok(entries) = fs_err::read_dir(dir) else {
        return;
    };
    let ids: BTreeSet<String> = entries
        .flatten()
        .filter_map(|entry| parse_temp_name(entry.file_name().as_bytes(), tag))
        .collect();
    for id in ids {
        let lock_path = dir.join(temp_name(STAGING, tag, &id, true));
        let lock = take_lock(&lock_path);
        if matches!(lock, LockState::Held) {
            continue;
        }
        if inside {
            let ready = dir.join(temp_name(READY, tag, &id, false));
            if ready.is_dir() && move_up(&ready, dest).is_err() {
                continue; // leave the lock file: the next run tries again
            }
        } else {
            let aside = dir.join(temp_name(OLD, tag, &id, false));
            if fs_err::symlink_metadata(&aside).is_ok() {
                let restored =
                    fs_err::symlink_metadata(dest).is_err() && fs_err::rename(&aside, dest).is_ok();
                if !restored && remove_tree(&aside).is_err() {
                    continue;
                }
            }
        }
        if remove_tree(&dir.join(temp_name(STAGING, tag, &id, false))).is_ok() {
            let _ = fs_err::remove_file(&lock_path);
        }
        drop(lock);
    }
}

/// The staging directory of one run, with its lock. Dropped without
/// [`Staging::put_in_place`], it removes everything of its run.
pub(super) struct Staging {
    dest: PathBuf,
    /// The staging directory (or, inside the destination, the ready tree being moved up).
    dir: PathBuf,
    /// Whether staging is inside the destination.
    inside: bool,
    tag: Vec<u8>,
    id: String,
    lock_path: PathBuf,
    _lock: File,
    done: bool,
}

impl Staging {
    /// Creates the staging directory for `dest` (resolved), beside it where its parent is
    /// writable, inside it where it is an empty directory whose parent is not writable or a
    /// mount point.
    ///
    /// # Errors
    /// [`UnpackError::BadDestination`] when neither is possible; I/O errors.
    pub(super) fn create(dest: &Path) -> Result<Staging> {
        let parent = dest.parent().unwrap_or(Path::new("/"));
        let bad = |reason: &str| UnpackError::BadDestination {
            path: dest.to_path_buf(),
            reason: reason.into(),
        };
        if let Err(err) = fs_err::create_dir_all(parent) {
            return Err(if sys::is_permission(&err) {
                bad(
                    "its parent directory cannot be created; create the destination as an empty directory you own first",
                ).into()
            } else {
                Error::io("cannot create the destination's parent", err)
            });
        }
        let existing = fs_err::symlink_metadata(dest).ok();
        let is_dir = existing.as_ref().is_some_and(|meta| meta.is_dir());
        let empty = is_dir
            && fs_err::read_dir(dest)
                .map_err(|source| Error::io("cannot read the destination", source))?
                .next()
                .is_none();
        let mount = is_dir
            && fs_err::metadata(parent)
                .map_err(|source| Error::io("cannot read the destination's parent", source))?
                .dev()
                != existing.as_ref().map_or(0, MetadataExt::dev);
        let tag = tag_of(dest);
        if mount {
            if empty {
                return Staging::make(dest, dest, tag, true);
            }
            return Err(bad(
                "it is a mount point and not empty: gopack replaces a destination by renaming, which a mount point does not allow; empty it (gopack then unpacks inside it), or unpack into a directory below it",
            ).into());
        }
        match Staging::make(dest, parent, tag.clone(), false) {
            Err(Error::Io { source, .. }) if sys::is_permission(&source) => {
                if empty {
                    Staging::make(dest, dest, tag, true)
                } else if existing.is_some() {
                    Err(bad(
                        "its parent directory is not writable, so it cannot be replaced; empty it first (gopack then unpacks inside it)",
                    ).into())
                } else {
                    Err(bad(
                        "its parent directory is not writable; create the destination as an empty directory you own first (gopack then unpacks inside it)",
                    ).into())
                }
            }
            other => other,
        }
    }

    fn make(dest: &Path, dir: &Path, tag: Vec<u8>, inside: bool) -> Result<Staging> {
        let fail = |source| {
            Error::io(
                format!("cannot create a staging directory in `{}`", dir.display()),
                source,
            )
        };
        let (lock, lock_path, id) = create_lock(dir, &tag).map_err(fail)?;
        let staging = Staging {
            dest: dest.to_path_buf(),
            dir: dir.join(temp_name(STAGING, &tag, &id, false)),
            inside,
            tag,
            id,
            lock_path,
            _lock: lock,
            done: false,
        };
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&staging.dir)
            .map_err(fail)?;
        Ok(staging)
    }

    /// The staging directory.
    pub(super) fn path(&self) -> &Path {
        &self.dir
    }

    /// Gives the new tree's root its mode: an existing destination directory's own mode (and,
    /// for root, its owner), as `tar -x -C` leaves the directory it extracts into; `mode` for a
    /// new one. Staged inside the destination, the destination stays as it is.
    ///
    /// # Errors
    /// I/O errors.
    pub(super) fn finish_root(&self, mode: u32) -> Result<()> {
        if self.inside {
            return Ok(());
        }
        let fail = |source| Error::io("cannot set the destination's mode", source);
        match fs_err::symlink_metadata(&self.dest) {
            Ok(old) if old.is_dir() => {
                if sys::is_root() {
                    std::os::unix::fs::lchown(&self.dir, Some(old.uid()), Some(old.gid()))
                        .map_err(fail)?;
                }
                fs_err::set_permissions(
                    &self.dir,
                    std::fs::Permissions::from_mode(old.mode() & 0o7777),
                )
                .map_err(fail)
            }
            _ => fs_err::set_permissions(&self.dir, std::fs::Permissions::from_mode(mode))
                .map_err(fail),
        }
    }

    /// Puts the finished tree in the destination's place: with `force`, whatever the
    /// destination is, is swapped out atomically; without, only a missing destination or an
    /// empty directory is replaced (a plain rename refuses anything else, even one that
    /// appeared since the destination was checked).
    ///
    /// # Errors
    /// I/O errors; the destination then holds what it held before.
    pub(super) fn put_in_place(mut self, force: bool) -> Result<()> {
        let dest = self.dest.clone();
        let fail = |source| {
            Error::io(
                format!(
                    "cannot move the unpacked environment to `{}`",
                    dest.display()
                ),
                source,
            )
        };
        if self.inside {
            let ready = dest.join(temp_name(READY, &self.tag, &self.id, false));
            fs_err::rename(&self.dir, &ready).map_err(fail)?;
            self.dir = ready;
            move_up(&self.dir, &dest).map_err(fail)?;
        } else {
            match fs_err::symlink_metadata(&dest) {
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                    fs_err::rename(&self.dir, &dest).map_err(fail)?;
                }
                Err(err) => return Err(fail(err)),
                Ok(_) if !force => fs_err::rename(&self.dir, &dest).map_err(fail)?,
                Ok(_) => match sys::exchange(&self.dir, &dest) {
                    // The old tree is now under the staging name; the lock still covers it.
                    Ok(()) => remove_tree(&self.dir).map_err(|source| {
                        Error::io(
                            format!("cannot remove the old `{}`", dest.display()),
                            source,
                        )
                    })?,
                    Err(err) if sys::is_unsupported(&err) => {
                        self.swap_by_renames().map_err(fail)?
                    }
                    Err(err) => return Err(fail(err)),
                },
            }
        }
        self.done = true;
        let _ = fs_err::remove_file(&self.lock_path);
        Ok(())
    }

    /// Two renames where `RENAME_EXCHANGE` is not available: the old tree goes aside under
    /// this run's id; a run killed between the renames is rolled back by the next one.
    fn swap_by_renames(&mut self) -> std::io::Result<()> {
        let parent = self.dest.parent().unwrap_or(Path::new("/"));
        let aside = parent.join(temp_name(OLD, &self.tag, &self.id, false));
        fs_err::rename(&self.dest, &aside)?;
        if let Err(err) = fs_err::rename(&self.dir, &self.dest) {
            let _ = fs_err::rename(&aside, &self.dest);
            return Err(err);
        }
        remove_tree(&aside)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if remove_tree(&self.dir).is_ok() {
            let _ = fs_err::remove_file(&self.lock_path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_round_trip_and_match_only_their_destination() {
        let id = random_id();
        assert_eq!(id.len(), ID_LEN);
        for kind in [STAGING, OLD, READY] {
            let name = temp_name(kind, b"env", &id, false);
            assert_eq!(parse_temp_name(name.as_bytes(), b"env"), Some(id.clone()));
            assert_eq!(parse_temp_name(name.as_bytes(), b"en"), None);
            assert_eq!(parse_temp_name(name.as_bytes(), b"env-2"), None);
            assert!(is_reserved(name.as_bytes()));
        }
        let lock = temp_name(STAGING, b"env", &id, true);
        assert_eq!(parse_temp_name(lock.as_bytes(), b"env"), Some(id));
        assert_eq!(parse_temp_name(b".gopack-unpack-AbC123", b"env"), None);
        assert!(!is_reserved(b".gopack"));
    }

    #[test]
    fn a_held_lock_protects_a_live_run_and_a_released_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("env");
        let (lock, lock_path, id) = create_lock(dir.path(), b"env").unwrap();
        let staging = dir.path().join(temp_name(STAGING, b"env", &id, false));
        fs_err::create_dir(&staging).unwrap();
        clean_stale(&dest);
        assert!(staging.is_dir() && lock_path.is_file());
        drop(lock);
        clean_stale(&dest);
        assert!(!staging.exists() && !lock_path.exists());
    }

    #[test]
    fn read_only_trees_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("t");
        fs_err::create_dir_all(tree.join("a/b")).unwrap();
        fs_err::write(tree.join("a/b/f"), b"x").unwrap();
        for path in [tree.join("a/b"), tree.join("a")] {
            fs_err::set_permissions(path, std::fs::Permissions::from_mode(0o555)).unwrap();
        }
        remove_tree(&tree).unwrap();
        assert!(!tree.exists());
        remove_tree(&tree).unwrap();
    }
}
