//! What can go wrong finding and reading a conda environment.

use std::path::PathBuf;

/// Finding and reading a conda environment's records.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The prefix does not exist.
    #[error("environment `{}` does not exist", path.display())]
    EnvironmentMissing {
        /// The directory that was given.
        path: PathBuf,
    },
    /// The prefix is not a conda environment.
    #[error("`{}` is not a conda environment (it has no `conda-meta` directory)", path.display())]
    NotAnEnvironment {
        /// The directory that was given.
        path: PathBuf,
    },
    /// `-n NAME` matched no environment.
    #[error("no conda environment named `{name}` was found")]
    EnvironmentNotFound {
        /// The requested name.
        name: String,
        /// Every place that was searched.
        searched: Vec<PathBuf>,
        /// The environment names that were found there.
        found: Vec<String>,
    },
    /// Neither `-n` nor `-p` was given and no environment is active.
    #[error(
        "no environment given: pass `-n NAME` or `-p PREFIX`, or activate one (CONDA_PREFIX is unset)"
    )]
    NoEnvironmentGiven,
    /// A conda-meta record is not valid JSON or lacks a required field.
    #[error("malformed conda-meta record `{}` at line {line}, column {column}: {message}", path.display())]
    MalformedRecord {
        /// The record file.
        path: PathBuf,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
        /// What the parser said.
        message: String,
    },
}

impl Error {
    /// A suggestion the user can act on, if there is one.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::EnvironmentNotFound {
                searched, found, ..
            } => {
                let mut hint = String::from("searched:");
                for dir in searched {
                    hint.push_str(&format!("\n    {}", dir.display()));
                }
                if found.is_empty() {
                    hint.push_str(
                        "\n  no environments were found there; pass the path with `-p PREFIX`",
                    );
                } else {
                    hint.push_str(&format!("\n  environments found: {}", found.join(", ")));
                }
                Some(hint)
            }
            Error::MalformedRecord { .. } => Some(
                "fix or remove the record; conda writes these files, so reinstalling the package also repairs it"
                    .into(),
            ),
            _ => None,
        }
    }
}
