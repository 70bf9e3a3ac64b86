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
use crate::relocate::{self, ByteString, Edit, Quoting, TextRecord};
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
    /// The checksum file and SBOM written beside the bundle.
    pub provenance: crate::provenance::ProvenanceOptions,
    /// Write a container image instead of a bundle (`--format oci`/`oci-dir`; the plan's
    /// `dest_prefix` must be set).
    pub image: Option<crate::oci::ImageOptions>,
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
    /// Python bytecode files that keep the source prefix (for tracebacks only).
    pub bytecode_left_alone: usize,
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
        add_go_binaries(&mut plan, go_options, go_staging, cancel, reporter)?;
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
    cancel: &AtomicBool,
    reporter: &dyn Reporter,
) -> Result<()> {
    reporter.stage("building Go");
    let go = go_build::find_toolchain(&plan.prefix, options.toolchain.as_deref())?;
    let vars = scripts::env_vars(&plan.prefix);
    let targets = go_build::targets(
        &plan.prefix,
        &go,
        &plan.platform,
        &vars,
        options,
        staging,
        cancel,
    )?;
    let built = go_build::build_all(&go, &plan.platform, &targets, options, staging, cancel)?;
    let mtime = generated_mtime(plan);
    let finder =
        memchr::memmem::Finder::new(plan.prefix.as_os_str().as_encoded_bytes()).into_owned();
    for binary in built {
        let path = go_build::archive_path(&binary);
        let size = std::fs::metadata(&binary.path)
            .map_err(|source| crate::Error::io("cannot read a built Go binary", source))?
            .len();
        let facts = crate::scan::content::analyse(&binary.path, &path, size, &finder, cancel)?;
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
    let bundle = match &options.image {
        Some(image) => crate::oci::write_image(
            &plan,
            &options.output,
            &options.write,
            image,
            cancel,
            reporter,
        )?,
        None => archive::write_bundle(&plan, &options.output, &options.write, cancel, reporter)?,
    };
    crate::provenance::finish_bundle(&bundle.path, &options.provenance, reporter)?;
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
        bytecode_left_alone: plan
            .relocation
            .left_alone
            .iter()
            .filter(|item| item.reason == crate::relocate::LeftAloneReason::PythonBytecode)
            .count(),
    })
}

/// Marks files gopack generated in an earlier bundle, so repacking an unpacked bundle replaces
/// them silently.
const GENERATED_MARK: &[u8] = b"Generated by gopack";

/// Adds `.gopack/` metadata and the unpack/activate scripts to the plan, replacing files of the
/// same name in the environment, applies `--dest-prefix`, then renders the records and the
/// manifest, which describe everything else.
fn add_generated(
    plan: &mut Plan,
    dest_prefix: Option<&[u8]>,
    reporter: &dyn Reporter,
) -> Result<()> {
    let source_prefix = plan.relocation.source_prefix.0.clone();
    let mtime = generated_mtime(plan);
    let (vars, skipped) = scripts::read_env_vars(&plan.prefix);
    if !skipped.is_empty() {
        reporter.warning(&Warning::EnvVarsSkipped { names: skipped });
    }
    // (path, mode, content, how the prefix is quoted in it)
    let generated: Vec<(&[u8], u32, Vec<u8>, Quoting)> = vec![
        (
            b"bin/gopack-unpack",
            0o755,
            scripts::UNPACK.as_bytes().to_vec(),
            Quoting::Plain,
        ),
        (
            b"bin/activate",
            0o644,
            scripts::activate(&source_prefix),
            Quoting::Sh,
        ),
        (
            b"bin/deactivate",
            0o644,
            scripts::DEACTIVATE.as_bytes().to_vec(),
            Quoting::Plain,
        ),
        (
            b"bin/activate.fish",
            0o644,
            scripts::ACTIVATE_FISH.as_bytes().to_vec(),
            Quoting::Plain,
        ),
        (
            b".gopack/env_vars.sh",
            0o644,
            scripts::env_vars_sh(&vars),
            Quoting::Sh,
        ),
        (
            b".gopack/env_vars.fish",
            0o644,
            scripts::env_vars_fish(&vars),
            Quoting::Fish,
        ),
    ];
    debug_assert!(
        generated
            .iter()
            .map(|(path, ..)| *path)
            .eq(scripts::GENERATED_PATHS.iter().copied())
    );
    for (path, _, _, _) in &generated {
        if let Some(existing) = remove_entry(plan, path)
            && !is_generated(plan, &existing)
        {
            reporter.warning(&Warning::Replaced {
                path: existing.entry.display(),
                by: "gopack's own script".into(),
            });
        }
    }
    for (path, _, content, quoting) in &generated {
        let occurrences =
            memchr::memmem::find_iter(content, &quoting.escape(&source_prefix)).count();
        if occurrences > 0 {
            plan.relocation.text.push(TextRecord {
                quoting: *quoting,
                ..TextRecord::plain(ByteString(path.to_vec()), occurrences)
            });
        }
    }
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
    let file = |path: &[u8], mode: u32, content: Vec<u8>| PlannedEntry {
        entry: Entry {
            path: path.to_vec(),
            kind: EntryKind::File,
            mode,
            mtime,
            size: content.len() as u64,
        },
        body: Body::Generated(content),
    };
    for (path, mode, content, _) in generated {
        plan.entries.push(file(path, mode, content));
    }
    if let Some(dest) = dest_prefix {
        apply_dest_prefix(plan, dest)?;
        // The files now hold `dest`: both unpack paths relocate from there if the bundle moves.
        plan.entries
            .push(file(b".gopack/prefix", 0o644, dest.to_vec()));
    }
    // The records are rendered after `--dest-prefix`: they start from the prefix the packed
    // files hold.
    let records = relocate::script::records(&plan.relocation);
    plan.entries
        .push(file(b".gopack/records.sh", 0o644, records));
    // The manifest lists the entries in archive order.
    plan.entries
        .sort_by(|a, b| archive_order(&a.entry.path, &b.entry.path));
    let manifest = Manifest::from_plan(plan).to_json();
    plan.entries
        .push(file(MANIFEST_PATH.as_bytes(), 0o644, manifest));
    plan.entries
        .sort_by(|a, b| archive_order(&a.entry.path, &b.entry.path));
    Ok(())
}

/// Applies every relocation record for `dest` while packing, with the engine the target uses:
/// disk files are streamed through it when the bundle is written (their digest is taken by
/// streaming them once now), gopack's own small files are rewritten in memory. Every binary
/// slot is checked first.
fn apply_dest_prefix(plan: &mut Plan, dest: &[u8]) -> Result<()> {
    use std::collections::HashMap;
    let from = plan.relocation.source_prefix.0.clone();
    relocate::apply::check_target(dest)?;
    plan.relocation.check_fits(dest)?;
    let mut slots: HashMap<Vec<u8>, Vec<crate::relocate::Patch>> = HashMap::new();
    for record in &plan.relocation.binary {
        slots.insert(record.path.0.clone(), record.patches(dest)?);
    }
    let texts: HashMap<Vec<u8>, TextRecord> = plan
        .relocation
        .text
        .iter()
        .map(|record| (record.path.0.clone(), record.clone()))
        .collect();
    let prefix = plan.prefix.clone();
    for planned in &mut plan.entries {
        let text = texts.get(&planned.entry.path);
        let patches = slots.remove(&planned.entry.path);
        if text.is_none() && patches.is_none() {
            continue;
        }
        let in_memory = |bytes: &[u8]| match text {
            Some(record) => {
                let mut out = Vec::with_capacity(bytes.len());
                let mut rewriter = record.rewriter(&from, dest);
                rewriter.feed(bytes, &mut out);
                rewriter.finish(&mut out);
                out
            }
            None => bytes.to_vec(),
        };
        let (kind, edit) = match &planned.body {
            Body::Generated(bytes) => {
                planned.body = Body::Generated(in_memory(bytes));
                continue;
            }
            Body::Disk { kind, edit, .. } => {
                let edit = match (edit, text, patches) {
                    (Edit::Replace(bytes), _, _) => Edit::Replace(in_memory(bytes)),
                    (_, Some(record), _) => Edit::Relocate {
                        record: record.clone(),
                        from: from.clone(),
                        to: dest.to_vec(),
                    },
                    (Edit::Patch(existing), None, Some(new)) => {
                        Edit::Patch(existing.iter().cloned().chain(new).collect())
                    }
                    (_, None, Some(new)) => Edit::Patch(new),
                    (edit, None, None) => edit.clone(),
                };
                (*kind, edit)
            }
            _ => continue,
        };
        let source = planned.entry.absolute(&prefix);
        let unreadable = |err| crate::Error::Unreadable {
            path: source.clone(),
            source: err,
        };
        let file = std::fs::File::open(&source).map_err(unreadable)?;
        let (sha256, size) = relocate::apply::digest(relocate::apply::edited_reader(
            &file,
            planned.entry.size,
            &edit,
        ))
        .map_err(unreadable)?;
        planned.body = Body::Disk {
            edit,
            sha256,
            size,
            kind,
        };
    }
    for binary in &mut plan.go_binaries {
        if let Some(planned) = plan.entries.iter().find(|p| p.entry.path == binary.path.0)
            && let Body::Disk { sha256, .. } = &planned.body
        {
            binary.sha256 = hex::encode(sha256);
        }
    }
    drop_stale_bytecode(plan, texts.keys());
    plan.relocation.source_prefix = ByteString(dest.to_vec());
    Ok(())
}

/// Leaves out the `__pycache__` bytecode of Python sources rewritten at pack time: compiled from
/// the old text, it would be loaded whenever the new source has the old one's size.
fn drop_stale_bytecode<'a>(plan: &mut Plan, rewritten: impl Iterator<Item = &'a Vec<u8>>) {
    let mut stale: Vec<Vec<u8>> = Vec::new();
    for source in rewritten {
        let Some(stem) = source.strip_suffix(b".py") else {
            continue;
        };
        let (dir, name) = match stem.iter().rposition(|&c| c == b'/') {
            Some(slash) => (&stem[..=slash], &stem[slash + 1..]),
            None => (&b""[..], stem),
        };
        let mut cache = dir.to_vec();
        cache.extend_from_slice(b"__pycache__/");
        cache.extend_from_slice(name);
        cache.push(b'.');
        stale.push(cache);
    }
    if stale.is_empty() {
        return;
    }
    let doomed: Vec<Vec<u8>> = plan
        .entries
        .iter()
        .map(|p| &p.entry.path)
        .filter(|path| path.ends_with(b".pyc") && stale.iter().any(|s| path.starts_with(s)))
        .cloned()
        .collect();
    for path in doomed {
        remove_entry(plan, &path);
    }
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
