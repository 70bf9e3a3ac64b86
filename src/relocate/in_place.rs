//! Relocating an extracted environment where it stands: what `.gopack/relocate`, the native
//! relocator a bundle carries, does when `bin/gopack-unpack` runs it. The records are the ones
//! the script reads (`.gopack/records.sh`), the bytes are the native engine's ([`super::apply`]),
//! and the steps are the script's, file for file, so either can finish a run the other was
//! stopped in:
//!
//! 1. A journal (`.gopack/relocating`) left by a run stopped while renaming: finish that run.
//! 2. Remove staged files (`NAME.gopack-new`) of a run stopped before its journal.
//! 3. Check every record, changing nothing.
//! 4. Stage every new file beside its original, on all cores.
//! 5. Write the journal, rename every staged file into place, relink hard links, drop bytecode of
//!    rewritten Python sources, record the new prefix in `.gopack/prefix`, remove the journal.

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use rayon::prelude::*;

use super::apply::{self, PREFIX_STATE, Planned};
use super::{ByteString, Relocation};
use crate::error::{Error, Result};

/// The records the relocator reads.
pub const RECORDS: &str = ".gopack/records.sh";
/// The journal: holds the new prefix once every new file is staged, until all are in place.
pub const JOURNAL: &str = ".gopack/relocating";
/// Suffix of a file staged beside the one it replaces.
const STAGED: &str = ".gopack-new";

/// What [`relocate_in_place`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InPlace {
    /// The files already held this prefix.
    AlreadyThere(Vec<u8>),
    /// The files were relocated.
    Relocated {
        /// The prefix they held.
        from: Vec<u8>,
        /// The prefix they hold now.
        to: Vec<u8>,
        /// Files renamed into place (this run's and a stopped run's).
        files: u64,
        /// Python scripts whose `#!` line can hold the new prefix in no form.
        broken_shebangs: Vec<ByteString>,
    },
}

/// Relocates the extracted environment at `root` to `root` itself, by the journal protocol of
/// `bin/gopack-unpack` (see the module documentation). `root` is used as given: the script
/// passes the directory as its shell sees it, and that is the prefix the files get.
///
/// # Errors
/// [`Error::DamagedEnvironment`] for missing or malformed records or recorded files;
/// [`Error::PrefixTooLong`] listing every binary string without room;
/// [`Error::UnreachablePrefix`]; [`Error::HostileEntry`] for a record that leaves the
/// environment; [`Error::Interrupted`]; I/O errors naming the file. After an error before the journal is written nothing is changed;
/// after it, running again finishes the relocation.
pub fn relocate_in_place(root: &Path, cancel: &AtomicBool) -> Result<InPlace> {
    let to = root.as_os_str().as_bytes().to_vec();
    apply::check_target(&to)?;
    let relocation = read_records(root)?;
    let mut finished = 0;
    let from = match read_small(&root.join(JOURNAL))? {
        Some(journal) => {
            // Every new file of that run was staged: put them in place before anything else.
            finished = commit(root, &relocation)?;
            write_state(root, PREFIX_STATE, &journal)?;
            remove(&root.join(JOURNAL))?;
            journal
        }
        None => apply::current_prefix(root, &relocation.source_prefix.0)?,
    };
    discard_staged(root, &relocation)?;
    if from == to {
        return Ok(InPlace::AlreadyThere(to));
    }
    let (changes, broken_shebangs) = apply::plan_changes(&relocation, &to)?;
    check_present(root, &changes)?;
    if let Err(err) = stage_all(root, &changes, &from, &to, cancel) {
        discard_staged(root, &relocation)?;
        return Err(err);
    }
    write_state(root, JOURNAL, &to)?;
    let files = commit(root, &relocation)? + finished;
    write_state(root, PREFIX_STATE, &to)?;
    remove(&root.join(JOURNAL))?;
    Ok(InPlace::Relocated {
        from,
        to,
        files,
        broken_shebangs,
    })
}

fn read_records(root: &Path) -> Result<Relocation> {
    let path = root.join(RECORDS);
    let bytes = fs_err::read(&path).map_err(|source| {
        Error::io(
            "cannot read the relocation records; this is not a gopack bundle, or it is damaged",
            source,
        )
    })?;
    super::script::parse_records(&bytes).map_err(|message| Error::DamagedEnvironment {
        path: path.clone(),
        message: format!("its relocation records are damaged: {message}"),
    })
}

/// A small state file, or `None` when it does not exist; never followed through a symlink.
fn read_small(path: &Path) -> Result<Option<Vec<u8>>> {
    use std::io::Read;
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path);
    match opened {
        Ok(file) => {
            let mut bytes = Vec::new();
            file.take(4096)
                .read_to_end(&mut bytes)
                .map_err(|source| Error::io(format!("cannot read `{}`", path.display()), source))?;
            Ok(Some(bytes))
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::io(
            format!("cannot read `{}`", path.display()),
            source,
        )),
    }
}

/// Writes a state file under a fixed staged name (the one the script uses, so either cleans up
/// after the other) and renames it into place.
fn write_state(root: &Path, name: &str, content: &[u8]) -> Result<()> {
    let path = root.join(name);
    let staged = staged_path(&path);
    let fail = |source| Error::io(format!("cannot write `{}`", path.display()), source);
    remove(&staged)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&staged)
        .map_err(fail)?;
    file.write_all(content).map_err(fail)?;
    drop(file);
    fs_err::rename(&staged, &path).map_err(fail)
}

fn staged_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(STAGED);
    PathBuf::from(name)
}

/// Removes a file; a missing one is fine.
fn remove(path: &Path) -> Result<()> {
    match fs_err::remove_file(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(Error::io(
            format!("cannot remove `{}`", path.display()),
            err,
        )),
        _ => Ok(()),
    }
}

/// Every file a record rewrites, with its other names.
fn records(relocation: &Relocation) -> impl Iterator<Item = (&ByteString, &[ByteString])> {
    let text = relocation
        .text
        .iter()
        .map(|record| (&record.path, record.links.as_slice()));
    text.chain(
        relocation
            .binary
            .iter()
            .map(|record| (&record.path, record.links.as_slice())),
    )
}

fn discard_staged(root: &Path, relocation: &Relocation) -> Result<()> {
    remove(&staged_path(&root.join(PREFIX_STATE)))?;
    remove(&staged_path(&root.join(JOURNAL)))?;
    for (path, links) in records(relocation) {
        for name in std::iter::once(path).chain(links) {
            remove(&staged_path(&apply::record_path(root, &name.0)?))?;
        }
    }
    Ok(())
}

/// Refuses to start when a recorded file is missing, listing them all, or when one is reached
/// through a symlink that leads out of the environment (a tree changed after extraction).
fn check_present(root: &Path, changes: &[Planned<'_>]) -> Result<()> {
    let unreadable = |source| Error::io(format!("cannot resolve `{}`", root.display()), source);
    let real_root = fs_err::canonicalize(root).map_err(unreadable)?;
    let mut missing = Vec::new();
    for planned in changes {
        let path = apply::record_path(root, &planned.path.0)?;
        match path.parent().map(fs_err::canonicalize) {
            Some(Ok(dir)) if !dir.starts_with(&real_root) => {
                return Err(Error::HostileEntry {
                    entry: planned.path.display(),
                    reason: "relocation record: its directory leads out of the environment \
                             through a symlink"
                        .into(),
                });
            }
            Some(Ok(_)) if fs_err::symlink_metadata(&path).is_ok_and(|meta| meta.is_file()) => {}
            _ => missing.push(planned.path.display()),
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::DamagedEnvironment {
        path: root.to_path_buf(),
        message: format!(
            "files recorded for relocation are missing or not regular files: {}",
            missing.join(", ")
        ),
    })
}

/// Writes every new file beside its original, in parallel; stops at the first error.
fn stage_all(
    root: &Path,
    changes: &[Planned<'_>],
    from: &[u8],
    to: &[u8],
    cancel: &AtomicBool,
) -> Result<()> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Vec<Result<()>> = (0..rayon::current_num_threads())
        .into_par_iter()
        .map(|_| {
            loop {
                if failed.load(Ordering::Relaxed) {
                    return Ok(());
                }
                if cancel.load(Ordering::Relaxed) {
                    return Err(Error::Interrupted);
                }
                let Some(planned) = changes.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    return Ok(());
                };
                if let Err(err) = stage(root, planned, from, to) {
                    failed.store(true, Ordering::Relaxed);
                    return Err(err);
                }
            }
        })
        .collect();
    results.into_iter().collect()
}

fn stage(root: &Path, planned: &Planned<'_>, from: &[u8], to: &[u8]) -> Result<()> {
    let file = apply::record_path(root, &planned.path.0)?;
    let source = apply::open_regular(&file, planned.path)?;
    let content = apply::changed_content(&source, &file, &planned.change, from, to)?;
    let staged = staged_path(&file);
    let out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o600)
        .open(&staged)
        .map_err(|source| Error::io(format!("cannot write `{}`", staged.display()), source))?;
    apply::write_like(&out, &file, &source, content)
}

/// Renames every staged file into place, relinks its other names and drops bytecode of a
/// rewritten Python source. Idempotent: a file already renamed is skipped, links are made again.
fn commit(root: &Path, relocation: &Relocation) -> Result<u64> {
    let mut renamed = 0;
    for (path, links) in records(relocation) {
        let file = apply::record_path(root, &path.0)?;
        let staged = staged_path(&file);
        match fs_err::rename(&staged, &file) {
            Ok(()) => renamed += 1,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => {
                return Err(Error::io(
                    format!(
                        "cannot rename `{}` into place; run gopack-unpack again",
                        staged.display()
                    ),
                    err,
                ));
            }
        }
        for link in links {
            relink(&file, &apply::record_path(root, &link.0)?)?;
        }
        if path.0.ends_with(b".py") {
            apply::drop_bytecode(&file);
        }
    }
    Ok(renamed)
}

/// Makes `link` another name of `file`: a new link under the staged name, renamed over it, so
/// the name always exists and a stopped run leaves only a staged name the next run removes.
fn relink(file: &Path, link: &Path) -> Result<()> {
    let staged = staged_path(link);
    let fail = |source| {
        Error::io(
            format!("cannot link `{}` to the relocated file", link.display()),
            source,
        )
    };
    remove(&staged)?;
    fs_err::hard_link(file, &staged).map_err(fail)?;
    fs_err::rename(&staged, link).map_err(fail)
}
