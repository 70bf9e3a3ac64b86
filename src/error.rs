//! The crate's error type: every variant names the file or thing at fault, and says whether the
//! user can fix it (exit code 1) or it is a usage/internal problem (exit code 2).

/// Who can act on an error; the CLI maps this to the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input or the environment is at fault (exit code 1).
    User,
    /// The command line was wrong, or gopack itself failed (exit code 2).
    Internal,
}

impl ErrorKind {
    /// The process exit code for an error of this kind.
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::User => 1,
            ErrorKind::Internal => 2,
        }
    }
}

/// Everything that can go wrong in gopack's library: I/O, usage and interruption, which any
/// stage can meet, and one error type per pipeline stage, each naming the file or thing at
/// fault and knowing its own hint.
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
    /// An option value is out of range or contradictory.
    #[error("{0}")]
    Usage(String),
    /// The user pressed Ctrl-C.
    #[error("interrupted; nothing was written")]
    Interrupted,
    /// Finding and reading the conda environment ([`crate::conda`]).
    #[error(transparent)]
    Conda(#[from] crate::conda::Error),
    /// Listing and reading the environment's files ([`crate::scan`]).
    #[error(transparent)]
    Scan(#[from] crate::scan::Error),
    /// Relocation, at pack time or on the target ([`crate::relocate`]).
    #[error(transparent)]
    Relocate(#[from] crate::relocate::Error),
    /// Go toolchains, builds and binaries ([`crate::go`]).
    #[error(transparent)]
    Go(#[from] crate::go::Error),
    /// Writing and reading bundles ([`crate::archive`]).
    #[error(transparent)]
    Archive(#[from] crate::archive::Error),
    /// Unpacking a bundle ([`crate::unpack`]).
    #[error(transparent)]
    Unpack(#[from] crate::unpack::Error),
    /// SBOM, checksum and verify problems ([`crate::provenance`]).
    #[error(transparent)]
    Provenance(#[from] crate::provenance::Error),
    /// Container image problems ([`crate::oci`]).
    #[error(transparent)]
    Oci(#[from] crate::oci::Error),
}

/// Lists one item per line, indented, for messages that name several files.
pub(crate) fn list_lines(lines: &[String]) -> String {
    indent_lines(lines, "  ")
}

/// Each of `lines` after `prefix`, one per line.
pub(crate) fn indent_lines(
    lines: impl IntoIterator<Item = impl std::fmt::Display>,
    prefix: &str,
) -> String {
    lines
        .into_iter()
        .map(|line| format!("{prefix}{line}"))
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
            Error::Usage(_) => ErrorKind::Internal,
            Error::Scan(err) => err.kind(),
            Error::Go(err) => err.kind(),
            Error::Archive(err) => err.kind(),
            _ => ErrorKind::User,
        }
    }

    /// What a user reads for this error: `error:` and the message, one `caused by:` line per
    /// source, then the hint, with control characters escaped so that no file name can drive
    /// the terminal. `program` (`gopack-unpack: `) starts the first line when given.
    pub fn report(&self, program: &str) -> String {
        let mut out = format!("{program}error: {}\n", terminal_safe(&self.to_string()));
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            out.push_str(&format!(
                "  caused by: {}\n",
                terminal_safe(&cause.to_string())
            ));
            source = cause.source();
        }
        if let Some(hint) = self.hint() {
            out.push_str(&format!("hint: {}\n", terminal_safe(&hint)));
        }
        out
    }

    /// A suggestion the user can act on, if there is one.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Conda(err) => err.hint(),
            Error::Scan(err) => err.hint(),
            Error::Relocate(err) => err.hint(),
            Error::Go(err) => err.hint(),
            Error::Archive(err) => err.hint(),
            Error::Unpack(err) => err.hint(),
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

/// [`escape_str`] for each line of a message that may span lines.
pub fn terminal_safe(text: &str) -> String {
    text.split('\n')
        .map(escape_str)
        .collect::<Vec<_>>()
        .join("\n")
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

#[cfg(test)]
mod catalogue;
