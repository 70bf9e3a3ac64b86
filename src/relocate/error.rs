//! What can go wrong relocating, at pack time or on the target.

use std::path::PathBuf;

use crate::error::{escape_bytes, escape_str, list_lines};

/// Relocation problems: prefixes that cannot be reached, binary strings without room, damaged
/// or hostile records, a relocator that cannot be carried.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A prefix no relocation can start from or go to.
    #[error("the path `{}` cannot be relocated: {reason}", escape_bytes(path.as_os_str().as_encoded_bytes()))]
    UnreachablePrefix {
        /// The prefix.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A target prefix does not fit into binary slots.
    #[error("the target prefix `{prefix}` ({len} bytes) is too long for {} binary slot(s):\n{}", files.len(), list_lines(files))]
    PrefixTooLong {
        /// The requested prefix.
        prefix: String,
        /// Its length in bytes.
        len: usize,
        /// `path (room N bytes)` lines.
        files: Vec<String>,
    },
    /// A relocation record names a path that is not a regular file inside the environment.
    #[error("refusing relocation record `{}`: {reason}", escape_str(path))]
    HostileRecord {
        /// The recorded path (escaped when shown).
        path: String,
        /// Why it is refused.
        reason: String,
    },
    /// An extracted environment cannot be relocated where it stands: its records are damaged,
    /// or files they name are gone.
    #[error("environment `{}`: {message}", path.display())]
    DamagedEnvironment {
        /// The environment, or its file at fault.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The native relocator given to carry in the bundle cannot be carried.
    #[error("relocator `{}`: {message}", path.display())]
    Relocator {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl Error {
    /// A suggestion the user can act on, if there is one.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::DamagedEnvironment { .. } => Some(
                "extract the bundle again (`tar -xf`) and run bin/gopack-unpack there".into(),
            ),
            Error::PrefixTooLong { .. } => Some(
                "choose a shorter destination path; binaries built by conda-build have room for 255 bytes"
                    .into(),
            ),
            Error::HostileRecord { .. } => Some(
                "this bundle was not written by `gopack create`, or was changed after; \
                 get it again from where it was made"
                    .into(),
            ),
            Error::Relocator { .. } => Some(
                "build `gopack-relocate` for the environment's platform and pass it with \
                 `--relocator PATH`, or pass `--no-relocator` to relocate with sh alone"
                    .into(),
            ),
            _ => None,
        }
    }
}
