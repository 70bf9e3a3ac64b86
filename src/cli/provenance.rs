//! `gopack sbom`, `gopack verify`, and the provenance options of `create` and `inspect`:
//! resolved into [`gopack::provenance`]'s options, run, printed.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::args::{SbomArgs, VerifyArgs};
use super::{human_bytes, print_stdout};
use gopack::error::{Error, escape_bytes};
use gopack::manifest::Manifest;
use gopack::provenance::sbom::Sbom;
use gopack::provenance::verify::{Report, VerifyOptions};
use gopack::provenance::{ProvenanceOptions, SbomFormat, SbomOptions, SbomOutput};

/// `SOURCE_DATE_EPOCH`, the reproducible-builds convention for "the time of this build".
///
/// # Errors
/// [`Error::Usage`] when it is set but not a number of seconds.
fn sbom_options() -> Result<SbomOptions, Error> {
    let source_date_epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Err(_) => None,
        Ok(text) if text.trim().is_empty() => None,
        Ok(text) => Some(text.trim().parse::<u64>().map_err(|_| {
            Error::Usage(format!(
                "SOURCE_DATE_EPOCH `{}` is not a number of seconds since 1970",
                gopack::error::escape_str(&text)
            ))
        })?),
    };
    Ok(SbomOptions { source_date_epoch })
}

/// The provenance options of `gopack create` (`--sbom FILE`, `--no-checksum`).
///
/// # Errors
/// A malformed `SOURCE_DATE_EPOCH` when an SBOM is asked for.
pub(super) fn create_options(
    sbom: Option<PathBuf>,
    no_checksum: bool,
) -> Result<ProvenanceOptions, Error> {
    let sbom = match sbom {
        Some(path) => Some(SbomOutput {
            format: SbomFormat::from_path(&path),
            path,
            options: sbom_options()?,
        }),
        None => None,
    };
    Ok(ProvenanceOptions {
        checksum: !no_checksum,
        sbom,
    })
}

/// `gopack sbom`.
pub(super) fn run_sbom(args: SbomArgs) -> Result<(), Error> {
    let SbomArgs {
        source,
        output,
        format,
    } = args;
    let format = match (format, &output) {
        (Some(name), _) => SbomFormat::from_name(&name).ok_or_else(|| {
            Error::Usage(format!(
                "--format `{}`: use cyclonedx-json or spdx-json",
                gopack::error::escape_str(&name)
            ))
        })?,
        (None, Some(path)) => SbomFormat::from_path(path),
        (None, None) => SbomFormat::CycloneDxJson,
    };
    let document = Sbom::read(&source, &sbom_options()?)?.render(format);
    match output {
        Some(path) => gopack::provenance::write_atomic(&path, &document),
        None => {
            print_stdout(&String::from_utf8_lossy(&document));
            Ok(())
        }
    }
}

/// The `inspect --sbom` lines: components by type and dependency edges.
pub(super) fn sbom_summary(manifest: &Manifest) -> String {
    let sbom = Sbom::from_manifest(
        manifest,
        [0; 32],
        0,
        &BTreeMap::new(),
        &SbomOptions::default(),
    );
    let counts = sbom.counts();
    let total: usize = counts.iter().map(|(_, count)| count).sum();
    let kinds: Vec<String> = counts
        .iter()
        .map(|(kind, count)| format!("{count} {}", kind.label()))
        .collect();
    let mut out = format!("sbom:           {total} components");
    if !kinds.is_empty() {
        out.push_str(&format!(" ({})", kinds.join(", ")));
    }
    out.push_str(&format!(
        "\n                {} dependency edges\n",
        sbom.edges()
    ));
    out
}

/// `gopack verify`.
pub(super) fn run_verify(args: VerifyArgs) -> Result<(), Error> {
    let VerifyArgs { dir, bundle, json } = args;
    let cancel = Arc::new(AtomicBool::new(false));
    {
        let cancel = Arc::clone(&cancel);
        let _ = ctrlc::set_handler(move || cancel.store(true, Ordering::SeqCst));
    }
    let started = std::time::Instant::now();
    let report = gopack::provenance::verify::verify(&VerifyOptions { dir, bundle }, &cancel)?;
    let seconds = started.elapsed().as_secs_f64();
    if json {
        super::print_json(&report)?;
    } else {
        let listing = listing(&report);
        if !listing.is_empty() {
            print_stdout(&listing);
        }
    }
    let verdict = if report.clean {
        "clean".to_string()
    } else {
        format!("{} problem(s)", report.problems())
    };
    eprintln!(
        "verified {} entries of {} ({} hashed in {:.2}s, {}/s): {verdict}",
        report.checked.entries,
        escape_bytes(&report.root.0),
        human_bytes(report.checked.bytes),
        seconds,
        human_bytes((report.checked.bytes as f64 / seconds.max(1e-6)) as u64),
    );
    if report.clean {
        Ok(())
    } else {
        Err(gopack::provenance::Error::Drift {
            path: PathBuf::from(std::ffi::OsStr::from_bytes(&report.root.0)),
            problems: report.problems(),
        }
        .into())
    }
}

/// One line per difference: `KIND  PATH[: detail]`, paths escaped.
fn listing(report: &Report) -> String {
    let mut out = String::new();
    for path in &report.missing {
        out.push_str(&format!("missing      {}\n", escape_bytes(&path.0)));
    }
    for item in &report.modified {
        out.push_str(&format!(
            "modified     {}: {}\n",
            escape_bytes(&item.path.0),
            item.what
        ));
    }
    for path in &report.extra {
        out.push_str(&format!("extra        {}\n", escape_bytes(&path.0)));
    }
    for change in &report.permissions {
        out.push_str(&format!(
            "permissions  {}: {}, expected {}\n",
            escape_bytes(&change.path.0),
            change.actual,
            change.expected
        ));
    }
    for problem in &report.location {
        out.push_str(&format!("location     {problem}\n"));
    }
    out
}
