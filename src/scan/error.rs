//! What can go wrong listing and reading the environment's files.

use std::path::PathBuf;

use crate::error::{ErrorKind, list_lines};

/// Listing and reading the files of the environment being packed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Files that conda-meta lists are gone from the prefix.
    #[error("{} file(s) managed by conda are missing from the environment:\n{}", missing.len(), list_missing(missing))]
    MissingManagedFiles {
        /// (package, relative path) pairs.
        missing: Vec<(String, String)>,
    },
    /// Editable Python installs point outside the prefix and would not survive the move.
    #[error(
        "the environment has editable (development) Python installs that point outside it:\n{}",
        list_lines(found)
    )]
    EditableInstalls {
        /// One description per offending file.
        found: Vec<String>,
    },
    /// Symlinks lead out of the environment: no careful extractor (`gopack unpack` included)
    /// would accept the bundle.
    #[error(
        "{} symlink(s) lead out of the environment; `gopack unpack` would refuse the bundle:\n{}",
        links.len(),
        list_lines(links)
    )]
    SymlinksOutside {
        /// `link → target` lines, the link relative to the prefix.
        links: Vec<String>,
    },
    /// `--copy-outside-links` cannot pack these links' targets in place of the links.
    #[error(
        "--copy-outside-links: {} symlink(s) cannot be replaced by their target's content:\n{}",
        links.len(),
        list_lines(links)
    )]
    OutsideLinksNotCopied {
        /// `link → target: why` lines.
        links: Vec<String>,
    },
    /// A file could not be read.
    #[error("cannot read `{}`", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file changed while it was being packed.
    #[error("`{}` changed while it was being packed (its size or modification time differs)", path.display())]
    ChangedDuringPack {
        /// The file.
        path: PathBuf,
    },
    /// A glob given to `--include`/`--exclude` does not parse.
    #[error("invalid glob `{pattern}`")]
    BadGlob {
        /// The pattern.
        pattern: String,
        /// The glob parser's complaint.
        #[source]
        source: globset::Error,
    },
}

fn list_missing(missing: &[(String, String)]) -> String {
    let mut out = String::new();
    for (i, (package, path)) in missing.iter().enumerate() {
        if i == 20 {
            out.push_str(&format!("  … and {} more\n", missing.len() - 20));
            break;
        }
        out.push_str(&format!("  {package}: {path}\n"));
    }
    out.trim_end().to_string()
}

impl Error {
    /// A bad glob is a usage error (exit 2); the rest are the environment's (exit 1).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::BadGlob { .. } => ErrorKind::Internal,
            _ => ErrorKind::User,
        }
    }

    /// A suggestion the user can act on, if there is one.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::MissingManagedFiles { .. } => Some(
                "a pip install or a manual edit usually removes conda's files; reinstall the package, \
                 or pass `--ignore-missing-files` to pack without them"
                    .into(),
            ),
            Error::EditableInstalls { .. } => Some(
                "install those packages normally (`pip install .` without `-e`), or pass \
                 `--ignore-editable-packages` to pack them as they are"
                    .into(),
            ),
            Error::SymlinksOutside { .. } => Some(
                "leave them out with `--exclude PATH` (one per link), or pass `--copy-outside-links` \
                 to pack the content of each target (a regular file) in place of its link"
                    .into(),
            ),
            Error::OutsideLinksNotCopied { .. } => Some(
                "leave them out with `--exclude PATH`; gopack copies single files only, so copy a \
                 directory into the environment yourself"
                    .into(),
            ),
            Error::ChangedDuringPack { .. } => {
                Some("stop whatever is writing into the environment and pack again".into())
            }
            _ => None,
        }
    }
}
