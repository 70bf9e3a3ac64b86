//! End-to-end tests: the built `gopack` binary on realistic fixture environments, and on small
//! synthetic ones where no real interpreter is needed.

// Tests use std::fs freely; `.ci/clippy.toml` forbids it in the library only.
#![allow(clippy::disallowed_methods, clippy::unwrap_used, clippy::expect_used)]

mod create;
mod create_safety;
mod engine;
mod fuzz;
mod go;
mod installer;
mod layout;
mod macho;
mod messages;
mod oci;
mod provenance;
mod relocate;
mod relocator;
mod spark;
mod unpack;
mod unpack_safety;
mod util;
