//! Hand-made bundles for tests of hostile input: members written with raw names, types, sizes
//! and modes (the tar crate refuses to write hostile names itself), after a manifest that lists
//! them — or, member by member, does not — optionally zstd-compressed.

#![allow(dead_code)]

use std::path::Path;

use sha2::Digest;
use tar::EntryType;

/// One raw archive member.
#[derive(Clone)]
pub struct Raw {
    pub name: Vec<u8>,
    pub kind: EntryType,
    pub link: Vec<u8>,
    pub data: Vec<u8>,
    pub mode: u32,
    /// Listed in the manifest.
    pub listed: bool,
    /// The size the header claims, when it is not the content's.
    pub header_size: Option<u64>,
}

/// A bundle assembled member by member.
#[derive(Clone, Default)]
pub struct HandBundle {
    pub members: Vec<Raw>,
}

impl HandBundle {
    pub fn new() -> HandBundle {
        HandBundle::default()
    }

    pub fn raw(mut self, name: &[u8], kind: EntryType, link: &[u8], data: &[u8]) -> Self {
        let mode = if kind == EntryType::Directory {
            0o755
        } else {
            0o644
        };
        self.members.push(Raw {
            name: name.to_vec(),
            kind,
            link: link.to_vec(),
            data: data.to_vec(),
            mode,
            listed: true,
            header_size: None,
        });
        self
    }

    pub fn file(self, name: &str, data: &[u8]) -> Self {
        self.raw(name.as_bytes(), EntryType::Regular, b"", data)
    }

    pub fn dir(self, name: &str) -> Self {
        self.raw(name.as_bytes(), EntryType::Directory, b"", b"")
    }

    pub fn symlink(self, name: &str, target: &str) -> Self {
        self.raw(name.as_bytes(), EntryType::Symlink, target.as_bytes(), b"")
    }

    pub fn hard_link(self, name: &str, target: &str) -> Self {
        self.raw(name.as_bytes(), EntryType::Link, target.as_bytes(), b"")
    }

    fn last(&mut self) -> &mut Raw {
        self.members.last_mut().expect("a member was added")
    }

    /// The last member is left out of the manifest.
    pub fn unlisted(mut self) -> Self {
        self.last().listed = false;
        self
    }

    /// The last member's header claims `size` bytes (its content stays as given).
    pub fn header_size(mut self, size: u64) -> Self {
        self.last().header_size = Some(size);
        self
    }

    /// The last member's mode.
    pub fn mode(mut self, mode: u32) -> Self {
        self.last().mode = mode;
        self
    }

    /// A manifest listing every listed member as it is.
    pub fn manifest(&self) -> serde_json::Value {
        let files: Vec<serde_json::Value> = self
            .members
            .iter()
            .filter(|raw| raw.listed)
            .map(|raw| {
                let path = String::from_utf8_lossy(&raw.name)
                    .trim_end_matches('/')
                    .to_string();
                let target = String::from_utf8_lossy(&raw.link).into_owned();
                match raw.kind {
                    EntryType::Regular => serde_json::json!({
                        "path": path, "type": "file", "mode": raw.mode,
                        "size": raw.data.len(),
                        "sha256": hex::encode(sha2::Sha256::digest(&raw.data)),
                    }),
                    EntryType::Directory => {
                        serde_json::json!({"path": path, "type": "dir", "mode": raw.mode})
                    }
                    EntryType::Symlink => serde_json::json!({
                        "path": path, "type": "symlink", "mode": raw.mode, "target": target,
                    }),
                    EntryType::Link => serde_json::json!({
                        "path": path, "type": "hardlink", "mode": raw.mode, "target": target,
                    }),
                    // The manifest has no type for devices and fifos: list them as empty files, so
                    // the member itself is what is refused.
                    _ => serde_json::json!({
                        "path": path, "type": "file", "mode": raw.mode, "size": 0,
                        "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                    }),
                }
            })
            .collect();
        serde_json::json!({
            "format_version": 1,
            "gopack_version": "0",
            "source_prefix": "/x",
            "platform": "linux-64",
            "packages": [],
            "pip_packages": [],
            "go_binaries": [],
            "relocation": {
                "source_prefix": "/x", "text": [], "binary": [], "fixed": [], "left_alone": []
            },
            "totals": {"files": 0, "symlinks": 0, "hardlinks": 0, "dirs": 0, "bytes": 0},
            "files": files,
        })
    }

    /// The tar stream: the manifest bytes as the first member, then the members, then the
    /// end-of-archive marker.
    pub fn tar(&self, manifest: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let manifest_member = Raw {
            name: b".gopack/manifest.json".to_vec(),
            kind: EntryType::Regular,
            link: Vec::new(),
            data: manifest.to_vec(),
            mode: 0o644,
            listed: false,
            header_size: None,
        };
        for raw in std::iter::once(&manifest_member).chain(&self.members) {
            out.extend_from_slice(&header(raw));
            out.extend_from_slice(&raw.data);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
        out.extend_from_slice(&[0u8; 1024]);
        out
    }

    /// Writes the bundle with its own manifest; zstd-compressed when `path` ends in `.zst`.
    pub fn write(&self, path: &Path) {
        self.write_with(path, &self.manifest());
    }

    /// Writes the bundle with `manifest` instead of its own.
    pub fn write_with(&self, path: &Path, manifest: &serde_json::Value) {
        let tar = self.tar(&serde_json::to_vec(manifest).unwrap());
        write_maybe_zstd(path, &tar);
    }
}

/// Writes `tar` to `path`, zstd-compressed (with a frame checksum) when `path` ends in `.zst`.
pub fn write_maybe_zstd(path: &Path, tar: &[u8]) {
    if path.to_string_lossy().ends_with(".zst") {
        let mut encoder = zstd::Encoder::new(Vec::new(), 3).unwrap();
        encoder.include_checksum(true).unwrap();
        std::io::Write::write_all(&mut encoder, tar).unwrap();
        std::fs::write(path, encoder.finish().unwrap()).unwrap();
    } else {
        std::fs::write(path, tar).unwrap();
    }
}

/// A raw ustar header (names up to 100 bytes, stored as given).
pub fn header(raw: &Raw) -> [u8; 512] {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(raw.kind);
    header.set_mode(raw.mode);
    header.set_mtime(1_700_000_000);
    header.set_size(raw.header_size.unwrap_or(raw.data.len() as u64));
    let old = header.as_old_mut();
    old.name[..raw.name.len()].copy_from_slice(&raw.name);
    old.linkname[..raw.link.len()].copy_from_slice(&raw.link);
    header.set_cksum();
    *header.as_bytes()
}

/// A raw archive member: name, type, link target, content.
pub type RawEntry<'a> = (&'a [u8], EntryType, &'a [u8], &'a [u8]);

/// A plain tar bundle whose manifest lists `entries` as they are (so that what refuses them
/// is the check of the entry itself, not the listing).
pub fn hostile_bundle(path: &Path, entries: &[RawEntry<'_>]) {
    let mut bundle = HandBundle::new();
    for (name, kind, link, data) in entries {
        bundle = bundle.raw(name, *kind, link, data);
    }
    bundle.write(path);
}
