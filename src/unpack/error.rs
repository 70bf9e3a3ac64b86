//! What can go wrong unpacking a bundle into a destination.

use std::path::PathBuf;

use crate::error::escape_str;

/// Unpacking problems: the destination, and entries no careful extractor accepts.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The unpack destination cannot be used.
    #[error("cannot unpack into `{}`: {reason}", path.display())]
    BadDestination {
        /// The destination.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The unpack destination exists and is not empty.
    #[error("destination `{}` exists and is not empty", path.display())]
    DestinationNotEmpty {
        /// The destination directory.
        path: PathBuf,
    },
    /// A bundle entry would escape the destination or is of a forbidden type.
    #[error("refusing bundle entry `{}`: {reason}", escape_str(entry))]
    HostileEntry {
        /// The entry's path as stored in the archive.
        entry: String,
        /// Why it is refused.
        reason: String,
    },
}

impl Error {
    /// A suggestion the user can act on, if there is one.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::DestinationNotEmpty { .. } => {
                Some("pass `-f` to replace it, or choose an empty directory".into())
            }
            Error::HostileEntry { .. } => Some(
                "this bundle was not written by `gopack create`, or was changed after; \
                 get it again from where it was made"
                    .into(),
            ),
            _ => None,
        }
    }
}
