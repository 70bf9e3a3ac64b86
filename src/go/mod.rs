//! Go binaries: reading their build info ([`buildinfo`]) and describing each one that ends up
//! in the bundle, collected from the environment or built by gopack.

pub mod build;
pub mod buildinfo;
pub mod bundle;
mod error;

use serde::{Deserialize, Serialize};

use crate::relocate::ByteString;
pub use buildinfo::BuildInfo;
pub use error::Error;

/// Where a Go binary came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// Found in the environment.
    Collected,
    /// Built by gopack from the environment's Go sources.
    Built,
}

/// A Go binary in the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoBinary {
    /// Path relative to the prefix.
    pub path: ByteString,
    /// sha256 of the packed file.
    pub sha256: String,
    /// Where it came from.
    pub origin: Origin,
    /// What it says about its build.
    pub build_info: BuildInfo,
}

impl GoBinary {
    /// A binary found in the environment.
    pub fn collected(path: &[u8], sha256: String, build_info: BuildInfo) -> Self {
        GoBinary {
            path: ByteString(path.to_vec()),
            sha256,
            origin: Origin::Collected,
            build_info,
        }
    }

    /// The conda platform it was built for, from its GOOS/GOARCH settings.
    pub fn conda_platform(&self) -> Option<&'static str> {
        buildinfo::conda_platform(
            self.build_info.setting("GOOS")?,
            self.build_info.setting("GOARCH")?,
        )
    }
}
