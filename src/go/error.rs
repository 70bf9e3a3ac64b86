//! What can go wrong finding Go, building the environment's Go packages, and reading Go binaries.

use std::path::PathBuf;

use crate::error::{ErrorKind, indent_lines};

/// Go toolchain, build and binary problems.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `--go-toolchain` names something that cannot be run.
    #[error("--go-toolchain `{}` is not an executable", path.display())]
    ToolchainNotExecutable {
        /// The path given.
        path: PathBuf,
    },
    /// No `go` in the environment or on PATH.
    #[error("no Go toolchain found (searched {})", searched.join(", "))]
    ToolchainNotFound {
        /// Every place searched.
        searched: Vec<String>,
    },
    /// The environment's platform has no GOOS/GOARCH.
    #[error("no Go target for the conda platform `{platform}`")]
    NoTarget {
        /// The conda platform.
        platform: String,
    },
    /// A `--go` directory does not exist.
    #[error(
        "--go `{}`: no such directory (relative paths are tried from the current directory, then the prefix)",
        dir.display()
    )]
    NoSuchDirectory {
        /// The directory, as resolved against the prefix.
        dir: PathBuf,
    },
    /// The workspace holds no `main` package.
    #[error("--go-workspace: no main package found in {place}")]
    NoMainPackage {
        /// The go.work file, or the pattern of module directories searched.
        place: String,
    },
    /// Two packages would be written to the same `bin/` name.
    #[error("two Go packages would both be built as `bin/{name}`; name one with --go NAME=DIR")]
    SameBinaryName {
        /// The name both would take.
        name: String,
    },
    /// The Go command could not be started or its output not read.
    #[error("cannot {what}: cannot run {command}")]
    CannotRun {
        /// What the command was for (`build cmd/health`).
        what: String,
        /// The command line.
        command: String,
        /// Why it could not run.
        #[source]
        source: std::io::Error,
    },
    /// The Go command ran and failed: the command line and everything it printed.
    #[error(
        "cannot {what}: the Go command failed\n  command: {command}\n{}",
        indent_lines(output.lines(), "  | ")
    )]
    CommandFailed {
        /// What the command was for.
        what: String,
        /// The command line, exactly as run.
        command: String,
        /// The compiler's output (stderr, then stdout).
        output: String,
    },
    /// A build thread panicked: a bug in gopack.
    #[error("a Go build thread panicked")]
    BuildThreadPanicked,
    /// A Go binary in the environment or from a build cannot be packed.
    #[error("Go binary `{}`: {message}", path.display())]
    Binary {
        /// The binary.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl Error {
    /// A suggestion the user can act on, if there is one.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::ToolchainNotFound { .. } => Some(
                "install `go` into the environment, put it on PATH, or pass `--go-toolchain PATH`"
                    .into(),
            ),
            Error::CommandFailed { .. } => Some(
                "fix the package (the command above reproduces the failure in its directory); \
                 with `--offline`, its modules must be vendored or in the Go module cache"
                    .into(),
            ),
            _ => None,
        }
    }

    /// A panicked build thread is gopack's fault (exit 2); the rest are the user's (exit 1).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::BuildThreadPanicked => ErrorKind::Internal,
            _ => ErrorKind::User,
        }
    }
}
