//! The pack plan: [`plan`] reads every file of the [`Inventory`] once, in parallel (hash, prefix
//! search, kind, Go build info), and decides for each what is packed and what the target must
//! relocate. The result is a plain value: `inspect`-style reporting and most tests stop here;
//! [`crate::archive`] turns it into a bundle.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use memchr::memmem::Finder;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::conda::CondaEnv;
use crate::error::{Error, Result};
use crate::go::GoBinary;
use crate::manifest::{FORMAT_VERSION, FileRecord, MANIFEST_PATH, Manifest, PathKind, Totals};
use crate::progress::{Reporter, Warning};
use crate::relocate::{self, ByteString, Edit, FileContext, Fix, LeftAlone};
use crate::scan::Error as ScanError;
use crate::scan::classify::FileKind;
use crate::scan::content;
use crate::scan::{Entry, EntryKind, Inventory};

/// What is written for an entry's content.
#[derive(Debug, Clone)]
pub enum Body {
    /// Directories, symlinks and hard links carry no content.
    None,
    /// A file of the environment, packed from disk with `edit` applied.
    Disk {
        /// The change applied while packing.
        edit: Edit,
        /// sha256 of the packed bytes.
        sha256: [u8; 32],
        /// Size of the packed bytes.
        size: u64,
        /// The file's kind.
        kind: FileKind,
    },
    /// A file gopack generates (scripts, metadata).
    Generated(Vec<u8>),
    /// A file from outside the environment (a Go binary gopack built), streamed from `source`.
    External {
        /// Where the file is.
        source: PathBuf,
        /// sha256 of its bytes.
        sha256: [u8; 32],
        /// Its size.
        size: u64,
    },
}

/// One entry of the plan.
#[derive(Debug, Clone)]
pub struct PlannedEntry {
    /// The entry (for symlinks, with the target that is packed).
    pub entry: Entry,
    /// Its content.
    pub body: Body,
}

impl PlannedEntry {
    /// A directory gopack adds (mode 0755).
    pub fn directory(path: &[u8], mtime: u64) -> PlannedEntry {
        PlannedEntry {
            entry: Entry {
                path: path.to_vec(),
                kind: EntryKind::Dir,
                mode: 0o755,
                mtime,
                size: 0,
            },
            body: Body::None,
        }
    }

    /// Size of the packed content.
    pub fn packed_size(&self) -> u64 {
        match &self.body {
            Body::None => 0,
            Body::Disk { size, .. } | Body::External { size, .. } => *size,
            Body::Generated(bytes) => bytes.len() as u64,
        }
    }
}

pub use crate::relocate::Relocation;

pub use crate::manifest::{CondaPackage, PipPackage};

/// The whole plan.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The source prefix.
    pub prefix: PathBuf,
    /// The conda platform.
    pub platform: String,
    /// Conda packages.
    pub packages: Vec<CondaPackage>,
    /// Unmanaged Python distributions.
    pub pip_packages: Vec<PipPackage>,
    /// Every entry, in archive order.
    pub entries: Vec<PlannedEntry>,
    /// Relocation records and fixes.
    pub relocation: Relocation,
    /// Go binaries found in the environment (built ones are added by the Go step).
    pub go_binaries: Vec<GoBinary>,
    /// How the native relocator the bundle carries is linked, if it carries one.
    pub relocator: Option<relocate::carry::Linkage>,
}

/// In-memory contents larger than this are moved to files before the archive is written.
const SPILL_ABOVE: usize = 64 * 1024;

impl Plan {
    /// Moves content the plan holds in memory (the manifest, rewritten conda-meta records) to
    /// files in `scratch` when it is large, so that while the archive is written memory grows
    /// with the number of files only by their compact entries. `scratch` must outlive the
    /// plan's use.
    ///
    /// # Errors
    /// I/O errors naming the file in `scratch`.
    pub fn spill_large_bodies(&mut self, scratch: &std::path::Path) -> Result<()> {
        for (index, planned) in self.entries.iter_mut().enumerate() {
            let (bytes, sha256) = match &planned.body {
                Body::Generated(bytes) if bytes.len() > SPILL_ABOVE => {
                    (bytes, Sha256::digest(bytes).into())
                }
                Body::Disk {
                    edit: Edit::Replace(bytes),
                    sha256,
                    ..
                } if bytes.len() > SPILL_ABOVE => (bytes, *sha256),
                _ => continue,
            };
            let source = scratch.join(format!("spilled-{index}"));
            fs_err::write(&source, bytes).map_err(|source| {
                Error::io("cannot write a scratch file for the archive", source)
            })?;
            planned.body = Body::External {
                size: bytes.len() as u64,
                source,
                sha256,
            };
        }
        Ok(())
    }

    /// The mtime of gopack's own members: the newest conda-meta record's, so it is the same on
    /// every run for the same environment (no pack-time clock).
    pub fn generated_mtime(&self) -> u64 {
        self.entries
            .iter()
            .filter(|p| p.entry.path.starts_with(b"conda-meta/"))
            .map(|p| p.entry.mtime)
            .max()
            .unwrap_or(0)
    }

    /// Removes an environment entry that gopack replaces with its own file, together with
    /// everything the plan recorded about it.
    pub fn remove_entry(&mut self, path: &[u8]) -> Option<PlannedEntry> {
        let index = self.entries.iter().position(|p| p.entry.path == path)?;
        let existing = self.entries.remove(index);
        self.go_binaries.retain(|g| g.path.0 != path);
        let relocation = &mut self.relocation;
        relocation.text.retain(|record| record.path.0 != path);
        relocation.binary.retain(|record| record.path.0 != path);
        relocation.left_alone.retain(|record| record.path.0 != path);
        relocation.fixed.retain(|fix| fix.path() != path);
        Some(existing)
    }

    /// Adds a directory entry for `path` unless the plan has one.
    pub fn ensure_dir(&mut self, path: &[u8], mtime: u64) {
        if !self.entries.iter().any(|p| p.entry.path == path) {
            self.entries.push(PlannedEntry::directory(path, mtime));
        }
    }

    /// Puts the entries in archive order.
    pub fn sort_entries(&mut self) {
        self.entries
            .sort_by(|a, b| crate::scan::archive_order(&a.entry.path, &b.entry.path));
    }

    /// Total packed bytes of file content.
    pub fn content_bytes(&self) -> u64 {
        self.entries.iter().map(PlannedEntry::packed_size).sum()
    }
}

/// Options of the planning step.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Downgrade a Go binary for another platform from an error to a warning.
    pub allow_foreign_go: bool,
    /// Apply every relocation record at pack time for this known target prefix
    /// (`--dest-prefix`); the bundle then needs no unpack step there.
    pub dest_prefix: Option<Vec<u8>>,
    /// The native relocator to carry as `.gopack/relocate`.
    pub relocator: Option<relocate::carry::RelocatorChoice>,
}

/// One file's analysis, as small as possible: every file of the environment has one at once.
struct Analysed {
    body: Body,
    /// What the relocation plan and the Go check need, for the few files that have any.
    extras: Option<Box<Extras>>,
}

struct Extras {
    plan: relocate::FilePlan,
    go: Option<GoBinary>,
}

/// What analysing one entry gave besides its planned entry.
enum Outcome {
    /// Nothing to add to the relocation plan.
    Nothing,
    /// Relocation records, fixes or a Go binary.
    Extras(Box<Extras>),
    /// The entry could not be analysed (boxed: one word per entry in the common case).
    Failed(Box<Error>),
}

/// Reads every file once and plans what happens to it.
///
/// # Errors
/// Unreadable files, files that change while they are read, foreign-platform Go binaries.
pub fn plan(
    env: &CondaEnv,
    inventory: Inventory,
    options: &PlanOptions,
    cancel: &AtomicBool,
    reporter: &dyn Reporter,
) -> Result<Plan> {
    reporter.stage("analysing");
    let prefix_bytes = env.prefix.as_os_str().as_bytes().to_vec();
    let finder = Finder::new(&prefix_bytes).into_owned();
    let platform = env.platform();
    // Each entry is analysed and becomes its planned entry in one parallel step, in order: no
    // list of analyses is held beside the entries (at 250,000 files that list alone is ~30 MB).
    // What a few files add to the relocation plan comes back beside them, with any error.
    let count = inventory.entries.len();
    // Room for what later steps add (gopack's own files, Go binaries, directories), so the
    // largest allocation of the plan is never doubled to add a handful of entries.
    let mut entries: Vec<PlannedEntry> = Vec::with_capacity(count + 256);
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(count);
    inventory
        .entries
        .into_par_iter()
        .map(|entry| {
            let (body, outcome) = if entry.kind != EntryKind::File {
                (Body::None, Outcome::Nothing)
            } else if cancel.load(Ordering::Relaxed) {
                (Body::None, Outcome::Failed(Box::new(Error::Interrupted)))
            } else {
                let result = analyse_entry(env, &entry, &finder, &prefix_bytes, cancel);
                reporter.analysed(entry.size);
                match result {
                    Ok(Analysed { body, extras }) => {
                        (body, extras.map_or(Outcome::Nothing, Outcome::Extras))
                    }
                    Err(err) => (Body::None, Outcome::Failed(Box::new(err))),
                }
            };
            (PlannedEntry { entry, body }, outcome)
        })
        // Written in place into the lists above: no per-thread pieces joined afterwards.
        .unzip_into_vecs(&mut entries, &mut outcomes);

    let mut relocation = Relocation {
        source_prefix: ByteString(prefix_bytes.clone()),
        ..Relocation::default()
    };
    let mut go_binaries = Vec::new();
    for (planned, outcome) in entries.iter_mut().zip(outcomes) {
        match outcome {
            Outcome::Nothing => {}
            Outcome::Extras(extras) => {
                let Extras { plan, go } = *extras;
                relocation.fixed.extend(plan.fixes);
                relocation.text.extend(plan.text);
                relocation.binary.extend(plan.binary);
                relocation.left_alone.extend(plan.left_alone);
                go_binaries.extend(go);
            }
            // The first failure in archive order, as a sequential pass would have met it.
            Outcome::Failed(err) => return Err(*err),
        }
        let entry = &mut planned.entry;
        // Links leading out of the environment were refused (or copied) by the scan.
        if let EntryKind::Symlink { target } = &entry.kind
            && let Some(relative) =
                crate::paths::relative_link_target(&entry.path, target, &prefix_bytes)
        {
            relocation.fixed.push(Fix::RelativeSymlink {
                path: ByteString(entry.path.clone()),
                target: ByteString(relative.clone()),
            });
            entry.kind = EntryKind::Symlink { target: relative };
        }
    }
    attach_hard_links(&mut relocation, &entries);
    check_go_binaries(&go_binaries, &platform, options, reporter)?;
    warn_left_alone(&relocation.left_alone, reporter);
    let packages = env
        .packages
        .iter()
        .map(|record| CondaPackage {
            name: record.name.clone(),
            version: record.version.clone(),
            build: record.build.clone(),
            channel: record.channel_name(),
            subdir: record.subdir.clone(),
            depends: record.depends.clone(),
            sha256: record.sha256.clone(),
            md5: record.md5.clone(),
        })
        .collect();
    Ok(Plan {
        prefix: env.prefix.clone(),
        platform,
        packages,
        pip_packages: crate::conda::pip::unmanaged_distributions(env),
        entries,
        relocation,
        go_binaries,
        relocator: None,
    })
}

fn analyse_entry(
    env: &CondaEnv,
    entry: &Entry,
    finder: &Finder<'static>,
    prefix: &[u8],
    cancel: &AtomicBool,
) -> Result<Analysed> {
    let path = entry.absolute(&env.prefix);
    let facts = content::analyse(&path, &entry.path, entry.size, finder, cancel)?;
    let unreadable = |source| ScanError::Unreadable {
        path: path.clone(),
        source,
    };
    let file = crate::error::open_file(&path).map_err(unreadable)?;
    let mut go = None;
    for &offset in &facts.go_buildinfo {
        if let Ok(info) = crate::go::buildinfo::read_at(&file, offset) {
            go = Some(GoBinary::collected(
                &entry.path,
                hex::encode(facts.sha256),
                info,
            ));
            break;
        }
    }
    let relative = String::from_utf8_lossy(&entry.path);
    let context = FileContext {
        path: &entry.path,
        mode: entry.mode,
        managed: env.managed.get(relative.as_ref()),
        prefix,
        is_record: entry.path.starts_with(b"conda-meta/") && entry.path.ends_with(b".json"),
        is_go: go.is_some(),
    };
    let mut plan = relocate::plan_file(&context, &facts, &file).map_err(unreadable)?;
    if let Some(text) = plan.text.as_mut() {
        text.no_final_newline = facts.last_byte.is_some_and(|byte| byte != b'\n');
    }
    let (sha256, size) = match &plan.edit {
        Edit::None => (facts.sha256, facts.size),
        Edit::Replace(bytes) => (Sha256::digest(bytes).into(), bytes.len() as u64),
        edit => crate::stream::digest(relocate::apply::edited_reader(&file, facts.size, edit))
            .map_err(unreadable)?,
    };
    if let Some(go) = go.as_mut() {
        go.sha256 = hex::encode(sha256);
    }
    let body = Body::Disk {
        // Moved, not copied: a replaced conda-meta record is the file's whole content.
        edit: std::mem::take(&mut plan.edit),
        sha256,
        size,
        kind: facts.kind,
    };
    let nothing_else = plan.fixes.is_empty()
        && plan.text.is_none()
        && plan.binary.is_none()
        && plan.left_alone.is_none()
        && go.is_none();
    Ok(Analysed {
        body,
        extras: (!nothing_else).then(|| Box::new(Extras { plan, go })),
    })
}

/// Gives each relocation record the other names of its file, so relocation rewrites them all.
fn attach_hard_links(relocation: &mut Relocation, entries: &[PlannedEntry]) {
    let mut twins: std::collections::HashMap<&[u8], Vec<ByteString>> = Default::default();
    for planned in entries {
        if let EntryKind::HardLink { target } = &planned.entry.kind {
            twins
                .entry(target.as_slice())
                .or_default()
                .push(ByteString(planned.entry.path.clone()));
        }
    }
    if twins.is_empty() {
        return;
    }
    for record in &mut relocation.text {
        record.links = twins
            .get(record.path.0.as_slice())
            .cloned()
            .unwrap_or_default();
    }
    for record in &mut relocation.binary {
        record.links = twins
            .get(record.path.0.as_slice())
            .cloned()
            .unwrap_or_default();
    }
}

fn check_go_binaries(
    binaries: &[GoBinary],
    platform: &str,
    options: &PlanOptions,
    reporter: &dyn Reporter,
) -> Result<()> {
    let mut untrimmed = Vec::new();
    for binary in binaries {
        if let Some(own) = binary.conda_platform()
            && own != platform
        {
            let message = format!(
                "built for {} ({}/{}), but the environment is {platform}",
                own,
                binary.build_info.setting("GOOS").unwrap_or("?"),
                binary.build_info.setting("GOARCH").unwrap_or("?"),
            );
            if options.allow_foreign_go {
                reporter.warning(&Warning::ForeignGoBinary {
                    path: binary.path.display(),
                    message,
                });
            } else {
                return Err(crate::go::Error::Binary {
                    path: PathBuf::from(OsStr::from_bytes(&binary.path.0)),
                    message: format!(
                        "{message}; rebuild it for {platform}, remove it, or pass `--allow-foreign-go`"
                    ),
                }
                .into());
            }
        }
        if !binary.build_info.trimpath() {
            untrimmed.push(binary.path.display());
        }
    }
    if !untrimmed.is_empty() {
        reporter.warning(&Warning::UntrimmedGoBinaries { paths: untrimmed });
    }
    Ok(())
}

fn warn_left_alone(left_alone: &[LeftAlone], reporter: &dyn Reporter) {
    let mut by_reason: BTreeMap<relocate::LeftAloneReason, Vec<String>> = BTreeMap::new();
    for item in left_alone
        .iter()
        .filter(|item| item.reason.worth_a_warning())
    {
        by_reason
            .entry(item.reason)
            .or_default()
            .push(item.path.display());
    }
    for (reason, paths) in by_reason {
        reporter.warning(&Warning::PrefixLeftAlone {
            reason: reason.explain().to_string(),
            paths,
        });
    }
}

impl Manifest {
    /// Builds the manifest of a plan: every entry but the manifest itself, which is rendered
    /// from this value and so cannot list its own hash. Everything gopack adds to `.gopack/` is
    /// in the plan before the manifest is rendered, so it is listed and verified like the rest.
    pub fn from_plan(plan: &Plan) -> Manifest {
        let mut totals = Totals::default();
        let mut files = Vec::with_capacity(plan.entries.len());
        for planned in &plan.entries {
            let entry = &planned.entry;
            if entry.path == MANIFEST_PATH.as_bytes() {
                continue;
            }
            let (kind, target) = match &entry.kind {
                EntryKind::Dir => {
                    totals.dirs += 1;
                    (PathKind::Dir, None)
                }
                EntryKind::File => {
                    totals.files += 1;
                    (PathKind::File, None)
                }
                EntryKind::HardLink { target } => {
                    totals.hardlinks += 1;
                    (PathKind::Hardlink, Some(ByteString(target.clone())))
                }
                EntryKind::Symlink { target } => {
                    totals.symlinks += 1;
                    (PathKind::Symlink, Some(ByteString(target.clone())))
                }
            };
            let (size, sha256) = match &planned.body {
                Body::None => (None, None),
                Body::Disk { sha256, size, .. } | Body::External { sha256, size, .. } => {
                    (Some(*size), Some(crate::manifest::Sha256(*sha256)))
                }
                Body::Generated(bytes) => {
                    use sha2::Digest;
                    (
                        Some(bytes.len() as u64),
                        Some(crate::manifest::Sha256(sha2::Sha256::digest(bytes).into())),
                    )
                }
            };
            totals.bytes += size.unwrap_or(0);
            files.push(FileRecord {
                path: ByteString(entry.path.clone()),
                kind,
                mode: entry.mode,
                size,
                sha256,
                target,
            });
        }
        Manifest {
            format_version: FORMAT_VERSION,
            gopack_version: env!("CARGO_PKG_VERSION").to_string(),
            source_prefix: ByteString(plan.prefix.as_os_str().as_encoded_bytes().to_vec()),
            platform: plan.platform.clone(),
            packages: plan.packages.clone(),
            pip_packages: plan.pip_packages.clone(),
            go_binaries: plan.go_binaries.clone(),
            relocation: plan.relocation.clone(),
            totals,
            files,
        }
    }
}
