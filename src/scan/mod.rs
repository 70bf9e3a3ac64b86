//! Walking the prefix: [`scan`] lists every entry to pack (files, symlinks kept as symlinks, hard
//! links, empty directories) in archive order, applies the `--include`/`--exclude` rules and the
//! checks that must pass before anything is written.

pub mod classify;
pub mod content;
mod error;
pub mod filter;
pub mod links;

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::conda::CondaEnv;
use crate::error::Result;
use crate::progress::{Reporter, Warning};
pub use error::Error;
pub use filter::Filter;

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A second name of a regular file packed earlier (same inode inside the prefix).
    HardLink {
        /// The first name's path, relative to the prefix.
        target: Vec<u8>,
    },
    /// A symbolic link, kept as a link.
    Symlink {
        /// The link's target, as stored on disk.
        target: Vec<u8>,
    },
}

/// One thing to pack.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Path relative to the prefix, `/`-separated, as raw bytes (names need not be UTF-8).
    pub path: Vec<u8>,
    /// What it is.
    pub kind: EntryKind,
    /// Permission bits, with setuid/setgid/sticky dropped.
    pub mode: u32,
    /// Modification time, whole seconds since the epoch (the file's own, so `.pyc` caches stay valid).
    pub mtime: u64,
    /// Size in bytes for regular files, 0 otherwise.
    pub size: u64,
}

impl Entry {
    /// The relative path for messages (lossy for non-UTF-8 names).
    pub fn display(&self) -> String {
        String::from_utf8_lossy(&self.path).into_owned()
    }

    /// The entry's absolute path under `prefix`.
    pub fn absolute(&self, prefix: &Path) -> PathBuf {
        prefix.join(OsStr::from_bytes(&self.path))
    }
}

/// Options that change what is scanned.
#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    /// Ordered include/exclude rules.
    pub filter: Filter,
    /// Drop missing managed files with a warning instead of failing.
    pub ignore_missing_files: bool,
    /// Pack editable installs as they are, with a warning, instead of failing.
    pub ignore_editable_packages: bool,
    /// Pack the content of the file a symlink leading out of the environment resolves to, in
    /// place of the link, instead of failing (`--copy-outside-links`).
    pub copy_outside_links: bool,
}

/// The result of [`scan`]: every entry in archive order.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// The entries, sorted component by component (parents before children).
    pub entries: Vec<Entry>,
    /// Total size of regular files.
    pub file_bytes: u64,
}

/// Names left out at the top of the prefix, as conda leaves them out: package caches, nested
/// environments, build directories and lock files, plus gopack's own metadata of an earlier
/// unpack (regenerated for every bundle).
const TOP_LEVEL_SKIPS: [&str; 7] = [
    "pkgs",
    "envs",
    "conda-bld",
    ".conda_lock",
    ".gopack",
    ".nonadmin",
    "conda-recipes",
];

fn skipped_at_top(name: &[u8]) -> bool {
    TOP_LEVEL_SKIPS.iter().any(|skip| skip.as_bytes() == name)
        || name.ends_with(b"~")
        || name.eq_ignore_ascii_case(b".DS_Store")
}

/// Compares archive paths component by component, so a directory's contents follow it
/// directly, with gopack's own `.gopack/` metadata first and its manifest the first file (so
/// `inspect` reads only the start of a bundle).
pub fn archive_order(a: &[u8], b: &[u8]) -> Ordering {
    let rank = |p: &[u8]| match p {
        b".gopack" => 0,
        b".gopack/manifest.json" => 1,
        _ if p.starts_with(b".gopack/") => 2,
        _ => 3,
    };
    rank(a)
        .cmp(&rank(b))
        .then_with(|| a.split(|&c| c == b'/').cmp(b.split(|&c| c == b'/')))
}

/// Walks the environment (never following symlinks) and checks it.
///
/// # Errors
/// Missing managed files, editable installs (unless ignored), symlinks leading out of the
/// environment (unless copied), unreadable directories.
pub fn scan(env: &CondaEnv, options: &ScanOptions, reporter: &dyn Reporter) -> Result<Inventory> {
    let prefix = &env.prefix;
    let mut entries = Vec::new();
    let mut first_name: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
    let mut file_bytes = 0;
    let walker = walkdir::WalkDir::new(prefix)
        .follow_links(false)
        .sort_by_file_name()
        .min_depth(1)
        .into_iter()
        .filter_entry(|entry| entry.depth() != 1 || !skipped_at_top(entry.file_name().as_bytes()));
    for item in walker {
        let item = item.map_err(|err| {
            let path = err
                .path()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| prefix.clone());
            Error::Unreadable {
                source: err
                    .into_io_error()
                    .unwrap_or_else(|| std::io::Error::other("filesystem loop")),
                path,
            }
        })?;
        #[expect(
            clippy::expect_used,
            reason = "walkdir yields paths under the root it walks"
        )]
        let relative = item
            .path()
            .strip_prefix(prefix)
            .expect("walkdir yields paths under its root")
            .as_os_str()
            .as_bytes()
            .to_vec();
        if !options.filter.keeps(&relative) {
            continue;
        }
        let metadata = item.metadata().map_err(|err| Error::Unreadable {
            path: item.path().to_path_buf(),
            source: err
                .into_io_error()
                .unwrap_or_else(|| std::io::Error::other("metadata")),
        })?;
        let file_type = metadata.file_type();
        let mode = metadata.mode() & 0o777;
        let mtime = metadata.mtime().max(0) as u64;
        let kind = if file_type.is_dir() {
            EntryKind::Dir
        } else if file_type.is_symlink() {
            let target = fs_err::read_link(item.path())
                .map_err(|source| crate::Error::io("cannot read a symlink", source))?;
            EntryKind::Symlink {
                target: target.as_os_str().as_bytes().to_vec(),
            }
        } else if file_type.is_file() {
            let key = (metadata.dev(), metadata.ino());
            if metadata.nlink() > 1 {
                if let Some(first) = first_name.get(&key) {
                    entries.push(Entry {
                        path: relative,
                        kind: EntryKind::HardLink {
                            target: first.clone(),
                        },
                        mode,
                        mtime,
                        size: 0,
                    });
                    continue;
                }
                first_name.insert(key, relative.clone());
            }
            file_bytes += metadata.len();
            EntryKind::File
        } else {
            let special = file_type.is_fifo()
                || file_type.is_socket()
                || file_type.is_block_device()
                || file_type.is_char_device();
            debug_assert!(special);
            reporter.warning(&Warning::SpecialFileSkipped {
                path: item.path().to_path_buf(),
            });
            continue;
        };
        let size = if kind == EntryKind::File {
            metadata.len()
        } else {
            0
        };
        entries.push(Entry {
            path: relative,
            kind,
            mode,
            mtime,
            size,
        });
    }
    // A filter that keeps a file under an excluded directory must keep that directory too.
    add_missing_parents(prefix, &mut entries)?;
    entries.sort_by(|a, b| archive_order(&a.path, &b.path));
    // Copied links become files first, so the editable-install check sees them too.
    file_bytes +=
        links::check_outside_links(prefix, &mut entries, options.copy_outside_links, reporter)?;
    check_managed_files(env, options, &entries, reporter)?;
    check_editable(env, options, &entries, reporter)?;
    reporter.scanned(entries.len() as u64, file_bytes);
    // The list lives through planning: without the slack of its growth.
    entries.shrink_to_fit();
    Ok(Inventory {
        entries,
        file_bytes,
    })
}

fn add_missing_parents(prefix: &Path, entries: &mut Vec<Entry>) -> Result<()> {
    let present: HashSet<Vec<u8>> = entries.iter().map(|e| e.path.clone()).collect();
    let mut added = HashSet::new();
    for entry in entries.iter() {
        let mut path = entry.path.as_slice();
        while let Some(slash) = path.iter().rposition(|&c| c == b'/') {
            path = &path[..slash];
            if !present.contains(path) {
                added.insert(path.to_vec());
            }
        }
    }
    for path in added {
        let metadata = fs_err::symlink_metadata(prefix.join(OsStr::from_bytes(&path)))
            .map_err(|source| crate::Error::io("cannot read a directory", source))?;
        entries.push(Entry {
            path,
            kind: EntryKind::Dir,
            mode: metadata.mode() & 0o777,
            mtime: metadata.mtime().max(0) as u64,
            size: 0,
        });
    }
    Ok(())
}

fn check_managed_files(
    env: &CondaEnv,
    options: &ScanOptions,
    entries: &[Entry],
    reporter: &dyn Reporter,
) -> Result<()> {
    let present: HashSet<&[u8]> = entries.iter().map(|e| e.path.as_slice()).collect();
    let mut missing = Vec::new();
    for (path, managed) in &env.managed {
        // Bytecode caches listed by noarch packages come and go with the interpreter.
        if path.ends_with(".pyc") || present.contains(path.as_bytes()) {
            continue;
        }
        if !options.filter.keeps(path.as_bytes()) || skipped_at_top(top_component(path)) {
            continue;
        }
        missing.push((env.package_label(managed.package), path.clone()));
    }
    if missing.is_empty() {
        return Ok(());
    }
    missing.sort();
    if options.ignore_missing_files {
        reporter.warning(&Warning::MissingFilesIgnored { files: missing });
        Ok(())
    } else {
        Err(Error::MissingManagedFiles { missing }.into())
    }
}

fn top_component(path: &str) -> &[u8] {
    path.split('/').next().unwrap_or("").as_bytes()
}

/// Finds editable installs in every site-packages directory: PEP 660 `direct_url.json` with
/// `editable: true`, `__editable__*.pth` hooks, setuptools' `*.egg-link` files, and `.pth`
/// lines that add directories outside the prefix (`easy-install.pth` and friends).
fn check_editable(
    env: &CondaEnv,
    options: &ScanOptions,
    entries: &[Entry],
    reporter: &dyn Reporter,
) -> Result<()> {
    let site_dirs: Vec<Vec<u8>> = env
        .site_packages()
        .into_iter()
        .map(|dir| format!("{dir}/").into_bytes())
        .collect();
    let mut found = Vec::new();
    for entry in entries.iter().filter(|e| e.kind == EntryKind::File) {
        let Some(site) = site_dirs.iter().find(|dir| entry.path.starts_with(dir)) else {
            continue;
        };
        let inside = &entry.path[site.len()..];
        let name = inside.rsplit(|&c| c == b'/').next().unwrap_or(inside);
        let depth = inside.iter().filter(|&&c| c == b'/').count();
        let label = entry.display();
        if depth == 1 && name == b"direct_url.json" {
            let text = fs_err::read(entry.absolute(&env.prefix))
                .map_err(|source| crate::Error::io("cannot read direct_url.json", source))?;
            let editable = serde_json::from_slice::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v.pointer("/dir_info/editable").and_then(|e| e.as_bool()))
                .unwrap_or(false);
            if editable {
                found.push(format!("{label}: marks an editable install"));
            }
        } else if depth == 0 && name.starts_with(b"__editable__") && name.ends_with(b".pth") {
            found.push(format!("{label}: editable import hook"));
        } else if depth == 0 && name.ends_with(b".egg-link") {
            found.push(format!("{label}: setuptools develop link"));
        } else if depth == 0 && name.ends_with(b".pth") {
            let text = fs_err::read(entry.absolute(&env.prefix))
                .map_err(|source| crate::Error::io("cannot read a .pth file", source))?;
            for line in String::from_utf8_lossy(&text).lines() {
                let line = line.trim();
                if line.is_empty()
                    || line.starts_with('#')
                    || line.starts_with("import ")
                    || line.starts_with("import\t")
                {
                    continue;
                }
                let site_abs = env.prefix.join(OsStr::from_bytes(&site[..site.len() - 1]));
                let target = normalize(&site_abs.join(line));
                if !target.starts_with(&env.prefix) {
                    found.push(format!("{label}: adds `{line}` to sys.path"));
                }
            }
        }
    }
    if found.is_empty() {
        return Ok(());
    }
    if options.ignore_editable_packages {
        reporter.warning(&Warning::EditableIgnored { found });
        Ok(())
    } else {
        Err(Error::EditableInstalls { found }.into())
    }
}

/// Lexically normalises `.` and `..` components (no file-system access).
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_order_puts_metadata_first_and_parents_before_children() {
        let mut paths: Vec<&[u8]> = vec![
            b"a-b",
            b"a/b",
            b"a",
            b".gopack/manifest.json",
            b".condarc",
            b".gopack",
        ];
        paths.sort_by(|a, b| archive_order(a, b));
        assert_eq!(
            paths,
            vec![
                &b".gopack"[..],
                b".gopack/manifest.json",
                b".condarc",
                b"a",
                b"a/b",
                b"a-b"
            ]
        );
    }
}
