//! `gopack unpack`: [`unpack`] extracts a bundle natively into a staging directory, verifies
//! every member against the manifest, applies the relocation records for the destination (the
//! same records `bin/gopack-unpack` applies), and puts the tree in the destination's place, so
//! the destination holds either what it held before or the complete new tree.
//!
//! # Security
//! Bundles are hostile until checked. The manifest is validated before anything is extracted
//! ([`crate::manifest::Manifest::validate`]). Every member must be listed in it (only the
//! manifest itself is not) with the same type, size, mode and link target, and that is checked
//! before anything of the member is written; a file's content is read only up to its declared
//! size and must match its sha256; every listed entry must arrive; the compressed stream is
//! read to its end, so its checksum is verified. Absolute paths, `..` components, empty or NUL
//! names, entries below a symlink, symlinks whose target leads outside the destination (alone
//! or through other symlinks), hard links to anything but a regular file extracted earlier, and
//! device files, fifos and other special entries are refused with an error naming the entry.
//! Nothing is written outside the staging directory, which is removed on any error or signal
//! that can be caught; what a killed run leaves is cleaned by the next run (`place`).

mod error;
mod extract;
mod place;
mod sys;

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::archive::read::{open_bundle, read_leading};
use crate::error::Result;
use crate::manifest::normalize_path;
use crate::progress::Reporter;
pub use error::Error;

use extract::Modes;
use place::Staging;

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
/// [`Error::DestinationNotEmpty`], [`Error::BadDestination`], [`crate::archive::Error::NotABundle`],
/// [`Error::HostileEntry`], [`crate::archive::Error::BadBundle`] for corrupt, truncated or tampered bundles,
/// [`crate::relocate::Error::PrefixTooLong`], [`crate::Error::Interrupted`], I/O errors.
pub fn unpack(
    options: &UnpackOptions,
    cancel: &AtomicBool,
    reporter: &dyn Reporter,
) -> Result<UnpackSummary> {
    let dest = place::resolve_destination(&options.dest)?;
    // Refused before anything is extracted.
    crate::relocate::apply::check_target(dest.as_os_str().as_bytes())?;
    place::clean_stale(&dest);
    check_destination(&dest, options.force)?;
    crate::provenance::checksum::verify_sidecar(&options.bundle)?;
    let mut reader = open_bundle(&options.bundle)?;
    let mut leading = read_leading(&mut reader)?;
    // The manifest's bytes are written first and not kept: a large environment's are tens of MB.
    let manifest_bytes = std::mem::take(&mut leading.bytes);
    let staging = Staging::create(&dest)?;
    reporter.stage("extracting");
    let content: u64 = leading
        .manifest
        .files
        .iter()
        .filter_map(|file| file.size)
        .fold(0, u64::saturating_add);
    reporter.scanned(leading.manifest.files.len() as u64, content);
    let modes = Modes::of_process();
    let extracted = extract::extract(
        &options.bundle,
        reader,
        &leading,
        manifest_bytes,
        staging.path(),
        modes,
        cancel,
        reporter,
    )?;
    let manifest = leading.manifest;
    let (entries, verified) = (extracted.entries, extracted.verified);
    reporter.stage("relocating");
    // Relocation starts from the prefix the files hold: `.gopack/prefix` when the bundle was
    // made for a destination (`--dest-prefix`), else the one they were packed from.
    let from = crate::relocate::apply::current_prefix(
        staging.path(),
        &manifest.relocation.source_prefix.0,
    )?;
    let relocated = crate::relocate::apply::relocate_tree(
        staging.path(),
        &manifest.relocation,
        &from,
        dest.as_os_str().as_bytes(),
        cancel,
    )?;
    if !relocated.broken_shebangs.is_empty() {
        reporter.warning(&crate::progress::Warning::UnwritableShebangs {
            prefix: dest.display().to_string(),
            paths: relocated
                .broken_shebangs
                .iter()
                .map(|path| path.display())
                .collect(),
        });
    }
    let relocated = relocated.files;
    crate::relocate::apply::record_prefix(staging.path(), dest.as_os_str().as_bytes())?;
    extracted.finish_dirs()?;
    staging.finish_root(modes.apply(0o755))?;
    if cancel.load(Ordering::Relaxed) {
        return Err(crate::Error::Interrupted);
    }
    staging.put_in_place(options.force)?;
    Ok(UnpackSummary {
        dest,
        entries,
        verified,
        relocated,
    })
}

fn check_destination(dest: &Path, force: bool) -> Result<()> {
    match fs_err::symlink_metadata(dest) {
        Err(_) => Ok(()),
        Ok(meta) if meta.is_dir() => {
            let empty = fs_err::read_dir(dest)
                .map_err(|source| {
                    crate::Error::io(format!("cannot read `{}`", dest.display()), source)
                })?
                .next()
                .is_none();
            if empty || force {
                Ok(())
            } else {
                Err(Error::DestinationNotEmpty {
                    path: dest.to_path_buf(),
                }
                .into())
            }
        }
        Ok(_) if force => Ok(()),
        Ok(_) => Err(Error::DestinationNotEmpty {
            path: dest.to_path_buf(),
        }
        .into()),
    }
}

/// A relative path from the archive, checked: no root, no `..`, no empty or NUL names.
pub fn safe_relative(name: &[u8]) -> std::result::Result<PathBuf, String> {
    normalize_path(name).map(|bytes| PathBuf::from(OsString::from_vec(bytes)))
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
        assert!(safe_relative(b"a\0b").is_err());
        assert_eq!(safe_relative(b"./a//b/").unwrap(), PathBuf::from("a/b"));
    }
}
