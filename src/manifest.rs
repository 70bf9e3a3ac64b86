//! The manifest, `.gopack/manifest.json`, the first member of every bundle: what was packed
//! (conda and pip packages, every file's sha256 and size, Go binaries) and the relocation
//! records the target applies. Versioned by [`FORMAT_VERSION`]; it holds no pack-time clock.

use serde::{Deserialize, Serialize};

use crate::go::GoBinary;
use crate::plan::{Body, CondaPackage, PipPackage, Plan, Relocation};
use crate::relocate::ByteString;
use crate::scan::EntryKind;

/// Where the manifest sits inside the bundle (relative to the environment's root).
pub const MANIFEST_PATH: &str = ".gopack/manifest.json";
/// The manifest format version; readers refuse newer major versions.
pub const FORMAT_VERSION: u32 = 1;

/// One packed path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// Path relative to the environment's root.
    pub path: ByteString,
    /// `file`, `symlink`, `hardlink` or `dir`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Permission bits.
    pub mode: u32,
    /// Size of the packed content (files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// sha256 of the packed content (files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Link target (symlinks, hard links).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<ByteString>,
}

/// Totals for people.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Regular files.
    pub files: u64,
    /// Symlinks.
    pub symlinks: u64,
    /// Hard links (second names).
    pub hardlinks: u64,
    /// Directories.
    pub dirs: u64,
    /// Bytes of file content.
    pub bytes: u64,
}

/// The manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// Manifest format version.
    pub format_version: u32,
    /// The gopack version that wrote it.
    pub gopack_version: String,
    /// The environment's prefix when it was packed.
    pub source_prefix: ByteString,
    /// The conda platform (`linux-64`, …).
    pub platform: String,
    /// Conda packages.
    pub packages: Vec<CondaPackage>,
    /// Python distributions no conda record owns.
    pub pip_packages: Vec<PipPackage>,
    /// Go binaries, collected or built.
    pub go_binaries: Vec<GoBinary>,
    /// Relocation records and pack-time fixes.
    pub relocation: Relocation,
    /// Totals.
    pub totals: Totals,
    /// Every packed path except gopack's own `.gopack/` metadata.
    pub files: Vec<FileRecord>,
}

impl Manifest {
    /// Builds the manifest of a plan.
    pub fn from_plan(plan: &Plan) -> Manifest {
        let mut totals = Totals::default();
        let mut files = Vec::with_capacity(plan.entries.len());
        for planned in &plan.entries {
            let entry = &planned.entry;
            if entry.path.starts_with(b".gopack/") || entry.path == b".gopack" {
                continue;
            }
            let (kind, target) = match &entry.kind {
                EntryKind::Dir => {
                    totals.dirs += 1;
                    ("dir", None)
                }
                EntryKind::File => {
                    totals.files += 1;
                    ("file", None)
                }
                EntryKind::HardLink { target } => {
                    totals.hardlinks += 1;
                    ("hardlink", Some(ByteString(target.clone())))
                }
                EntryKind::Symlink { target } => {
                    totals.symlinks += 1;
                    ("symlink", Some(ByteString(target.clone())))
                }
            };
            let (size, sha256) = match &planned.body {
                Body::None => (None, None),
                Body::Disk { sha256, size, .. } | Body::External { sha256, size, .. } => {
                    (Some(*size), Some(hex::encode(sha256)))
                }
                Body::Generated(bytes) => {
                    use sha2::Digest;
                    (
                        Some(bytes.len() as u64),
                        Some(hex::encode(sha2::Sha256::digest(bytes))),
                    )
                }
            };
            totals.bytes += size.unwrap_or(0);
            files.push(FileRecord {
                path: ByteString(entry.path.clone()),
                kind: kind.to_string(),
                mode: entry.mode,
                size,
                sha256,
                target,
            });
        }
        Manifest {
            format_version: FORMAT_VERSION,
            gopack_version: env!("CARGO_PKG_VERSION").to_string(),
            source_prefix: plan.relocation.source_prefix.clone(),
            platform: plan.platform.clone(),
            packages: plan.packages.clone(),
            pip_packages: plan.pip_packages.clone(),
            go_binaries: plan.go_binaries.clone(),
            relocation: plan.relocation.clone(),
            totals,
            files,
        }
    }

    /// Parses a manifest, refusing a format newer than this gopack understands. The error is a
    /// sentence for the caller to attach to the bundle's path.
    pub fn from_json(bytes: &[u8]) -> Result<Manifest, String> {
        let manifest: Manifest =
            serde_json::from_slice(bytes).map_err(|err| format!("unreadable manifest: {err}"))?;
        if manifest.format_version > FORMAT_VERSION {
            return Err(format!(
                "manifest format {} is newer than this gopack understands ({FORMAT_VERSION}); use a newer gopack",
                manifest.format_version
            ));
        }
        Ok(manifest)
    }

    /// The manifest as pretty JSON with a trailing newline.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).expect("manifest serializes");
        out.push(b'\n');
        out
    }
}
