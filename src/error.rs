//! The crate's error type: every variant names the file or thing at fault, and says whether the
//! user can fix it (exit code 1) or it is a usage/internal problem (exit code 2).

use std::path::PathBuf;

/// Who can act on an error; the CLI maps this to the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input or the environment is at fault (exit code 1).
    User,
    /// The command line was wrong, or gopack itself failed (exit code 2).
    Internal,
}

/// Everything that can go wrong in gopack's library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O operation failed; `fs-err` already put the path into the source's message.
    #[error("{context}")]
    Io {
        /// What gopack was doing.
        context: String,
        /// The underlying failure (names the path).
        #[source]
        source: std::io::Error,
    },
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
    /// The archive format could not be chosen.
    #[error("unsupported archive format for `{}`; supported: .tar.zst (.tzst), .tar.gz (.tgz), .tar", path.display())]
    UnknownFormat {
        /// The output path (or format name) given.
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
    /// An option value is out of range or contradictory.
    #[error("{0}")]
    Usage(String),
    /// The user pressed Ctrl-C.
    #[error("interrupted; nothing was written")]
    Interrupted,
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
    /// The unpack destination cannot be used.
    #[error("cannot unpack into `{}`: {reason}", path.display())]
    BadDestination {
        /// The destination.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A bundle entry would escape the destination or is of a forbidden type.
    #[error("refusing bundle entry `{entry}`: {reason}")]
    HostileEntry {
        /// The entry's path as stored in the archive.
        entry: String,
        /// Why it is refused.
        reason: String,
    },
    /// The unpack destination exists and is not empty.
    #[error("destination `{}` exists and is not empty", path.display())]
    DestinationNotEmpty {
        /// The destination directory.
        path: PathBuf,
    },
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
    /// A Go toolchain step failed.
    #[error("{message}")]
    Go {
        /// What failed, with the command and its output.
        message: String,
        /// Whether it is the user's problem.
        user: bool,
    },
    /// A problem with a Go binary found in the environment.
    #[error("Go binary `{}`: {message}", path.display())]
    GoBinary {
        /// The binary.
        path: PathBuf,
        /// What is wrong.
        message: String,
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
    /// SBOM, checksum and verify problems ([`crate::provenance`]).
    #[error(transparent)]
    Provenance(#[from] crate::provenance::Error),
    /// Container image problems ([`crate::oci`]).
    #[error(transparent)]
    Oci(#[from] crate::oci::Error),
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

fn list_lines(lines: &[String]) -> String {
    lines
        .iter()
        .map(|line| format!("  {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Error {
    /// Wraps an I/O error with what gopack was doing.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// Whether the user can fix this (exit code 1) or it is a usage/internal problem (exit 2).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Usage(_) | Error::UnknownFormat { .. } | Error::BadGlob { .. } => {
                ErrorKind::Internal
            }
            Error::Go { user, .. } if !user => ErrorKind::Internal,
            _ => ErrorKind::User,
        }
    }

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
                    hint.push_str("\n  no environments were found there; pass the path with `-p PREFIX`");
                } else {
                    hint.push_str(&format!("\n  environments found: {}", found.join(", ")));
                }
                Some(hint)
            }
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
            Error::OutputExists { .. } => Some("pass `-f`/`--force` to overwrite it".into()),
            Error::OutputDirMissing { .. } => Some("create the directory first".into()),
            Error::MalformedRecord { .. } => Some(
                "fix or remove the record; conda writes these files, so reinstalling the package also repairs it"
                    .into(),
            ),
            Error::DestinationNotEmpty { .. } => {
                Some("pass `-f` to replace it, or choose an empty directory".into())
            }
            Error::DamagedEnvironment { .. } => Some(
                "extract the bundle again (`tar -xf`) and run bin/gopack-unpack there".into(),
            ),
            Error::PrefixTooLong { .. } => Some(
                "choose a shorter destination path; binaries built by conda-build have room for 255 bytes"
                    .into(),
            ),
            Error::NotABundle { .. } => Some(
                "pass the `.tar.zst`, `.tar.gz` or `.tar` file that `gopack create` wrote".into(),
            ),
            Error::ChangedDuringPack { .. } => {
                Some("stop whatever is writing into the environment and pack again".into())
            }
            Error::Provenance(err) => err.hint(),
            Error::Oci(err) => err.hint(),
            _ => None,
        }
    }
}

/// Opens a file for reading, as the plain `std::fs::File` the readers take, with fs-err's
/// error, which names the file.
///
/// # Errors
/// The open's, naming `path`.
pub fn open_file(path: impl AsRef<std::path::Path>) -> std::io::Result<std::fs::File> {
    fs_err::File::open(path.as_ref()).map(|file| file.into_parts().0)
}

/// Renders bytes that come from a bundle or a manifest (names, link targets, package fields)
/// for a message or a terminal: UTF-8 text stays as it is, except control characters and
/// bidirectional-text overrides, which become `\x1b` / `\u{202e}` escapes, and bytes that are
/// not UTF-8 become `\xNN`. Nothing a file name holds can then drive the terminal.
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        escape_into(&mut out, chunk.valid());
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

/// [`escape_bytes`] for text that is already UTF-8.
pub fn escape_str(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape_into(&mut out, text);
    out
}

fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        if needs_escape(c) {
            if (c as u32) < 0x100 {
                out.push_str(&format!("\\x{:02x}", c as u32));
            } else {
                out.push_str(&format!("\\u{{{:x}}}", c as u32));
            }
        } else {
            out.push(c);
        }
    }
}

/// Control characters (C0, DEL, C1) and the invisible characters that reorder or hide text.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}'
        )
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_control_characters_overrides_and_invalid_bytes() {
        assert_eq!(escape_bytes(b"bin/python3.11"), "bin/python3.11");
        assert_eq!(escape_bytes(b"a\x1b]0;x\x07b"), "a\\x1b]0;x\\x07b");
        assert_eq!(escape_bytes(b"caf\xe9\n"), "caf\\xe9\\x0a");
        assert_eq!(escape_str("x\u{202e}y\u{9b}"), "x\\u{202e}y\\x9b");
        assert_eq!(escape_str("naïve ünïcode"), "naïve ünïcode");
    }
}
