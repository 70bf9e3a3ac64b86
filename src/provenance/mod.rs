//! Provenance: what a bundle holds, in the two standard forms security teams read, and whether
//! an environment unpacked from it still holds exactly that.
//!
//! - [`sbom`]: a CycloneDX 1.5 or SPDX 2.3 JSON document of a bundle or an unpacked
//!   environment, made from the manifest alone (plus the `RECORD` files of pip distributions),
//!   byte-for-byte the same for the same bundle.
//! - [`checksum`]: `BUNDLE.sha256` in `sha256sum` format, written by `gopack create` and checked
//!   by `gopack unpack` when it is there.
//! - [`verify`]: `gopack verify DIR`, every file, link, directory and mode of an unpacked,
//!   relocated environment compared with its manifest.
//!
//! [`finish_bundle`] is what `gopack create` calls once the bundle is written.

pub mod checksum;
pub mod sbom;
pub mod verify;

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::progress::Reporter;
pub use sbom::{SbomFormat, SbomOptions};

/// What `gopack create` writes beside the bundle.
#[derive(Debug, Clone)]
pub struct ProvenanceOptions {
    /// Write `BUNDLE.sha256` (`--no-checksum` turns it off; a stale one is then removed).
    pub checksum: bool,
    /// Write an SBOM of the bundle here (`--sbom FILE`).
    pub sbom: Option<SbomOutput>,
}

impl Default for ProvenanceOptions {
    /// What `gopack create` does without options: the checksum file, no SBOM.
    fn default() -> Self {
        ProvenanceOptions {
            checksum: true,
            sbom: None,
        }
    }
}

/// An SBOM to write to a file.
#[derive(Debug, Clone)]
pub struct SbomOutput {
    /// The file.
    pub path: PathBuf,
    /// Its format.
    pub format: SbomFormat,
    /// How it is made.
    pub options: SbomOptions,
}

/// Writes what `options` asks for beside the bundle `gopack create` just wrote: the checksum
/// file (or removes a stale one), then the SBOM, both read back from the bundle itself, so they
/// describe exactly the bytes on disk.
///
/// # Errors
/// I/O errors naming the file; [`Error`] when the bundle cannot be read back.
pub fn finish_bundle(
    bundle: &Path,
    options: &ProvenanceOptions,
    reporter: &dyn Reporter,
) -> Result<()> {
    if options.checksum {
        reporter.stage("checksum");
        checksum::write_sidecar(bundle)?;
    } else {
        checksum::remove_stale_sidecar(bundle)?;
    }
    if let Some(output) = &options.sbom {
        reporter.stage("SBOM");
        let document = sbom::Sbom::read(bundle, &output.options)?.render(output.format);
        write_atomic(&output.path, &document)?;
    }
    Ok(())
}

/// Writes `bytes` to a new file beside `path`, syncs it and renames it over `path`, so `path`
/// is never half-written.
///
/// # Errors
/// I/O errors naming the file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let fail = |source| crate::Error::io(format!("cannot write `{}`", path.display()), source);
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut temp = tempfile::Builder::new()
        .prefix(".gopack-partial-")
        .tempfile_in(dir)
        .map_err(fail)?;
    temp.write_all(bytes).map_err(fail)?;
    temp.as_file().sync_all().map_err(fail)?;
    // tempfile creates 0600 files; these are for everyone to read, like the bundle.
    {
        use std::os::unix::fs::PermissionsExt;
        temp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(fail)?;
    }
    temp.persist(path).map_err(|err| fail(err.error))?;
    Ok(())
}

/// What can go wrong in provenance work, beyond I/O.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bundle's sha256 is not the one its checksum file records.
    #[error(
        "bundle `{}` does not match its checksum file `{}`: sha256 {actual}, expected {expected}",
        bundle.display(),
        sidecar.display()
    )]
    ChecksumMismatch {
        /// The bundle.
        bundle: PathBuf,
        /// The checksum file.
        sidecar: PathBuf,
        /// The recorded sha256.
        expected: String,
        /// The bundle's sha256.
        actual: String,
    },
    /// A checksum file that cannot be read as `sha256sum` output.
    #[error("checksum file `{}`: {reason}", path.display())]
    BadChecksumFile {
        /// The checksum file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The directory holds no manifest that gopack can read.
    #[error("`{}` is not an environment unpacked from a gopack bundle: {reason}", path.display())]
    NotUnpacked {
        /// The directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// `gopack verify` found differences.
    #[error(
        "`{}` differs from its manifest: {problems} problem(s)",
        path.display()
    )]
    Drift {
        /// The environment.
        path: PathBuf,
        /// How many differences were found.
        problems: usize,
    },
    /// A pip distribution's `RECORD` in an unpacked environment is not the packed one, so the
    /// SBOM cannot list its files.
    #[error("`{}` differs from the one in the bundle's manifest", path.display())]
    RecordChanged {
        /// The `RECORD` file.
        path: PathBuf,
    },
}

impl Error {
    /// A suggestion the user can act on, if there is one.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::ChecksumMismatch { .. } => Some(
                "the bundle (or its checksum file) changed after `gopack create` wrote it, or a \
                 copy was cut short; copy both again"
                    .into(),
            ),
            Error::NotUnpacked { .. } => Some(
                "pass the directory `gopack unpack -d` or `tar -x` + `bin/gopack-unpack` filled"
                    .into(),
            ),
            Error::Drift { .. } => Some(
                "unpack the bundle again to restore it; `--json` lists every difference".into(),
            ),
            Error::RecordChanged { .. } => Some(
                "run `gopack verify` on the environment, or make the SBOM from the bundle".into(),
            ),
            Error::BadChecksumFile { .. } => {
                Some("remove it, or write it anew with `sha256sum BUNDLE > BUNDLE.sha256`".into())
            }
        }
    }
}
