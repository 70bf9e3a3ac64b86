//! What can go wrong writing a bundle, or reading one back.

use std::path::PathBuf;

use crate::error::ErrorKind;

/// Writing and reading bundles.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The output exists and `--force` was not given.
    #[error("output `{}` already exists", path.display())]
    OutputExists {
        /// The output path.
        path: PathBuf,
    },
    /// The output's directory does not exist.
    #[error("the output directory `{}` does not exist", path.display())]
    OutputDirMissing {
        /// The missing directory.
        path: PathBuf,
    },
    /// The archive format could not be chosen from the output's name.
    #[error("unsupported archive format for `{}`; supported: .tar.zst (.tzst), .tar.gz (.tgz), .tar", path.display())]
    UnknownFormat {
        /// The output path given.
        path: PathBuf,
    },
    /// A bundle could not be read or is unsafe.
    #[error("bundle `{}`: {message}", path.display())]
    BadBundle {
        /// The bundle file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The file given as a bundle is something else (a zip, a text file, …).
    #[error("`{}` is not a gopack bundle (it is {what})", path.display())]
    NotABundle {
        /// The file.
        path: PathBuf,
        /// What it is, as a noun phrase (`a zip archive`).
        what: String,
    },
}

impl Error {
    /// An output name without a known format is a usage error (exit 2); the rest exit 1.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::UnknownFormat { .. } => ErrorKind::Internal,
            _ => ErrorKind::User,
        }
    }

    /// A suggestion the user can act on, if there is one.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::OutputExists { .. } => Some("pass `-f`/`--force` to overwrite it".into()),
            Error::OutputDirMissing { .. } => Some("create the directory first".into()),
            Error::NotABundle { .. } => Some(
                "pass the `.tar.zst`, `.tar.gz` or `.tar` file that `gopack create` wrote".into(),
            ),
            _ => None,
        }
    }
}
