//! gopack turns a conda environment, and the Go services that run beside it, into one
//! relocatable, offline-installable bundle.
//!
//! The work is a pipeline of plain values: [`conda::CondaEnv::open`] reads the environment,
//! [`scan::scan`] lists what to pack, [`plan::plan`] reads every file once and decides what is
//! fixed at pack time and what the target must finish ([`relocate`]), and [`archive`] writes
//! the deterministic bundle. `gopack inspect` and most tests stop before writing anything.

#![deny(missing_docs)]
// The library never unwraps: input is hostile until checked. The few `expect`s state an
// invariant the code itself guarantees (a JSON value serialises, a template holds its
// placeholder).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]
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
