//! Reading Go build info in Rust, without `go`: the blob that starts with `\xff Go buildinf:` in
//! `.go.buildinfo` (ELF), `__go_buildinfo` (Mach-O) or the first data section (PE). Since Go 1.18
//! the blob holds two varint-length-prefixed strings right after its 32-byte header: the Go
//! version and the module info, framed by 16-byte sentinels. The module info lines are those
//! `go version -m` prints: `path`, `mod`, `dep`, `=>` (replacement) and `build KEY=VALUE`.

// Offsets and sizes here come from files: arithmetic on them is checked.
#![deny(clippy::arithmetic_side_effects)]

use std::os::unix::fs::FileExt;

use serde::{Deserialize, Serialize};

use crate::scan::content::GO_BUILDINFO_MAGIC;

/// A module (main module or dependency) as recorded in build info.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Module {
    /// Module path.
    pub path: String,
    /// Version (`(devel)` for a main module built from a working tree).
    pub version: String,
    /// The `h1:` checksum, when recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sum: Option<String>,
    /// The module that replaces this one, when a `replace` directive applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace: Option<Box<Module>>,
}

/// Everything a Go binary says about how it was built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildInfo {
    /// The Go version (`go1.26.8`).
    pub go_version: String,
    /// The main package's import path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main_package: Option<String>,
    /// The main module.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main_module: Option<Module>,
    /// Dependencies, in the order recorded.
    #[serde(default)]
    pub dependencies: Vec<Module>,
    /// Build settings (`GOOS`, `GOARCH`, `CGO_ENABLED`, `-trimpath`, `-ldflags`, …), in order.
    #[serde(default)]
    pub settings: Vec<(String, String)>,
}

impl BuildInfo {
    /// A build setting's value.
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the binary was built with `-trimpath` (no file-system paths inside).
    pub fn trimpath(&self) -> bool {
        self.setting("-trimpath") == Some("true")
    }
}

/// Why build info could not be read at an offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildInfoError {
    /// No valid blob at that offset (for example the magic string inside Go's own reader code).
    #[error("no Go build info at this offset")]
    NotHere,
    /// A blob from before Go 1.18, which stores pointers instead of strings.
    #[error("Go build info from before Go 1.18 is not supported")]
    PreGo118,
}

const SENTINEL_LEN: usize = 16;

/// Parses the blob at `offset` of `file`.
///
/// # Errors
/// [`BuildInfoError::NotHere`] when the bytes there are not a valid blob.
pub fn read_at(file: &std::fs::File, offset: u64) -> Result<BuildInfo, BuildInfoError> {
    let size = file.metadata().map_err(|_| BuildInfoError::NotHere)?.len();
    let want = (size.saturating_sub(offset)).min(1 << 20) as usize;
    let mut buffer = vec![0u8; want];
    file.read_exact_at(&mut buffer, offset)
        .map_err(|_| BuildInfoError::NotHere)?;
    parse(&buffer)
}

/// Parses a blob that starts at `bytes[0]`.
///
/// # Errors
/// [`BuildInfoError`] when the bytes are not a valid Go ≥ 1.18 blob.
pub fn parse(bytes: &[u8]) -> Result<BuildInfo, BuildInfoError> {
    if bytes.len() < 32 || !bytes.starts_with(GO_BUILDINFO_MAGIC) {
        return Err(BuildInfoError::NotHere);
    }
    let pointer_size = bytes[14];
    let flags = bytes[15];
    if pointer_size != 4 && pointer_size != 8 {
        return Err(BuildInfoError::NotHere);
    }
    if flags & 0x2 == 0 {
        return Err(BuildInfoError::PreGo118);
    }
    let mut rest = &bytes[32..];
    let version = read_string(&mut rest).ok_or(BuildInfoError::NotHere)?;
    let modinfo = read_string(&mut rest).ok_or(BuildInfoError::NotHere)?;
    let version = String::from_utf8(version.to_vec()).map_err(|_| BuildInfoError::NotHere)?;
    if !version.starts_with("go") {
        return Err(BuildInfoError::NotHere);
    }
    // The module info sits between two 16-byte sentinels.
    let modinfo = modinfo
        .len()
        .checked_sub(SENTINEL_LEN)
        .and_then(|end| modinfo.get(SENTINEL_LEN..end))
        .unwrap_or_default();
    let mut info = parse_modinfo(&String::from_utf8_lossy(modinfo));
    info.go_version = version;
    Ok(info)
}

/// A uvarint length, then that many bytes; `rest` moves past them.
fn read_string<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let mut length: u64 = 0;
    let mut shift: u32 = 0;
    let mut last = None;
    for (index, &byte) in rest.iter().enumerate() {
        length |= u64::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            last = Some(index);
            break;
        }
        shift = shift.checked_add(7).filter(|shift| *shift <= 63)?;
    }
    let (_, after) = rest.split_at_checked(last?.checked_add(1)?)?;
    let (string, after) = after.split_at_checked(usize::try_from(length).ok()?)?;
    *rest = after;
    Some(string)
}

/// Parses the text `go version -m` shows (tab-separated lines).
pub fn parse_modinfo(text: &str) -> BuildInfo {
    let mut info = BuildInfo {
        go_version: String::new(),
        main_package: None,
        main_module: None,
        dependencies: Vec::new(),
        settings: Vec::new(),
    };
    let module = |fields: &[&str]| Module {
        path: fields.first().unwrap_or(&"").to_string(),
        version: fields.get(1).unwrap_or(&"").to_string(),
        sum: fields
            .get(2)
            .filter(|s| !s.is_empty())
            .map(|s| s.to_string()),
        replace: None,
    };
    for line in text.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        match fields.first().copied() {
            Some("path") => info.main_package = fields.get(1).map(|s| s.to_string()),
            Some("mod") => info.main_module = Some(module(&fields[1..])),
            Some("dep") => info.dependencies.push(module(&fields[1..])),
            Some("=>") => {
                let replacement = Box::new(module(&fields[1..]));
                if let Some(last) = info.dependencies.last_mut() {
                    last.replace = Some(replacement);
                } else if let Some(main) = info.main_module.as_mut() {
                    main.replace = Some(replacement);
                }
            }
            Some("build") => {
                if let Some((key, value)) = fields.get(1).and_then(|kv| kv.split_once('=')) {
                    let value = value.trim_matches('"');
                    info.settings.push((key.to_string(), value.to_string()));
                }
            }
            _ => {}
        }
    }
    info
}

/// The conda platform a Go GOOS/GOARCH pair corresponds to.
pub fn conda_platform(goos: &str, goarch: &str) -> Option<&'static str> {
    Some(match (goos, goarch) {
        ("linux", "amd64") => "linux-64",
        ("linux", "arm64") => "linux-aarch64",
        ("linux", "ppc64le") => "linux-ppc64le",
        ("linux", "s390x") => "linux-s390x",
        ("darwin", "amd64") => "osx-64",
        ("darwin", "arm64") => "osx-arm64",
        ("windows", "amd64") => "win-64",
        ("windows", "arm64") => "win-arm64",
        _ => return None,
    })
}

/// GOOS/GOARCH for a conda platform.
pub fn go_target(platform: &str) -> Option<(&'static str, &'static str)> {
    Some(match platform {
        "linux-64" => ("linux", "amd64"),
        "linux-aarch64" => ("linux", "arm64"),
        "linux-ppc64le" => ("linux", "ppc64le"),
        "linux-s390x" => ("linux", "s390x"),
        "osx-64" => ("darwin", "amd64"),
        "osx-arm64" => ("darwin", "arm64"),
        "win-64" => ("windows", "amd64"),
        "win-arm64" => ("windows", "arm64"),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(version: &str, modinfo: &str) -> Vec<u8> {
        let mut out = GO_BUILDINFO_MAGIC.to_vec();
        out.push(8);
        out.push(2);
        out.resize(32, 0);
        let framed = [&[0xaa; 16][..], modinfo.as_bytes(), &[0xbb; 16]].concat();
        for s in [version.as_bytes(), &framed[..]] {
            let mut len = s.len();
            loop {
                let byte = (len & 0x7f) as u8;
                len >>= 7;
                out.push(if len > 0 { byte | 0x80 } else { byte });
                if len == 0 {
                    break;
                }
            }
            out.extend_from_slice(s);
        }
        out
    }

    #[test]
    fn parses_version_modules_and_settings() {
        let modinfo = "path\texample.com/hc\nmod\texample.com/hc\t(devel)\t\ndep\tgolang.org/x/sys\tv0.1.0\th1:abc=\n=>\t../sys\t(devel)\t\nbuild\t-trimpath=true\nbuild\tGOOS=linux\nbuild\t-ldflags=\"-s -w\"\n";
        let info = parse(&blob("go1.26.8", modinfo)).unwrap();
        assert_eq!(info.go_version, "go1.26.8");
        assert_eq!(info.main_package.as_deref(), Some("example.com/hc"));
        assert_eq!(info.main_module.as_ref().unwrap().version, "(devel)");
        assert_eq!(info.dependencies[0].sum.as_deref(), Some("h1:abc="));
        assert_eq!(
            info.dependencies[0].replace.as_ref().unwrap().path,
            "../sys"
        );
        assert!(info.trimpath());
        assert_eq!(info.setting("GOOS"), Some("linux"));
        assert_eq!(info.setting("-ldflags"), Some("-s -w"));
    }

    #[test]
    fn rejects_the_magic_inside_other_data() {
        let mut fake = GO_BUILDINFO_MAGIC.to_vec();
        fake.extend_from_slice(b"xx and more text...............");
        assert_eq!(parse(&fake), Err(BuildInfoError::NotHere));
        let mut old = blob("go1.17", "");
        old[15] = 0;
        assert_eq!(parse(&old), Err(BuildInfoError::PreGo118));
    }
}
