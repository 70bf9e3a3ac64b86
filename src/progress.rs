//! Progress and warnings: the library reports through [`Reporter`] and never prints.

use std::path::PathBuf;

/// Something the user should know about that does not stop the work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// Managed files were missing and dropped because of `--ignore-missing-files`.
    MissingFilesIgnored {
        /// (package, path) pairs.
        files: Vec<(String, String)>,
    },
    /// Editable installs were packed as they are because of `--ignore-editable-packages`.
    EditableIgnored {
        /// One line per offending file.
        found: Vec<String>,
    },
    /// A socket, fifo or device file was skipped.
    SpecialFileSkipped {
        /// The skipped file.
        path: PathBuf,
    },
    /// Files keep bytes of the source prefix that gopack leaves alone on purpose.
    PrefixLeftAlone {
        /// Why these are left alone (for example "Go binary" or "Python bytecode").
        reason: String,
        /// The files.
        paths: Vec<String>,
    },
    /// Symlinks leading out of the environment were packed as copies of their targets
    /// (`--copy-outside-links`).
    OutsideLinksCopied {
        /// `link → target` lines.
        links: Vec<String>,
    },
    /// A generated file replaced a file of the same name in the environment.
    Replaced {
        /// The path, relative to the prefix.
        path: String,
        /// What replaced it.
        by: String,
    },
    /// Environment variables whose names no shell can set were left out of activation.
    EnvVarsSkipped {
        /// The names.
        names: Vec<String>,
    },
    /// A Go binary built for another platform, packed because of `--allow-foreign-go`.
    ForeignGoBinary {
        /// The binary.
        path: String,
        /// What it was built for and what the environment is.
        message: String,
    },
    /// Go binaries built without `-trimpath`, packed byte for byte.
    UntrimmedGoBinaries {
        /// The binaries.
        paths: Vec<String>,
    },
    /// Python scripts whose `#!` line cannot name the new location.
    UnwritableShebangs {
        /// The new location.
        prefix: String,
        /// The scripts.
        paths: Vec<String>,
    },
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Warning::MissingFilesIgnored { files } => {
                write!(f, "{} missing managed file(s) left out:", files.len())?;
                for (package, path) in files.iter().take(20) {
                    write!(f, "\n  {package}: {path}")?;
                }
                if files.len() > 20 {
                    write!(f, "\n  … and {} more", files.len() - 20)?;
                }
                Ok(())
            }
            Warning::EditableIgnored { found } => {
                write!(
                    f,
                    "editable installs packed as they are (they point outside the environment):"
                )?;
                for line in found {
                    write!(f, "\n  {line}")?;
                }
                Ok(())
            }
            Warning::SpecialFileSkipped { path } => {
                write!(
                    f,
                    "skipped `{}`: sockets, fifos and device files cannot be packed",
                    path.display()
                )
            }
            Warning::PrefixLeftAlone { reason, paths } => {
                write!(
                    f,
                    "{} file(s) keep the source prefix and are left alone ({reason}):",
                    paths.len()
                )?;
                for path in paths.iter().take(10) {
                    write!(f, "\n  {path}")?;
                }
                if paths.len() > 10 {
                    write!(f, "\n  … and {} more (see the manifest)", paths.len() - 10)?;
                }
                Ok(())
            }
            Warning::OutsideLinksCopied { links } => {
                write!(
                    f,
                    "{} symlink(s) leading out of the environment packed as copies of their target:",
                    links.len()
                )?;
                for link in links {
                    write!(f, "\n  {link}")?;
                }
                Ok(())
            }
            Warning::Replaced { path, by } => {
                write!(f, "`{path}` in the environment is replaced by {by}")
            }
            Warning::EnvVarsSkipped { names } => write!(
                f,
                "environment variable(s) left out of activation, their names are not shell names: {}\n  hint: rename them in etc/conda/env_vars.d or with `conda env config vars`",
                names.join(", ")
            ),
            Warning::ForeignGoBinary { path, message } => {
                write!(f, "Go binary `{path}` {message}")
            }
            Warning::UntrimmedGoBinaries { paths } => write!(
                f,
                "{} Go binar{} built without -trimpath (packed byte-for-byte; they embed build paths): {}\n  hint: rebuild with `go build -trimpath`, or let gopack build them with `--go`",
                paths.len(),
                if paths.len() == 1 {
                    "y was"
                } else {
                    "ies were"
                },
                paths.join(", ")
            ),
            Warning::UnwritableShebangs { prefix, paths } => write!(
                f,
                "the path `{prefix}` cannot be written into the first line of these Python scripts; run them as `python SCRIPT`: {}",
                paths.join(", ")
            ),
        }
    }
}

impl Warning {
    /// What a user reads: `warning:` and the message, escaped for the terminal.
    pub fn report(&self) -> String {
        format!(
            "warning: {}",
            crate::error::terminal_safe(&self.to_string())
        )
    }
}

/// Receives progress and warnings. Every method has a no-op default, so a caller implements
/// only what it shows. Implementations must be cheap: they are called from worker threads.
pub trait Reporter: Send + Sync {
    /// A stage starts (`"scanning"`, `"analysing"`, `"writing"`, `"building Go"`…).
    fn stage(&self, _name: &str) {}
    /// The scan found this many entries and bytes of regular files.
    fn scanned(&self, _entries: u64, _bytes: u64) {}
    /// This many more bytes of file content have been analysed (read, hashed, searched).
    fn analysed(&self, _bytes: u64) {}
    /// This many more bytes of file content have been written into the archive.
    fn written(&self, _bytes: u64) {}
    /// Something the user should know.
    fn warning(&self, _warning: &Warning) {}
}

/// A reporter that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoReporter;

impl Reporter for NoReporter {}
