//! The serde model of `conda-meta/*.json` records: only the fields gopack uses, parsed
//! tolerantly (unknown fields ignored, optional ones defaulted), as conda, mamba, micromamba,
//! rattler and pixi write them.

use serde::Deserialize;

/// How a file with a prefix placeholder was rewritten at install time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileMode {
    /// The placeholder was replaced everywhere; the file's length changed.
    Text,
    /// The placeholder was replaced inside C strings, padded with NUL; the length is unchanged.
    Binary,
}

/// One entry of `paths_data.paths`.
#[derive(Debug, Clone, Deserialize)]
pub struct PathEntry {
    /// Path relative to the prefix, with `/` separators.
    #[serde(rename = "_path")]
    pub path: String,
    /// `hardlink`, `softlink`, `directory`, or an entry-point/pyc kind.
    #[serde(default)]
    pub path_type: Option<String>,
    /// The build prefix that was baked into the file (conda-build uses 255 characters).
    #[serde(default)]
    pub prefix_placeholder: Option<String>,
    /// How the placeholder was replaced.
    #[serde(default)]
    pub file_mode: Option<FileMode>,
    /// sha256 of the file in the package (before placeholder replacement).
    #[serde(default)]
    pub sha256: Option<String>,
    /// sha256 of the file as installed, when it differs from the package's.
    #[serde(default)]
    pub sha256_in_prefix: Option<String>,
    /// Size of the file in the package.
    #[serde(default)]
    pub size_in_bytes: Option<u64>,
}

/// `paths_data` of a record.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PathsData {
    /// The entries.
    #[serde(default)]
    pub paths: Vec<PathEntry>,
}

/// A conda-meta record (`conda-meta/<name>-<version>-<build>.json`).
#[derive(Debug, Clone, Deserialize)]
pub struct PackageRecord {
    /// Package name.
    pub name: String,
    /// Version string.
    #[serde(default)]
    pub version: String,
    /// Build string.
    #[serde(default)]
    pub build: String,
    /// Channel URL or name; older conda versions wrote an object here, which is ignored.
    #[serde(default, deserialize_with = "string_or_ignore")]
    pub channel: Option<String>,
    /// The platform directory (`linux-64`, `noarch`, …).
    #[serde(default)]
    pub subdir: Option<String>,
    /// Files the package installed, relative to the prefix (used when `paths_data` is absent).
    #[serde(default)]
    pub files: Vec<String>,
    /// Detailed per-file data, written by modern installers.
    #[serde(default)]
    pub paths_data: Option<PathsData>,
    /// Match specs of the package's dependencies; anything but a list of strings is ignored.
    #[serde(default, deserialize_with = "strings_or_ignore")]
    pub depends: Vec<String>,
    /// sha256 of the package archive; ignored unless a string.
    #[serde(default, deserialize_with = "string_or_ignore")]
    pub sha256: Option<String>,
    /// md5 of the package archive; ignored unless a string.
    #[serde(default, deserialize_with = "string_or_ignore")]
    pub md5: Option<String>,
}

fn strings_or_ignore<'de, D>(deserializer: D) -> Result<Vec<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(match value {
        serde_json::Value::Array(items) => items
            .into_iter()
            .filter_map(|item| match item {
                serde_json::Value::String(text) => Some(text),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    })
}

fn string_or_ignore<'de, D>(deserializer: D) -> Result<Option<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(match value {
        serde_json::Value::String(text) => Some(text),
        _ => None,
    })
}

impl PackageRecord {
    /// Every path the package installed, with its placeholder data where the record has it.
    pub fn entries(&self) -> Vec<PathEntry> {
        match &self.paths_data {
            Some(data) if !data.paths.is_empty() => data.paths.clone(),
            _ => self
                .files
                .iter()
                .map(|path| PathEntry {
                    path: path.clone(),
                    path_type: None,
                    prefix_placeholder: None,
                    file_mode: None,
                    sha256: None,
                    sha256_in_prefix: None,
                    size_in_bytes: None,
                })
                .collect(),
        }
    }

    /// The channel's short name (`conda-forge` from `https://conda.anaconda.org/conda-forge/linux-64`).
    pub fn channel_name(&self) -> Option<String> {
        let channel = self.channel.as_deref()?;
        let trimmed = channel.trim_end_matches('/');
        let mut parts: Vec<&str> = trimmed.split('/').collect();
        if let Some(last) = parts.last()
            && self.subdir.as_deref() == Some(*last)
        {
            parts.pop();
        }
        parts.last().map(|name| name.to_string())
    }
}

/// Keys that point at the packing machine's package cache and are dropped from packed records.
pub const BUILD_HOST_KEYS: [&str; 2] = ["extracted_package_dir", "package_tarball_full_path"];

/// Removes build-host paths from a record's JSON (`link.source`, `extracted_package_dir`,
/// `package_tarball_full_path`) so the bundle does not point at the packing machine. Returns
/// `None` when the text is not a JSON object (the caller then packs it unchanged).
pub fn anonymise_record(text: &[u8]) -> Option<Vec<u8>> {
    let mut value: serde_json::Value = serde_json::from_slice(text).ok()?;
    let object = value.as_object_mut()?;
    let mut changed = false;
    for key in BUILD_HOST_KEYS {
        changed |= object.remove(key).is_some();
    }
    if let Some(link) = object.get_mut("link").and_then(|link| link.as_object_mut()) {
        changed |= link.remove("source").is_some();
    }
    if !changed {
        return None;
    }
    let mut out = serde_json::to_vec_pretty(&value).ok()?;
    out.push(b'\n');
    // Held until the archive is written: without the slack of the growing buffer.
    out.shrink_to_fit();
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_minimal_pixi_style_record() {
        let record: PackageRecord =
            serde_json::from_str(r#"{"name":"zlib","link":null,"files":["lib/libz.so"]}"#).unwrap();
        assert_eq!(record.name, "zlib");
        assert_eq!(record.entries()[0].path, "lib/libz.so");
    }

    #[test]
    fn paths_data_wins_over_files() {
        let record: PackageRecord = serde_json::from_str(
            r#"{"name":"a","version":"1","build":"0","files":["x"],
                "paths_data":{"paths_version":1,"paths":[{"_path":"y","path_type":"hardlink",
                "prefix_placeholder":"/ph","file_mode":"binary","sha256":"00","size_in_bytes":3}]}}"#,
        )
        .unwrap();
        let entries = record.entries();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].file_mode, Some(FileMode::Binary));
        assert_eq!(entries[0].prefix_placeholder.as_deref(), Some("/ph"));
    }

    #[test]
    fn channel_name_strips_subdir() {
        let record: PackageRecord = serde_json::from_str(
            r#"{"name":"a","channel":"https://conda.anaconda.org/conda-forge/linux-64","subdir":"linux-64"}"#,
        )
        .unwrap();
        assert_eq!(record.channel_name().as_deref(), Some("conda-forge"));
    }

    #[test]
    fn anonymise_drops_build_host_paths() {
        let text = br#"{"name":"a","link":{"source":"/pkgs/a","type":1},"extracted_package_dir":"/pkgs/a"}"#;
        let out = String::from_utf8(anonymise_record(text).unwrap()).unwrap();
        assert!(!out.contains("/pkgs/a"), "{out}");
        assert!(out.contains("\"type\": 1"));
        assert_eq!(anonymise_record(br#"{"name":"a"}"#), None);
    }
}
