//! gopack turns a conda environment, and the Go services that run beside it, into one
//! relocatable, offline-installable bundle.
//!
//! The work is a pipeline of plain values: [`conda::CondaEnv::open`] reads the environment,
//! [`scan::scan`] lists what to pack, [`plan::plan`] reads every file once and decides what is
//! fixed at pack time and what the target must finish ([`relocate`]), and [`archive`] writes
//! the deterministic bundle. `gopack inspect` and most tests stop before writing anything.

#![deny(missing_docs)]
// Cargo.toml denies unwrap and expect; unit tests may use both.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]
// CI forbids path-taking std::fs calls outside tests (`.ci/clippy.toml`): fs-err's name the file.
#![cfg_attr(test, allow(clippy::disallowed_methods))]

pub mod conda;
pub mod error;
pub mod progress;
pub mod scan;

pub use error::{Error, ErrorKind, Result};
pub mod archive;
pub mod create;
pub mod go;
pub mod installer;
pub mod manifest;
pub mod oci;
pub mod paths;
pub mod plan;
pub mod provenance;
pub mod relocate;
pub mod scripts;
pub mod stream;
pub mod timestamp;
pub mod unpack;
