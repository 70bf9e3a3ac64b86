//! End-to-end tests: the built `gopack` binary on realistic fixture environments.

mod create;
mod go;
mod relocate;
mod unpack;
mod util;
