//! `gopack create`: [`create`] runs the whole pipeline — open the environment, scan it, plan
//! every file, add gopack's metadata and scripts, write the bundle — from checked
//! [`CreateOptions`].

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use crate::archive::{self, WriteOptions, Written};
use crate::conda::CondaEnv;
use crate::error::Result;
use crate::go::build::GoBuildOptions;
use crate::plan::{self, Plan, PlanOptions};
use crate::progress::Reporter;
use crate::scan::{self, ScanOptions};

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
    /// For a container image: its tag and digests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<crate::oci::ImageRef>,
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
    /// How the native relocator the bundle carries is linked, if it carries one.
    pub relocator: Option<crate::relocate::carry::Linkage>,
}

/// Plans the bundle for `prefix` without writing anything (used by `create` and by tests).
///
/// # Errors
/// Everything [`CondaEnv::open`], [`scan::scan`] and [`plan::plan`] report.
/// Go binaries and the manifest are written into `scratch`, which must outlive the plan's use.
pub fn plan_bundle(
    prefix: &std::path::Path,
    scan_options: &ScanOptions,
    plan_options: &PlanOptions,
    go_options: &GoBuildOptions,
    scratch: &std::path::Path,
    cancel: &AtomicBool,
    reporter: &dyn Reporter,
) -> Result<Plan> {
    reporter.stage("scanning");
    // The environment's own path is the prefix the target relocates from.
    crate::relocate::apply::check_target(prefix.as_os_str().as_encoded_bytes())?;
    let env = CondaEnv::open(prefix)?;
    let inventory = scan::scan(&env, scan_options, reporter)?;
    let mut plan = plan::plan(&env, inventory, plan_options, cancel, reporter)?;
    // The records' per-path data is not needed past planning; a large environment's is large.
    drop(env);
    if go_options.any() {
        crate::go::bundle::add_built_binaries(&mut plan, go_options, scratch, cancel, reporter)?;
    }
    crate::scripts::generate::add_generated(
        &mut plan,
        plan_options.dest_prefix.as_deref(),
        plan_options.relocator.as_ref(),
        scratch,
        reporter,
    )?;
    Ok(plan)
}

/// Gives the memory planning freed (conda records, the analysis of every file) back to the
/// system before the archive's compression buffers are allocated: glibc keeps it otherwise, and
/// peak memory would grow with the environment's file count far more than the plan needs.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the system; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
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
    // Go builds and the plan's large generated contents go here, removed at the end.
    let scratch = tempfile::Builder::new()
        .prefix("gopack-")
        .tempdir()
        .map_err(|source| crate::Error::io("cannot create a scratch directory", source))?;
    let mut plan = plan_bundle(
        &options.prefix,
        &options.scan,
        &options.plan,
        &options.go,
        scratch.path(),
        cancel,
        reporter,
    )?;
    plan.spill_large_bodies(scratch.path())?;
    release_freed_memory();
    let (bundle, image) = match &options.image {
        Some(image) => {
            let (written, image) = crate::oci::write_image(
                &plan,
                &options.output,
                &options.write,
                image,
                cancel,
                reporter,
            )?;
            (written, Some(image))
        }
        None if options.write.format.is_installer() => (
            crate::installer::write_installer(
                &plan,
                &options.output,
                &options.write,
                cancel,
                reporter,
            )?,
            None,
        ),
        None => (
            archive::write_bundle(&plan, &options.output, &options.write, cancel, reporter)?,
            None,
        ),
    };
    crate::provenance::finish_bundle(&bundle.path, &options.provenance, reporter)?;
    Ok(Summary {
        bundle,
        image,
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
        relocator: plan.relocator,
    })
}
