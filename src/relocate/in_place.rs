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

// Offsets and sizes here come from files: arithmetic on them is checked.
#![deny(clippy::arithmetic_side_effects)]

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;

use super::Error as RelocateError;
use super::apply::{self, PREFIX_STATE, Planned, remove_if_present, staged_path};
use super::{ByteString, Relocation};
use crate::error::{Error, Result};

/// The records the relocator reads.
pub const RECORDS: &str = ".gopack/records.sh";
/// The journal: holds the new prefix once every new file is staged, until all are in place.
pub const JOURNAL: &str = ".gopack/relocating";

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
/// [`RelocateError::DamagedEnvironment`] for missing or malformed records or recorded files;
/// [`RelocateError::PrefixTooLong`] listing every binary string without room;
/// [`RelocateError::UnreachablePrefix`]; [`RelocateError::HostileRecord`] for a record that leaves the
/// environment; [`Error::Interrupted`]; I/O errors naming the file. After an error before the journal is written nothing is changed;
/// after it, running again finishes the relocation.
pub fn relocate_in_place(root: &Path, cancel: &AtomicBool) -> Result<InPlace> {
    let to = root.as_os_str().as_bytes().to_vec();
    apply::check_target(&to)?;
    let relocation = read_records(root)?;
    let mut finished = 0;
    let from = match apply::read_state(&root.join(JOURNAL))? {
        Some(journal) => {
            // Every new file of that run was staged: put them in place before anything else.
            finished = commit(root, &relocation)?;
            apply::write_state(root, PREFIX_STATE, &journal)?;
            remove_if_present(&root.join(JOURNAL))?;
            journal
        }
        None => apply::current_prefix(root, &relocation.source_prefix.0)?,
    };
    discard_staged(root, &relocation)?;
    if from == to {
        return Ok(InPlace::AlreadyThere(to));
    }
    check_records(root, &relocation)?;
    let (changes, broken_shebangs) = apply::plan_changes(&relocation, &to)?;
    if let Err(err) = stage_all(root, &changes, &from, &to, cancel) {
        discard_staged(root, &relocation)?;
        return Err(err);
    }
    apply::write_state(root, JOURNAL, &to)?;
    let files = commit(root, &relocation)?.saturating_add(finished);
    apply::write_state(root, PREFIX_STATE, &to)?;
    remove_if_present(&root.join(JOURNAL))?;
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
    let relocation = super::script::parse_records(&bytes).map_err(|message| {
        RelocateError::DamagedEnvironment {
            path: path.clone(),
            message: format!("its relocation records are damaged: {message}"),
        }
    })?;
    Ok(relocation)
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
    remove_if_present(&staged_path(&root.join(PREFIX_STATE)))?;
    remove_if_present(&staged_path(&root.join(JOURNAL)))?;
    for (path, links) in records(relocation) {
        for name in std::iter::once(path).chain(links) {
            remove_if_present(&staged_path(&apply::record_path(root, &name.0)?))?;
        }
    }
    Ok(())
}

/// Refuses to start when a recorded file is missing or not a regular file (listing them all),
/// when one, or another name it is linked under, is reached through a symlink that leads out of
/// the environment, or when a binary
/// record's string does not lie inside its file (a tree changed after extraction): nothing is
/// rendered from a record before it is checked.
fn check_records(root: &Path, relocation: &Relocation) -> Result<()> {
    let unreadable = |source| Error::io(format!("cannot resolve `{}`", root.display()), source);
    let real_root = fs_err::canonicalize(root).map_err(unreadable)?;
    let damaged = |message: String| RelocateError::DamagedEnvironment {
        path: root.to_path_buf(),
        message,
    };
    // Whether the directory of `file` (a recorded name) resolves outside the environment;
    // `None` when it cannot be resolved.
    let leads_out = |file: &Path| {
        let dir = fs_err::canonicalize(file.parent()?).ok()?;
        Some(!dir.starts_with(&real_root))
    };
    let escape = |name: &ByteString| RelocateError::HostileRecord {
        path: name.display(),
        reason: "its directory leads out of the environment through a symlink".into(),
    };
    let mut missing = Vec::new();
    let mut sizes = Vec::with_capacity(relocation.binary.len());
    for (path, links) in records(relocation) {
        let file = apply::record_path(root, &path.0)?;
        match leads_out(&file) {
            Some(true) => return Err(escape(path).into()),
            Some(false) => match fs_err::symlink_metadata(&file) {
                Ok(meta) if meta.is_file() => sizes.push(meta.len()),
                _ => missing.push(path.display()),
            },
            None => missing.push(path.display()),
        }
        // Other names are made anew, so they need not exist; they must not be made outside.
        for link in links {
            if leads_out(&apply::record_path(root, &link.0)?) == Some(true) {
                return Err(escape(link).into());
            }
        }
    }
    if !missing.is_empty() {
        return Err(damaged(format!(
            "files recorded for relocation are missing or not regular files: {}",
            missing.join(", ")
        ))
        .into());
    }
    // Text records come first in `records`; the sizes left are the binary records' files.
    let binary_sizes = sizes
        .get(sizes.len().saturating_sub(relocation.binary.len())..)
        .unwrap_or_default();
    for (record, &size) in relocation.binary.iter().zip(binary_sizes) {
        for slot in &record.slots {
            slot.check_inside(size).map_err(|reason| {
                damaged(format!(
                    "the string recorded at offset {} of `{}` is damaged: {reason}",
                    slot.offset,
                    record.path.display()
                ))
            })?;
        }
    }
    Ok(())
}

/// Writes every new file beside its original, on all cores; stops at the first error.
fn stage_all(
    root: &Path,
    changes: &[Planned<'_>],
    from: &[u8],
    to: &[u8],
    cancel: &AtomicBool,
) -> Result<()> {
    changes.par_iter().try_for_each(|planned| {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Interrupted);
        }
        stage(root, planned, from, to)
    })
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
    let mut renamed: u64 = 0;
    for (path, links) in records(relocation) {
        let file = apply::record_path(root, &path.0)?;
        let staged = staged_path(&file);
        match fs_err::rename(&staged, &file) {
            Ok(()) => renamed = renamed.saturating_add(1),
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
/// (`apply::relink` uses a random name instead: it works in a private staging tree, where no
/// script has to know the name to clean it up.)
fn relink(file: &Path, link: &Path) -> Result<()> {
    let staged = staged_path(link);
    let fail = |source| {
        Error::io(
            format!("cannot link `{}` to the relocated file", link.display()),
            source,
        )
    };
    remove_if_present(&staged)?;
    fs_err::hard_link(file, &staged).map_err(fail)?;
    fs_err::rename(&staged, link).map_err(fail)
}
