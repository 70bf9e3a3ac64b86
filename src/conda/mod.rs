//! The conda environment model: [`CondaEnv::open`] reads a prefix's `conda-meta` records into
//! the managed-file table that the scan and the relocation plan use.

mod error;
pub mod locate;
pub mod meta;
pub mod pip;
pub mod vars;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::Result;
pub use error::Error;
pub use meta::{FileMode, PackageRecord, PathEntry};

/// What conda-meta says about one managed path.
#[derive(Debug, Clone)]
pub struct ManagedPath {
    /// Index of the owning package in [`CondaEnv::packages`].
    pub package: usize,
    /// The placeholder baked into the file by conda-build, if any.
    pub placeholder: Option<String>,
    /// How the placeholder was replaced.
    pub file_mode: Option<FileMode>,
    /// Whether the record says this path is a symlink.
    pub is_softlink: bool,
}

/// A conda environment on disk.
#[derive(Debug, Clone)]
pub struct CondaEnv {
    /// The absolute prefix, as given (symlinks are not resolved: that is the path the files hold).
    pub prefix: PathBuf,
    /// The package records, sorted by file name, without their per-file lists (`files`,
    /// `paths_data`), which [`CondaEnv::managed`] holds.
    pub packages: Vec<PackageRecord>,
    /// The record file of each package, relative to the prefix.
    pub record_files: Vec<String>,
    /// Managed paths (relative, `/`-separated) → what the records say.
    pub managed: HashMap<String, ManagedPath>,
}

impl CondaEnv {
    /// Opens `prefix` and parses every `conda-meta/*.json` record.
    ///
    /// # Errors
    /// [`Error::NotAnEnvironment`] without `conda-meta/`; [`Error::MalformedRecord`] naming the
    /// file, line and column for a record that does not parse.
    pub fn open(prefix: &Path) -> Result<CondaEnv> {
        let prefix = std::path::absolute(prefix).map_err(|source| {
            crate::Error::io(format!("cannot resolve `{}`", prefix.display()), source)
        })?;
        let meta_dir = prefix.join("conda-meta");
        if fs_err::symlink_metadata(&prefix).is_err() {
            return Err(Error::EnvironmentMissing { path: prefix }.into());
        }
        if !meta_dir.is_dir() {
            return Err(Error::NotAnEnvironment { path: prefix }.into());
        }
        let mut names: Vec<PathBuf> = fs_err::read_dir(&meta_dir)
            .map_err(|source| crate::Error::io("cannot list conda-meta", source))?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "json") && path.is_file())
            .collect();
        names.sort();
        let mut packages = Vec::with_capacity(names.len());
        let mut record_files = Vec::with_capacity(names.len());
        let mut managed = HashMap::new();
        for path in names {
            let text = fs_err::read(&path)
                .map_err(|source| crate::Error::io("cannot read a record", source))?;
            let mut record: PackageRecord =
                serde_json::from_slice(&text).map_err(|err| Error::MalformedRecord {
                    path: path.clone(),
                    line: err.line(),
                    column: err.column(),
                    message: err.to_string(),
                })?;
            record_files.push(format!(
                "conda-meta/{}",
                path.file_name().unwrap_or_default().to_string_lossy()
            ));
            let index = packages.len();
            for entry in record.entries() {
                let is_softlink = entry.path_type.as_deref() == Some("softlink");
                if entry.path_type.as_deref() == Some("directory") {
                    continue;
                }
                managed.insert(
                    entry.path.trim_start_matches("./").to_string(),
                    ManagedPath {
                        package: index,
                        placeholder: entry.prefix_placeholder.filter(|p| !p.is_empty()),
                        file_mode: entry.file_mode,
                        is_softlink,
                    },
                );
            }
            // The per-file lists now live in `managed`; kept in the record too, they would
            // double the memory a large environment needs.
            record.files = Vec::new();
            record.paths_data = None;
            packages.push(record);
        }
        Ok(CondaEnv {
            prefix,
            packages,
            record_files,
            managed,
        })
    }

    /// The conda platform (`linux-64`, …): the most common non-`noarch` subdir of the records,
    /// or the host's platform when every package is noarch.
    pub fn platform(&self) -> String {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for record in &self.packages {
            if let Some(subdir) = record.subdir.as_deref().filter(|s| *s != "noarch") {
                *counts.entry(subdir).or_default() += 1;
            }
        }
        let mut best: Vec<(&str, usize)> = counts.into_iter().collect();
        best.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        best.first()
            .map(|(subdir, _)| subdir.to_string())
            .unwrap_or_else(host_platform)
    }

    /// `package-version-build` for messages.
    pub fn package_label(&self, index: usize) -> String {
        let record = &self.packages[index];
        format!("{}-{}-{}", record.name, record.version, record.build)
    }

    /// The Python `site-packages` directories (relative), from the python record's version, or
    /// every `lib/python*/site-packages` that exists.
    pub fn site_packages(&self) -> Vec<String> {
        let mut dirs = Vec::new();
        if let Ok(entries) = fs_err::read_dir(self.prefix.join("lib")) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with("python") && entry.path().join("site-packages").is_dir() {
                    dirs.push(format!("lib/{name}/site-packages"));
                }
            }
        }
        dirs.sort();
        dirs
    }
}

/// The conda platform of the machine gopack runs on.
pub fn host_platform() -> String {
    let os = match std::env::consts::OS {
        "macos" => "osx",
        "windows" => "win",
        other => other,
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "64",
        "aarch64" if os == "osx" => "arm64",
        "aarch64" => "aarch64",
        "powerpc64" => "ppc64le",
        other => other,
    };
    format!("{os}-{arch}")
}
