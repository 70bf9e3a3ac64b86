//! End-to-end tests: the built `gopack` binary on realistic fixture environments.

mod create;
mod relocate;
mod unpack;
mod util;
