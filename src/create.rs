//! `gopack create`: [`create`] runs the whole pipeline — open the environment, scan it, plan
//! every file, add gopack's metadata and scripts, write the bundle — from checked
//! [`CreateOptions`].

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use crate::archive::{self, WriteOptions, Written};
use crate::conda::CondaEnv;
use crate::error::Result;
use crate::go::build::{self as go_build, GoBuildOptions};
use crate::go::{GoBinary, Origin};
use crate::manifest::{MANIFEST_PATH, Manifest};
use crate::plan::{self, Body, Plan, PlanOptions, PlannedEntry};
use crate::progress::{Reporter, Warning};
use crate::relocate::{ByteString, Edit, TextRecord};
use crate::scan::{self, Entry, EntryKind, ScanOptions, archive_order};
use crate::scripts;

/// Checked options of `gopack create`.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// The environment's prefix.
    pub prefix: PathBuf,
    /// The bundle to write.
    pub output: PathBuf,
    /// What to scan.
    pub scan: ScanOptions,
    /// Planning options.
    pub plan: PlanOptions,
    /// How to write.
    pub write: WriteOptions,
    /// Go services to build into the bundle.
    pub go: GoBuildOptions,
}

/// What `create` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    /// The written bundle.
    pub bundle: Written,
    /// The source prefix.
    pub prefix: PathBuf,
    /// The conda platform.
    pub platform: String,
    /// Conda packages.
    pub conda_packages: usize,
    /// Pip distributions.
    pub pip_packages: usize,
    /// Go binaries.
    pub go_binaries: usize,
    /// Text relocation records.
    pub text_records: usize,
    /// Binary relocation records (files).
    pub binary_records: usize,
    /// Pack-time fixes.
    pub fixed: usize,
}

/// Plans the bundle for `prefix` without writing anything (used by `create` and by tests).
///
/// # Errors
/// Everything [`CondaEnv::open`], [`scan::scan`] and [`plan::plan`] report.
/// Go binaries are built into `go_staging`, which must outlive the plan's use.
pub fn plan_bundle(
    prefix: &std::path::Path,
    scan_options: &ScanOptions,
    plan_options: &PlanOptions,
    go_options: &GoBuildOptions,
    go_staging: &std::path::Path,
    cancel: &AtomicBool,
    reporter: &dyn Reporter,
) -> Result<Plan> {
    reporter.stage("scanning");
    let env = CondaEnv::open(prefix)?;
    let inventory = scan::scan(&env, scan_options, reporter)?;
    let mut plan = plan::plan(&env, inventory, plan_options, cancel, reporter)?;
    if go_options.any() {
        add_go_binaries(&mut plan, go_options, go_staging, reporter)?;
    }
    add_generated(&mut plan, plan_options.dest_prefix.as_deref(), reporter)?;
    Ok(plan)
}

/// Builds the requested Go services for the environment's platform and puts them in `bin/`,
/// replacing same-named files of the environment (with a warning).
fn add_go_binaries(
    plan: &mut Plan,
    options: &GoBuildOptions,
    staging: &std::path::Path,
    reporter: &dyn Reporter,
) -> Result<()> {
    reporter.stage("building Go");
    let go = go_build::find_toolchain(&plan.prefix, options.toolchain.as_deref())?;
    let vars = scripts::env_vars(&plan.prefix);
    let targets = go_build::targets(&plan.prefix, &go, &plan.platform, &vars, options)?;
    let built = go_build::build_all(&go, &plan.platform, &targets, options, staging)?;
    let mtime = generated_mtime(plan);
    let finder =
        memchr::memmem::Finder::new(plan.prefix.as_os_str().as_encoded_bytes()).into_owned();
    for binary in built {
        let path = go_build::archive_path(&binary);
        let size = std::fs::metadata(&binary.path)
            .map_err(|source| crate::Error::io("cannot read a built Go binary", source))?
            .len();
        let facts = crate::scan::content::analyse(
            &binary.path,
            &path,
            size,
            &finder,
            &AtomicBool::new(false),
        )?;
        let file = std::fs::File::open(&binary.path)
            .map_err(|source| crate::Error::io("cannot read a built Go binary", source))?;
        let build_info = facts
            .go_buildinfo
            .iter()
            .find_map(|&offset| crate::go::buildinfo::read_at(&file, offset).ok())
            .ok_or_else(|| crate::Error::GoBinary {
                path: binary.path.clone(),
                message: "the built binary has no readable Go build info".into(),
            })?;
        if let Some(existing) = remove_entry(plan, &path) {
            reporter.warning(&Warning::Replaced {
                path: existing.entry.display(),
                by: format!("the Go binary built from `{}`", binary.target.dir.display()),
            });
        }
        plan.go_binaries.push(GoBinary {
            path: ByteString(path.clone()),
            sha256: hex::encode(facts.sha256),
            origin: Origin::Built,
            build_info,
        });
        if !plan.entries.iter().any(|p| p.entry.path == b"bin") {
            plan.entries.push(PlannedEntry {
                entry: Entry {
                    path: b"bin".to_vec(),
                    kind: EntryKind::Dir,
                    mode: 0o755,
                    mtime,
                    size: 0,
                },
                body: Body::None,
            });
        }
        plan.entries.push(PlannedEntry {
            entry: Entry {
                path,
                kind: EntryKind::File,
                mode: 0o755,
                mtime,
                size,
            },
            body: Body::External {
                source: binary.path.clone(),
                sha256: facts.sha256,
                size,
            },
        });
    }
    plan.go_binaries.sort_by(|a, b| a.path.cmp(&b.path));
    plan.entries
        .sort_by(|a, b| archive_order(&a.entry.path, &b.entry.path));
    Ok(())
}

/// The mtime of gopack's own members: the newest conda-meta record's, so it is the same on
/// every run for the same environment (no pack-time clock).
fn generated_mtime(plan: &Plan) -> u64 {
    plan.entries
        .iter()
        .filter(|p| p.entry.path.starts_with(b"conda-meta/"))
        .map(|p| p.entry.mtime)
        .max()
        .unwrap_or(0)
}

/// Packs an environment into a bundle.
///
/// # Errors
/// Any error of planning or writing; nothing is left at the output path on error.
pub fn create(
    options: &CreateOptions,
    cancel: &AtomicBool,
    reporter: &dyn Reporter,
) -> Result<Summary> {
    archive::check_output(&options.output, options.write.force)?;
    let go_staging = tempfile::Builder::new()
        .prefix("gopack-go-")
        .tempdir()
        .map_err(|source| crate::Error::io("cannot create a directory for Go builds", source))?;
    let plan = plan_bundle(
        &options.prefix,
        &options.scan,
        &options.plan,
        &options.go,
        go_staging.path(),
        cancel,
        reporter,
    )?;
    let bundle = archive::write_bundle(&plan, &options.output, &options.write, cancel, reporter)?;
    Ok(Summary {
        bundle,
        prefix: plan.prefix.clone(),
        platform: plan.platform.clone(),
        conda_packages: plan.packages.len(),
        pip_packages: plan.pip_packages.len(),
        go_binaries: plan.go_binaries.len(),
        text_records: plan.relocation.text.len(),
        binary_records: plan.relocation.binary.len(),
        fixed: plan.relocation.fixed.len(),
    })
}

/// Marks files gopack generated in an earlier bundle, so repacking an unpacked bundle replaces
/// them silently.
const GENERATED_MARK: &[u8] = b"Generated by gopack";

/// Adds `.gopack/` metadata and the unpack/activate scripts to the plan, replacing files of the
/// same name in the environment, then the manifest, which describes everything else.
fn add_generated(
    plan: &mut Plan,
    dest_prefix: Option<&[u8]>,
    reporter: &dyn Reporter,
) -> Result<()> {
    let source_prefix = plan.relocation.source_prefix.0.clone();
    let mtime = generated_mtime(plan);
    let vars = scripts::env_vars(&plan.prefix);
    let generated: Vec<(&[u8], u32, Vec<u8>)> = vec![
        (
            b"bin/gopack-unpack",
            0o755,
            scripts::UNPACK.as_bytes().to_vec(),
        ),
        (b"bin/activate", 0o644, scripts::activate(&source_prefix)),
        (
            b"bin/deactivate",
            0o644,
            scripts::DEACTIVATE.as_bytes().to_vec(),
        ),
        (
            b"bin/activate.fish",
            0o644,
            scripts::ACTIVATE_FISH.as_bytes().to_vec(),
        ),
        (b".gopack/env_vars.sh", 0o644, scripts::env_vars_sh(&vars)),
        (
            b".gopack/env_vars.fish",
            0o644,
            scripts::env_vars_fish(&vars),
        ),
    ];
    for (path, _, _) in &generated {
        if let Some(existing) = remove_entry(plan, path)
            && !is_generated(plan, &existing)
        {
            reporter.warning(&Warning::Replaced {
                path: existing.entry.display(),
                by: "gopack's own script".into(),
            });
        }
    }
    for (path, _, content) in &generated {
        let occurrences = memchr::memmem::find_iter(content, &source_prefix).count();
        if occurrences > 0 {
            plan.relocation.text.push(TextRecord {
                path: ByteString(path.to_vec()),
                occurrences,
            });
        }
    }
    // The records file is rendered last: it lists the generated files' own records too.
    let records = scripts::records(&plan.relocation);
    let mut additions: Vec<(Vec<u8>, u32, Vec<u8>)> = generated
        .into_iter()
        .map(|(path, mode, content)| (path.to_vec(), mode, content))
        .collect();
    additions.push((b".gopack/records.sh".to_vec(), 0o644, records));
    let dir = |path: &[u8]| Entry {
        path: path.to_vec(),
        kind: EntryKind::Dir,
        mode: 0o755,
        mtime,
        size: 0,
    };
    for parent in [&b".gopack"[..], b"bin"] {
        if !plan.entries.iter().any(|p| p.entry.path == parent) {
            plan.entries.push(PlannedEntry {
                entry: dir(parent),
                body: Body::None,
            });
        }
    }
    for (path, mode, content) in additions {
        plan.entries.push(PlannedEntry {
            entry: Entry {
                path,
                kind: EntryKind::File,
                mode,
                mtime,
                size: content.len() as u64,
            },
            body: Body::Generated(content),
        });
    }
    if let Some(dest) = dest_prefix {
        apply_dest_prefix(plan, dest)?;
        // The files now hold `dest`: bin/gopack-unpack starts from there if the bundle moves.
        plan.entries.push(PlannedEntry {
            entry: Entry {
                path: b".gopack/prefix".to_vec(),
                kind: EntryKind::File,
                mode: 0o644,
                mtime,
                size: dest.len() as u64,
            },
            body: Body::Generated(dest.to_vec()),
        });
    }
    let manifest = Manifest::from_plan(plan).to_json();
    plan.entries.push(PlannedEntry {
        entry: Entry {
            path: MANIFEST_PATH.as_bytes().to_vec(),
            kind: EntryKind::File,
            mode: 0o644,
            mtime,
            size: manifest.len() as u64,
        },
        body: Body::Generated(manifest),
    });
    plan.entries
        .sort_by(|a, b| archive_order(&a.entry.path, &b.entry.path));
    Ok(())
}

/// Applies every relocation record for `dest` while packing: text files get the new prefix,
/// binary slots are rendered for it (all checked first).
fn apply_dest_prefix(plan: &mut Plan, dest: &[u8]) -> Result<()> {
    use std::collections::HashMap;
    let old = plan.relocation.source_prefix.0.clone();
    plan.relocation.check_fits(dest)?;
    let mut slots: HashMap<Vec<u8>, Vec<crate::relocate::Patch>> = HashMap::new();
    for record in &plan.relocation.binary {
        for slot in &record.slots {
            slots
                .entry(record.path.0.clone())
                .or_default()
                .push(crate::relocate::Patch {
                    offset: slot.offset,
                    bytes: slot.render(dest).expect("checked above"),
                });
        }
    }
    let texts: std::collections::HashSet<Vec<u8>> = plan
        .relocation
        .text
        .iter()
        .map(|r| r.path.0.clone())
        .collect();
    let prefix = plan.prefix.clone();
    for planned in &mut plan.entries {
        let path = planned.entry.path.clone();
        let is_text = texts.contains(&path);
        let patches = slots.remove(&path);
        if !is_text && patches.is_none() {
            continue;
        }
        let source = planned.entry.absolute(&prefix);
        let read_error = |source_err| crate::Error::Unreadable {
            path: source.clone(),
            source: source_err,
        };
        let current: Vec<u8> = match &planned.body {
            Body::Generated(bytes) => bytes.clone(),
            Body::Disk {
                edit: Edit::Replace(bytes),
                ..
            } => bytes.clone(),
            Body::Disk { edit, .. } => {
                let file = std::fs::File::open(&source).map_err(read_error)?;
                let empty = Vec::new();
                let existing = match edit {
                    Edit::Patch(patches) => patches,
                    _ => &empty,
                };
                let mut reader =
                    crate::plan::PatchedReader::new(&file, planned.entry.size, existing);
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut reader, &mut bytes).map_err(read_error)?;
                bytes
            }
            _ => continue,
        };
        let mut new = if is_text {
            crate::relocate::text::replace_all(&current, &old, dest)
        } else {
            current
        };
        for patch in patches.into_iter().flatten() {
            let start = patch.offset as usize;
            new[start..start + patch.bytes.len()].copy_from_slice(&patch.bytes);
        }
        use sha2::Digest;
        let sha256: [u8; 32] = sha2::Sha256::digest(&new).into();
        let size = new.len() as u64;
        planned.body = match &planned.body {
            Body::Disk { kind, .. } => Body::Disk {
                edit: Edit::Replace(new),
                sha256,
                size,
                kind: *kind,
            },
            _ => Body::Generated(new),
        };
    }
    for binary in &mut plan.go_binaries {
        if let Some(planned) = plan.entries.iter().find(|p| p.entry.path == binary.path.0)
            && let Body::Disk { sha256, .. } = &planned.body
        {
            binary.sha256 = hex::encode(sha256);
        }
    }
    Ok(())
}

/// Removes an environment entry that gopack replaces with its own file, together with
/// everything the plan recorded about it.
fn remove_entry(plan: &mut Plan, path: &[u8]) -> Option<PlannedEntry> {
    let index = plan.entries.iter().position(|p| p.entry.path == path)?;
    let existing = plan.entries.remove(index);
    plan.go_binaries.retain(|g| g.path.0 != path);
    let relocation = &mut plan.relocation;
    relocation.text.retain(|record| record.path.0 != path);
    relocation.binary.retain(|record| record.path.0 != path);
    relocation.left_alone.retain(|record| record.path.0 != path);
    relocation.fixed.retain(|fix| fix.path() != path);
    Some(existing)
}

fn is_generated(plan: &Plan, existing: &PlannedEntry) -> bool {
    let path = existing.entry.absolute(&plan.prefix);
    std::fs::read(path)
        .map(|content| memchr::memmem::find(&content, GENERATED_MARK).is_some())
        .unwrap_or(false)
}
