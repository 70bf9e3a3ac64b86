//! The manifest, `.gopack/manifest.json`, the first member of every bundle: what was packed
//! (conda and pip packages, every file's sha256 and size, Go binaries) and the relocation
//! records the target applies. Versioned by [`FORMAT_VERSION`]; it holds no pack-time clock.
//!
//! A manifest read from a bundle is hostile until [`Manifest::validate`] accepted it:
//! [`Manifest::from_json`], the only way to read one, runs it.

// Offsets and sizes here come from files: arithmetic on them is checked.
#![deny(clippy::arithmetic_side_effects)]

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::{escape_bytes, escape_str};
use crate::go::GoBinary;
use crate::relocate::ByteString;
use crate::relocate::Relocation;

/// Where the manifest sits inside the bundle (relative to the environment's root).
pub const MANIFEST_PATH: &str = ".gopack/manifest.json";
/// Every path a bundle holds a file of gopack's in (replacing what the environment had there),
/// besides `.gopack/records.sh`, `.gopack/prefix` and the manifest.
pub const GENERATED_PATHS: &[&[u8]] = &[
    b"bin/gopack-unpack",
    b"bin/activate",
    b"bin/deactivate",
    b"bin/activate.fish",
    b".gopack/env_vars.sh",
    b".gopack/env_vars.fish",
];

/// The manifest format version; readers refuse newer major versions.
pub const FORMAT_VERSION: u32 = 1;

/// What a packed path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PathKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// Another name of a regular file listed before it.
    Hardlink,
}

impl PathKind {
    /// The name used in the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            PathKind::File => "file",
            PathKind::Dir => "dir",
            PathKind::Symlink => "symlink",
            PathKind::Hardlink => "hardlink",
        }
    }
}

impl std::fmt::Display for PathKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One packed path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// Path relative to the environment's root.
    pub path: ByteString,
    /// What it is.
    #[serde(rename = "type")]
    pub kind: PathKind,
    /// Permission bits.
    pub mode: u32,
    /// Size of the packed content (files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// sha256 of the packed content (files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<Sha256>,
    /// Link target (symlinks, hard links).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<ByteString>,
}

/// A sha256 digest, written as 64 lowercase hex digits. Held as its 32 bytes: a manifest of
/// 250,000 files is ~14 MB smaller in memory than with hex strings.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256(pub [u8; 32]);

impl Sha256 {
    /// Parses 64 hex digits (either case).
    pub fn from_hex(text: &str) -> Option<Sha256> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(Sha256(bytes))
    }
}

impl std::fmt::Display for Sha256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl std::fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sha256({self})")
    }
}

impl Serialize for Sha256 {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Sha256 {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Sha256::from_hex(&text)
            .ok_or_else(|| serde::de::Error::custom("a sha256 must be 64 hex digits"))
    }
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

/// A conda package of the environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CondaPackage {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Build string.
    pub build: String,
    /// Channel short name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Platform directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subdir: Option<String>,
    /// Its dependencies as conda-meta records them (match specs), for the SBOM.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends: Vec<String>,
    /// sha256 of the package archive, from conda-meta.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// md5 of the package archive, from conda-meta.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub md5: Option<String>,
}

/// A Python distribution no conda record owns (installed by pip, uv, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipPackage {
    /// Distribution name.
    pub name: String,
    /// Version.
    pub version: String,
    /// The installer that wrote it (`pip`, `uv`, …), when recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installer: Option<String>,
    /// The `.dist-info` directory, relative to the prefix.
    pub dist_info: String,
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
    /// Every packed path except the manifest itself (`.gopack/` files included, so that
    /// unpack verifies them too).
    pub files: Vec<FileRecord>,
}

impl Manifest {
    /// Parses a manifest, refusing a format newer than this gopack understands. The error is a
    /// sentence for the caller to attach to the bundle's path.
    pub fn from_json(bytes: &[u8]) -> Result<Manifest, String> {
        let manifest: Manifest = serde_json::from_slice(bytes)
            .map_err(|err| format!("unreadable manifest: {}", escape_str(&err.to_string())))?;
        // Held through a whole unpack: without the slack of the parser's growth.
        let mut manifest = manifest;
        manifest.files.shrink_to_fit();
        if manifest.format_version > FORMAT_VERSION {
            return Err(format!(
                "manifest format {} is newer than this gopack understands ({FORMAT_VERSION}); use a newer gopack",
                manifest.format_version
            ));
        }
        manifest.validate()?;
        Ok(manifest)
    }

    /// Checks everything a reader relies on, so that no later step can panic, allocate without
    /// bound or leave the destination because of what the manifest says: every path is a
    /// normalised relative path (no `..`, root, NUL or empty name) listed once; every file has
    /// a size and a sha256, every link a target, every hard link a listed file as target; every
    /// relocation record names a listed regular file, and every binary slot lies inside that
    /// file (checked arithmetic) with pieces that fit its room; the prefixes are absolute.
    ///
    /// # Errors
    /// A sentence naming the first record at fault.
    pub fn validate(&self) -> Result<(), String> {
        for (what, prefix) in [
            ("source_prefix", &self.source_prefix),
            ("relocation.source_prefix", &self.relocation.source_prefix),
        ] {
            if !prefix.0.starts_with(b"/") || prefix.0.contains(&0) {
                return Err(format!(
                    "manifest: {what} `{}` is not an absolute path",
                    escape_bytes(&prefix.0)
                ));
            }
        }
        let mut listed: HashMap<&[u8], &FileRecord> = HashMap::with_capacity(self.files.len());
        for record in &self.files {
            let shown = || escape_bytes(&record.path.0);
            check_path(&record.path.0)
                .map_err(|reason| format!("manifest: file record `{}`: {reason}", shown()))?;
            if record.path.0 == MANIFEST_PATH.as_bytes() {
                return Err(format!("manifest: it lists itself (`{MANIFEST_PATH}`)"));
            }
            if record.mode > 0o7777 {
                return Err(format!(
                    "manifest: file record `{}`: mode {:o} is not a permission mode",
                    shown(),
                    record.mode
                ));
            }
            let problem = match record.kind {
                PathKind::File => match (&record.size, &record.sha256) {
                    (Some(_), Some(_)) => None,
                    _ => Some("a file needs a size and a sha256 (64 hex digits)".to_string()),
                },
                PathKind::Dir => record
                    .size
                    .filter(|&size| size != 0)
                    .map(|_| "a directory has no size".to_string()),
                PathKind::Symlink => match &record.target {
                    Some(target) if !target.0.is_empty() && !target.0.contains(&0) => None,
                    _ => Some("a symlink needs a target".to_string()),
                },
                PathKind::Hardlink => match &record.target {
                    Some(target) => check_path(&target.0)
                        .err()
                        .map(|reason| format!("hard link target: {reason}")),
                    None => Some("a hard link needs a target".to_string()),
                },
            };
            if let Some(problem) = problem {
                return Err(format!("manifest: file record `{}`: {problem}", shown()));
            }
            if listed.insert(&record.path.0, record).is_some() {
                return Err(format!("manifest: `{}` is listed twice", shown()));
            }
        }
        // What unpack itself reads and writes there must be what it expects.
        let gopack_dir = listed.get(&b".gopack"[..]);
        if gopack_dir.is_some_and(|record| record.kind != PathKind::Dir) {
            return Err("manifest: `.gopack` is not a directory".into());
        }
        let prefix = listed.get(&b".gopack/prefix"[..]);
        if prefix.is_some_and(|record| record.kind != PathKind::File || record.size > Some(4096)) {
            return Err(
                "manifest: `.gopack/prefix` is not a regular file of at most 4096 bytes".into(),
            );
        }
        for record in self
            .files
            .iter()
            .filter(|record| record.kind == PathKind::Hardlink)
        {
            let target = record
                .target
                .as_ref()
                .map(|t| t.0.as_slice())
                .unwrap_or_default();
            if listed
                .get(target)
                .is_none_or(|first| first.kind != PathKind::File)
            {
                return Err(format!(
                    "manifest: file record `{}`: hard link to `{}`, which is not a regular file it lists",
                    escape_bytes(&record.path.0),
                    escape_bytes(target)
                ));
            }
        }
        let regular_file = |path: &[u8], what: &str| -> Result<u64, String> {
            check_path(path)
                .map_err(|reason| format!("manifest: {what} `{}`: {reason}", escape_bytes(path)))?;
            match listed.get(path) {
                Some(FileRecord {
                    kind,
                    size: Some(size),
                    ..
                }) if *kind == PathKind::File => Ok(*size),
                _ => Err(format!(
                    "manifest: {what} `{}` does not name a regular file listed in the manifest",
                    escape_bytes(path)
                )),
            }
        };
        // A record's other names must be hard links to that very file: relocation links them
        // to the rewritten file, replacing whatever they name.
        let links_of = |path: &ByteString, links: &[ByteString], what: &str| {
            for link in links {
                let linked = matches!(
                    listed.get(link.0.as_slice()),
                    Some(FileRecord { kind, target: Some(target), .. })
                        if *kind == PathKind::Hardlink && target == path
                );
                if !linked {
                    return Err(format!(
                        "manifest: {what} `{}`: `{}` is not listed as a hard link to it",
                        escape_bytes(&path.0),
                        escape_bytes(&link.0)
                    ));
                }
            }
            Ok(())
        };
        for record in &self.relocation.text {
            regular_file(&record.path.0, "text relocation record")?;
            links_of(&record.path, &record.links, "text relocation record")?;
            if let Some(line) = &record.shebang {
                let bad_byte = |c: &u8| matches!(c, b'\n' | b'\r' | b'\0');
                if check_path(&line.interpreter.0).is_err()
                    || line.interpreter.0.iter().any(bad_byte)
                    || line.argument.0.iter().any(bad_byte)
                {
                    return Err(format!(
                        "manifest: text relocation record `{}`: its `#!` line is not a relative interpreter path with an argument on one line",
                        escape_bytes(&record.path.0)
                    ));
                }
            }
        }
        for record in &self.relocation.binary {
            let size = regular_file(&record.path.0, "binary relocation record")?;
            links_of(&record.path, &record.links, "binary relocation record")?;
            for slot in &record.slots {
                slot.check_inside(size).map_err(|reason| {
                    format!(
                        "manifest: binary relocation record `{}`: slot at offset {} (room {}): {reason}",
                        escape_bytes(&record.path.0),
                        slot.offset,
                        slot.room
                    )
                })?;
            }
        }
        let informational = self
            .relocation
            .fixed
            .iter()
            .map(|fix| fix.path())
            .chain(
                self.relocation
                    .left_alone
                    .iter()
                    .map(|item| item.path.0.as_slice()),
            )
            .chain(
                self.go_binaries
                    .iter()
                    .map(|binary| binary.path.0.as_slice()),
            );
        for path in informational {
            check_path(path)
                .map_err(|reason| format!("manifest: record `{}`: {reason}", escape_bytes(path)))?;
        }
        Ok(())
    }

    /// The manifest as pretty JSON with a trailing newline.
    #[expect(clippy::expect_used, reason = "a Vec<u8> takes every write")]
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_json(&mut out)
            .expect("a manifest serializes into memory");
        out
    }

    /// Writes [`Manifest::to_json`]'s bytes to `out`, streamed (a large environment's manifest
    /// is tens of MB).
    ///
    /// # Errors
    /// `out`'s errors.
    pub fn write_json(&self, mut out: impl std::io::Write) -> std::io::Result<()> {
        serde_json::to_writer_pretty(&mut out, self)?;
        out.write_all(b"\n")
    }
}

/// Checks that `path` is a normalised relative path: what [`normalize_path`] returns for it
/// is itself.
///
/// # Errors
/// Why it is not.
pub fn check_path(path: &[u8]) -> Result<(), String> {
    let normal = normalize_path(path)?;
    if normal != path {
        return Err("not a normalised path (`.`, `//` or a trailing `/`)".into());
    }
    Ok(())
}

/// Normalises a relative path from a bundle: drops `.` components, repeated and trailing
/// slashes; refuses absolute paths, `..` components, NUL bytes and empty names.
///
/// # Errors
/// Why the path is refused.
pub fn normalize_path(path: &[u8]) -> Result<Vec<u8>, String> {
    if path.is_empty() {
        return Err("empty name".into());
    }
    if path.contains(&0) {
        return Err("NUL byte in the name".into());
    }
    if path.starts_with(b"/") {
        return Err("absolute path".into());
    }
    let mut out = Vec::with_capacity(path.len());
    for part in path.split(|&c| c == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err("`..` leads outside the destination".into()),
            part => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(part);
            }
        }
    }
    if out.is_empty() {
        return Err("empty name".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(files: serde_json::Value, relocation: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "format_version": 1, "gopack_version": "0", "source_prefix": "/x",
            "platform": "linux-64", "packages": [], "pip_packages": [], "go_binaries": [],
            "relocation": relocation,
            "totals": {"files": 0, "symlinks": 0, "hardlinks": 0, "dirs": 0, "bytes": 0},
            "files": files,
        }))
        .unwrap()
    }

    fn files() -> serde_json::Value {
        let sha = "0".repeat(64);
        serde_json::json!([
            {"path": "lib/h", "type": "hardlink", "mode": 420, "target": "lib/f"},
            {"path": "lib", "type": "dir", "mode": 493},
            {"path": "lib/f", "type": "file", "mode": 420, "size": 16, "sha256": sha},
            {"path": "lib/l", "type": "symlink", "mode": 511, "target": "f"},
        ])
    }

    fn relocation(binary: serde_json::Value) -> serde_json::Value {
        serde_json::json!({"source_prefix": "/x", "text": [], "binary": binary,
            "fixed": [], "left_alone": []})
    }

    fn slot(offset: u64, room: u64, pieces: &[&str]) -> serde_json::Value {
        serde_json::json!([{"path": "lib/f", "macho": false,
            "slots": [{"offset": offset, "room": room, "pieces": pieces}]}])
    }

    #[test]
    fn accepts_what_gopack_writes() {
        let text = serde_json::json!({"source_prefix": "/x", "binary": [], "fixed": [],
            "left_alone": [], "text": [{"path": "lib/f", "occurrences": 1, "links": ["lib/h"]}]});
        Manifest::from_json(&manifest(files(), text)).unwrap();
        Manifest::from_json(&manifest(files(), relocation(slot(6, 10, &["", "/lib"])))).unwrap();
    }

    #[test]
    fn refuses_slots_outside_their_file_or_room() {
        for (offset, room, pieces, words) in [
            (0, 1 << 40, &["", "/a"][..], "inside the file"),
            (u64::MAX - 3, 8, &["", "/a"][..], "inside the file"),
            (10, 7, &["", "/a"][..], "inside the file"),
            (0, 4, &["", "", "", "", ""][..], "does not fit"),
            (0, 4, &[][..], "no pieces"),
        ] {
            let err =
                Manifest::from_json(&manifest(files(), relocation(slot(offset, room, pieces))))
                    .unwrap_err();
            assert!(err.contains(words) && err.contains("`lib/f`"), "{err}");
        }
    }

    #[test]
    fn refuses_bad_paths_kinds_and_links() {
        let sha = "0".repeat(64);
        let cases = [
            (
                serde_json::json!([{"path": "a/../b", "type": "dir", "mode": 493}]),
                "`..`",
            ),
            (
                serde_json::json!([{"path": "/abs", "type": "dir", "mode": 493}]),
                "absolute",
            ),
            (
                serde_json::json!([{"path": "a//b", "type": "dir", "mode": 493}]),
                "normalised",
            ),
            (
                serde_json::json!([{"path": "d", "type": "fifo", "mode": 420}]),
                "unknown variant `fifo`",
            ),
            (
                serde_json::json!([{"path": "f", "type": "file", "mode": 420}]),
                "needs a size",
            ),
            (
                serde_json::json!([{"path": "f", "type": "file", "mode": 420, "size": 1,
                    "sha256": "abc"}]),
                "a sha256 must be 64 hex digits",
            ),
            (
                serde_json::json!([{"path": ".gopack/manifest.json", "type": "file",
                    "mode": 420, "size": 1, "sha256": sha}]),
                "lists itself",
            ),
            (
                serde_json::json!([{"path": "h", "type": "hardlink", "mode": 420,
                    "target": "nowhere"}]),
                "not a regular file it lists",
            ),
            (
                serde_json::json!([{"path": "d", "type": "dir", "mode": 493},
                    {"path": "d", "type": "dir", "mode": 493}]),
                "listed twice",
            ),
            (
                serde_json::json!([{"path": ".gopack", "type": "symlink", "mode": 511,
                    "target": "etc"}]),
                "not a directory",
            ),
            (
                serde_json::json!([{"path": ".gopack/prefix", "type": "symlink", "mode": 511,
                    "target": "../etc/x"}]),
                "not a regular file",
            ),
        ];
        for (files, words) in cases {
            let err = Manifest::from_json(&manifest(files, relocation(serde_json::json!([]))))
                .unwrap_err();
            assert!(err.contains(words), "{words}: {err}");
        }
    }

    #[test]
    fn sha256s_are_read_in_either_case_and_written_in_lower_case() {
        let upper = "AB".repeat(32);
        let parsed: Sha256 = serde_json::from_value(serde_json::json!(upper)).unwrap();
        assert_eq!(parsed.0, [0xab; 32]);
        assert_eq!(serde_json::to_value(parsed).unwrap(), "ab".repeat(32));
        for bad in ["", "ab", &"g".repeat(64), &"a".repeat(65)] {
            assert!(Sha256::from_hex(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn normalises_paths() {
        assert_eq!(normalize_path(b"./a//b/").unwrap(), b"a/b");
        assert!(normalize_path(b"a/..").is_err());
        assert!(normalize_path(b"").is_err());
        assert!(normalize_path(b"./").is_err());
        assert!(normalize_path(b"a\0b").is_err());
        assert!(check_path(b"a/b").is_ok());
        assert!(check_path(b"a/b/").is_err());
    }
}
