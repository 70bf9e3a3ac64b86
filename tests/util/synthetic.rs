//! A small synthetic conda environment made in milliseconds: a conda-meta record and the files
//! a test asks for, with `@PREFIX@` in their content replaced by the real prefix. For tests
//! that exercise gopack's own logic and need no real interpreter.

#![allow(dead_code)]

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// What goes into the environment.
enum Item {
    File {
        path: String,
        content: Vec<u8>,
        mode: u32,
    },
    Symlink {
        path: String,
        target: String,
    },
    HardLink {
        path: String,
        existing: String,
    },
    Dir {
        path: String,
    },
    Missing {
        path: String,
    },
    Binary {
        path: String,
        content: Vec<u8>,
        placeholder: String,
        mode: u32,
    },
}

/// A builder for a synthetic environment at a prefix.
pub struct SyntheticEnv {
    prefix: PathBuf,
    items: Vec<Item>,
    platform: String,
}

/// The conda platform of this machine (`linux-64`, `linux-aarch64`, …).
pub fn host_platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "64",
        "aarch64" => "aarch64",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        other => other,
    };
    format!("{}-{arch}", std::env::consts::OS.replace("macos", "osx"))
}

/// This machine's architecture as Go and OCI images name it (`amd64`, `arm64`, …).
pub fn host_goarch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

impl SyntheticEnv {
    /// An environment that will live at `prefix` (created by [`SyntheticEnv::build`]).
    pub fn new(prefix: &Path) -> SyntheticEnv {
        SyntheticEnv {
            prefix: prefix.to_path_buf(),
            items: Vec::new(),
            platform: host_platform(),
        }
    }

    /// A file whose content has `@PREFIX@` replaced by the prefix.
    pub fn file(mut self, path: &str, content: &[u8], mode: u32) -> Self {
        self.items.push(Item::File {
            path: path.into(),
            content: content.to_vec(),
            mode,
        });
        self
    }

    /// A text file (0644).
    pub fn text(self, path: &str, content: &str) -> Self {
        self.file(path, content.as_bytes(), 0o644)
    }

    /// A symlink; `@PREFIX@` in the target is replaced too.
    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        self.items.push(Item::Symlink {
            path: path.into(),
            target: target.into(),
        });
        self
    }

    /// A second name for a file added before.
    pub fn hard_link(mut self, path: &str, existing: &str) -> Self {
        self.items.push(Item::HardLink {
            path: path.into(),
            existing: existing.into(),
        });
        self
    }

    /// An empty directory.
    pub fn dir(mut self, path: &str) -> Self {
        self.items.push(Item::Dir { path: path.into() });
        self
    }

    /// The conda platform the record names (default: this machine's).
    pub fn platform(mut self, platform: &str) -> Self {
        self.platform = platform.into();
        self
    }

    /// A file conda installed in binary mode: `content` as it is (its placeholder already
    /// replaced), listed in `paths_data` with `placeholder` and `file_mode: binary`.
    pub fn binary_file(
        mut self,
        path: &str,
        content: Vec<u8>,
        placeholder: &str,
        mode: u32,
    ) -> Self {
        self.items.push(Item::Binary {
            path: path.into(),
            content,
            placeholder: placeholder.into(),
            mode,
        });
        self
    }

    /// A path the conda-meta record lists but the environment lacks.
    pub fn missing(mut self, path: &str) -> Self {
        self.items.push(Item::Missing { path: path.into() });
        self
    }

    /// Writes the environment and its conda-meta record; returns the prefix.
    pub fn build(self) -> PathBuf {
        let prefix = &self.prefix;
        let prefix_bytes = prefix.as_os_str().as_bytes().to_vec();
        let fill = |bytes: &[u8]| -> Vec<u8> {
            let mut out = Vec::new();
            let mut rest = bytes;
            while let Some(at) = find(rest, b"@PREFIX@") {
                out.extend_from_slice(&rest[..at]);
                out.extend_from_slice(&prefix_bytes);
                rest = &rest[at + 8..];
            }
            out.extend_from_slice(rest);
            out
        };
        std::fs::create_dir_all(prefix.join("conda-meta")).unwrap();
        let mut files = Vec::new();
        let mut placeholders = std::collections::HashMap::new();
        for item in &self.items {
            match item {
                Item::File {
                    path,
                    content,
                    mode,
                } => {
                    let full = prefix.join(path);
                    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
                    std::fs::write(&full, fill(content)).unwrap();
                    std::fs::set_permissions(&full, std::fs::Permissions::from_mode(*mode))
                        .unwrap();
                    files.push(path.clone());
                }
                Item::Symlink { path, target } => {
                    let full = prefix.join(path);
                    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
                    let target = fill(target.as_bytes());
                    std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&target), &full)
                        .unwrap();
                    files.push(path.clone());
                }
                Item::HardLink { path, existing } => {
                    let full = prefix.join(path);
                    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
                    std::fs::hard_link(prefix.join(existing), &full).unwrap();
                    files.push(path.clone());
                }
                Item::Dir { path } => std::fs::create_dir_all(prefix.join(path)).unwrap(),
                Item::Missing { path } => files.push(path.clone()),
                Item::Binary {
                    path,
                    content,
                    placeholder,
                    mode,
                } => {
                    let full = prefix.join(path);
                    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
                    std::fs::write(&full, content).unwrap();
                    std::fs::set_permissions(&full, std::fs::Permissions::from_mode(*mode))
                        .unwrap();
                    files.push(path.clone());
                    placeholders.insert(path.clone(), placeholder.clone());
                }
            }
        }
        let record = serde_json::json!({
            "name": "synthetic",
            "version": "1.0",
            "build": "0",
            "channel": format!("https://conda.anaconda.org/conda-forge/{}", self.platform),
            "subdir": self.platform,
            "files": files,
        });
        let mut record = record;
        if !placeholders.is_empty() {
            let paths: Vec<serde_json::Value> = files
                .iter()
                .map(|path| match placeholders.get(path) {
                    Some(placeholder) => serde_json::json!({
                        "_path": path,
                        "path_type": "hardlink",
                        "prefix_placeholder": placeholder,
                        "file_mode": "binary",
                    }),
                    None => serde_json::json!({"_path": path, "path_type": "hardlink"}),
                })
                .collect();
            record["paths_data"] = serde_json::json!({"paths_version": 1, "paths": paths});
        }
        std::fs::write(
            prefix.join("conda-meta/synthetic-1.0-0.json"),
            serde_json::to_vec_pretty(&record).unwrap(),
        )
        .unwrap();
        prefix.clone()
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
