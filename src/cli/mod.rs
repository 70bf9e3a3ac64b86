//! The command-line front end: parse (clap), resolve into the library's checked options, run,
//! and map the result to an exit code in one place — 0 ok, 1 user/environment error, 2 usage or
//! internal error; a closed stdout is not an error.

mod args;
mod progress;
mod provenance;

use gopack::archive::Error as ArchiveError;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{CommandFactory, FromArgMatches};

use args::{Cli, Command, CreateArgs, InspectArgs, UnpackArgs};
use gopack::archive::{Format, WriteOptions};
use gopack::conda::locate::{self, LookupContext};
use gopack::create::CreateOptions;
use gopack::error::{Error, escape_bytes, escape_str};
use gopack::go::build::GoBuildOptions;
use gopack::plan::PlanOptions;
use gopack::scan::ScanOptions;
use gopack::scan::filter::{Filter, RuleKind};
use progress::TerminalReporter;
use std::path::PathBuf;

/// Runs gopack and returns its exit code.
pub fn main() -> ExitCode {
    tune_allocator();
    let matches = match Cli::command().try_get_matches() {
        Ok(matches) => matches,
        Err(err) => {
            let _ = err.print();
            return if err.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        // The order of --include and --exclude is only in clap's matches, which parsing `create`
        // always gives; packing without them would drop the user's rules.
        Command::Create(args) => match matches.subcommand_matches("create") {
            Some(sub) => run_create(*args, filter_order(sub)),
            None => Err(Error::Usage(
                "internal error: the options of `create` were lost while parsing".into(),
            )),
        },
        Command::Inspect(args) => run_inspect(args),
        Command::Unpack(args) => run_unpack(args),
        Command::Sbom(args) => provenance::run_sbom(args),
        Command::Verify(args) => provenance::run_verify(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => report(&err),
    }
}

/// The order in which `--exclude` and `--include` were given.
fn filter_order(matches: &clap::ArgMatches) -> Vec<(usize, RuleKind, String)> {
    let mut rules = Vec::new();
    for (id, kind) in [
        ("exclude", RuleKind::Exclude),
        ("include", RuleKind::Include),
    ] {
        if let (Some(indices), Some(values)) =
            (matches.indices_of(id), matches.get_many::<String>(id))
        {
            for (index, value) in indices.zip(values) {
                rules.push((index, kind, value.clone()));
            }
        }
    }
    rules.sort_by_key(|(index, _, _)| *index);
    rules
}

/// glibc's defaults cost a large environment tens of megabytes it never uses again: an arena
/// per thread, each holding what its thread freed, and a threshold for `mmap` that rises with
/// every large block freed, after which large buffers (a conda-meta record read whole, a
/// decompressed manifest) stay in the heap. One arena and a fixed threshold: `gopack create` of
/// 245,000 files peaks at 143 MiB instead of 185 MiB, for 2% (27,600 files) to 7% (245,000)
/// more time on 2 cores (`farm-bench`, medians; README, Performance).
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets malloc's tunables; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}

fn report(err: &Error) -> ExitCode {
    let _ = std::io::stderr()
        .lock()
        .write_all(err.report("").as_bytes());
    ExitCode::from(err.kind().exit_code())
}

fn resolve_create(
    args: CreateArgs,
    rules: Vec<(usize, RuleKind, String)>,
) -> Result<(CreateOptions, bool, bool), Error> {
    let CreateArgs {
        name,
        prefix,
        output,
        format,
        payload,
        compress_level,
        threads,
        arcroot,
        exclude: _,
        include: _,
        ignore_missing_files,
        ignore_editable_packages,
        copy_outside_links,
        allow_foreign_go,
        go,
        go_workspace,
        go_toolchain,
        go_ldflags,
        go_tags,
        cgo,
        offline,
        dest_prefix,
        relocator,
        no_relocator,
        force,
        quiet,
        json,
        sbom,
        no_checksum,
        base,
        tag,
        entrypoint,
        cmd,
        image_env,
        label,
        workdir,
        layer_compression,
    } = args;
    let image_args = gopack::oci::ImageArgs {
        base,
        tag,
        entrypoint,
        cmd,
        env: image_env,
        labels: label,
        workdir,
        compression: layer_compression,
        level: compress_level,
        source_date_epoch: std::env::var("SOURCE_DATE_EPOCH").ok(),
    };
    let provenance = provenance::create_options(sbom, no_checksum)?;
    let dest_prefix = match dest_prefix {
        Some(path) if !path.is_absolute() => {
            return Err(Error::Usage(format!(
                "--dest-prefix `{}` must be an absolute path",
                path.display()
            )));
        }
        Some(path) => {
            let bytes = path.as_os_str().as_encoded_bytes().to_vec();
            let trimmed = if bytes.len() > 1 {
                bytes.strip_suffix(b"/").unwrap_or(&bytes).to_vec()
            } else {
                bytes
            };
            Some(trimmed)
        }
        None => None,
    };
    let go_packages = go
        .iter()
        .map(|spec| match spec.split_once('=') {
            Some((name, dir)) if !name.is_empty() && !name.contains('/') => {
                (Some(name.to_string()), PathBuf::from(dir))
            }
            _ => (None, PathBuf::from(spec)),
        })
        .collect();
    let context = LookupContext::from_process();
    let prefix = match (name, prefix) {
        (_, Some(prefix)) => prefix,
        (Some(name), None) => locate::find_by_name(&name, &context)?,
        (None, None) => locate::current(&context)?,
    };
    let format = match format {
        Some(name) => {
            Format::from_name(&name).ok_or_else(|| {
                Error::Usage(format!(
                    "unknown format `{name}`: --format takes tar.zst (or tzst), tar.gz (or tgz), tar, sh, oci or oci-dir"
                ))
            })?
        }
        None => Format::from_path(&output).ok_or_else(|| ArchiveError::UnknownFormat {
            path: output.clone(),
        })?,
    };
    let format = match (format, payload.as_deref()) {
        (Format::Sh, None | Some("gzip")) => Format::Sh,
        (Format::Sh, Some("zstd")) => Format::ShZstd,
        (Format::Sh, Some(other)) => {
            return Err(Error::Usage(format!(
                "--payload {other}: the installer's payload is gzip or zstd"
            )));
        }
        (_, Some(_)) => {
            return Err(Error::Usage(
                "--payload applies to --format sh (self-extracting installers) only".into(),
            ));
        }
        (format, None) => format,
    };
    let level = match (format, compress_level) {
        (Format::TarZst | Format::ShZstd, Some(level)) if !(1..=22).contains(&level) => {
            return Err(Error::Usage(format!(
                "--compress-level {level}: zstd levels are 1 to 22"
            )));
        }
        (Format::TarGz | Format::Sh, Some(level)) if !(1..=9).contains(&level) => {
            return Err(Error::Usage(format!(
                "--compress-level {level}: gzip levels are 1 to 9"
            )));
        }
        (_, Some(level)) => level,
        (Format::TarGz | Format::Sh, None) => 6,
        (_, None) => 3,
    };
    let image = if format.is_image() {
        if arcroot.is_some() {
            return Err(Error::Usage(
                "--arcroot does not apply to images: the environment goes to --dest-prefix".into(),
            ));
        }
        Some(image_args.resolve(&prefix)?)
    } else if image_args.any() {
        return Err(Error::Usage(
            "--base, --tag, --entrypoint, --cmd, --env, --label, --workdir and --layer-compression apply to --format oci and oci-dir only".into(),
        ));
    } else {
        None
    };
    let mut provenance = provenance;
    if image.is_some() && provenance.sbom.is_some() {
        return Err(Error::Usage(
            "--sbom applies to bundles; describe an image's environment with `gopack inspect --json IMAGE`".into(),
        ));
    }
    if format == Format::OciDir {
        // A directory has no single sha256 to record.
        provenance.checksum = false;
    }
    // An image needs no unpack step: its environment is relocated while packing.
    let dest_prefix = match (&image, dest_prefix) {
        (Some(_), None) => Some(gopack::oci::default_dest_prefix(&prefix)),
        (_, dest_prefix) => dest_prefix,
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let threads = match threads {
        Some(0) => return Err(Error::Usage("-j/--threads must be at least 1".into())),
        Some(n) => n,
        None => cores,
    };
    let mut filter = Filter::default();
    for (_, kind, pattern) in rules {
        filter.push(kind, &pattern)?;
    }
    let arcroot = arcroot
        .map(|root| root.trim_matches('/').as_bytes().to_vec())
        .filter(|root| !root.is_empty());
    Ok((
        CreateOptions {
            prefix,
            output,
            scan: ScanOptions {
                filter,
                ignore_missing_files,
                ignore_editable_packages,
                copy_outside_links,
            },
            plan: PlanOptions {
                allow_foreign_go,
                dest_prefix,
                relocator: relocator_choice(relocator, no_relocator),
            },
            write: WriteOptions {
                format,
                level,
                threads,
                arcroot,
                force,
            },
            go: GoBuildOptions {
                packages: go_packages,
                workspace: go_workspace,
                toolchain: go_toolchain,
                ldflags: go_ldflags,
                tags: go_tags,
                cgo,
                offline,
            },
            provenance,
            image,
        },
        quiet,
        json,
    ))
}

/// The relocator to carry: the one named, else `gopack-relocate` beside this executable (where
/// `cargo install` puts both), else none.
fn relocator_choice(
    named: Option<PathBuf>,
    none: bool,
) -> Option<gopack::relocate::carry::RelocatorChoice> {
    use gopack::relocate::carry::RelocatorChoice;
    if none {
        return None;
    }
    if let Some(path) = named {
        return Some(RelocatorChoice {
            path,
            explicit: true,
        });
    }
    let beside = std::env::current_exe()
        .ok()?
        .with_file_name("gopack-relocate");
    beside.is_file().then_some(RelocatorChoice {
        path: beside,
        explicit: false,
    })
}

fn run_create(args: CreateArgs, rules: Vec<(usize, RuleKind, String)>) -> Result<(), Error> {
    let (options, quiet, json) = resolve_create(args, rules)?;
    let cancel = Arc::new(AtomicBool::new(false));
    {
        let cancel = Arc::clone(&cancel);
        // A second Ctrl-C while cleaning up is ignored; the temp file is removed on unwind.
        let _ = ctrlc::set_handler(move || cancel.store(true, Ordering::SeqCst));
    }
    let reporter = TerminalReporter::new(quiet);
    let started = std::time::Instant::now();
    let result = gopack::create::create(&options, &cancel, &reporter);
    reporter.finish();
    let summary = result?;
    if json {
        print_json(&summary)?;
    } else if !quiet {
        eprintln!(
            "packed {} ({} conda, {} pip packages; {} Go binaries; {} files to relocate; {} bytecode files keep the old path for tracebacks) into {} ({}) in {:.1}s",
            summary.prefix.display(),
            summary.conda_packages,
            summary.pip_packages,
            summary.go_binaries,
            summary.text_records + summary.binary_records,
            summary.bytecode_left_alone,
            summary.bundle.path.display(),
            human_bytes(summary.bundle.size),
            started.elapsed().as_secs_f64()
        );
        if let Some(image) = &summary.image {
            eprintln!("image {} {}", image.tag, image.digest);
        }
        if summary.relocator == Some(gopack::relocate::carry::Linkage::Dynamic) {
            eprintln!(
                "note: the native relocator it carries is dynamically linked; hosts with an older C library relocate with POSIX sh instead (slower). A static gopack-relocate runs on any Linux host of its architecture (see README)."
            );
        }
    }
    Ok(())
}

fn run_unpack(args: UnpackArgs) -> Result<(), Error> {
    let UnpackArgs {
        bundle,
        dest,
        force,
        quiet,
    } = args;
    let options = gopack::unpack::UnpackOptions {
        bundle,
        dest,
        force,
    };
    let cancel = Arc::new(AtomicBool::new(false));
    {
        let cancel = Arc::clone(&cancel);
        let _ = ctrlc::set_handler(move || cancel.store(true, Ordering::SeqCst));
    }
    let reporter = TerminalReporter::new(quiet);
    let result = gopack::unpack::unpack(&options, &cancel, &reporter);
    reporter.finish();
    let summary = result?;
    if !quiet {
        eprintln!(
            "unpacked {} entries into {} ({} files verified, {} relocated)",
            summary.entries,
            summary.dest.display(),
            summary.verified,
            summary.relocated
        );
    }
    Ok(())
}

fn run_inspect(args: InspectArgs) -> Result<(), Error> {
    // An image (`create --format oci`) carries the manifest in its metadata layer.
    let image = gopack::oci::inspect::read_image(&args.bundle)?;
    let manifest = match image.as_ref().and_then(|image| image.manifest.clone()) {
        Some(manifest) => manifest,
        None => gopack::archive::read::read_manifest(&args.bundle)?,
    };
    if args.json {
        let mut value = serde_json::to_value(&manifest).map_err(json_error)?;
        if let (Some(image), Some(object)) = (&image, value.as_object_mut()) {
            object.insert(
                "image".into(),
                serde_json::to_value(image).map_err(json_error)?,
            );
        }
        print_json(&value)?;
        return Ok(());
    }
    // Every string below comes from the bundle: escaped, it cannot drive the terminal.
    let e = |text: &str| escape_str(text);
    let opt = |text: &Option<String>| text.as_deref().map_or_else(|| "?".to_string(), e);
    let mut out = String::new();
    let m = &manifest;
    if let Some(image) = &image {
        out.push_str(&image.describe(&args.bundle));
    }
    out.push_str(&format!(
        "bundle:         {}\n",
        escape_bytes(args.bundle.as_os_str().as_encoded_bytes())
    ));
    out.push_str(&format!("platform:       {}\n", e(&m.platform)));
    out.push_str(&format!(
        "source prefix:  {}\n",
        escape_bytes(&m.source_prefix.0)
    ));
    out.push_str(&format!(
        "written by:     gopack {} (manifest format {})\n",
        e(&m.gopack_version),
        m.format_version
    ));
    let count = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    out.push_str(&format!(
        "contents:       {}, {}, {}, {}, {}\n",
        count(m.totals.files, "file", "files"),
        count(m.totals.symlinks, "symlink", "symlinks"),
        count(m.totals.hardlinks, "hard link", "hard links"),
        count(m.totals.dirs, "dir", "dirs"),
        human_bytes(m.totals.bytes)
    ));
    out.push_str(&format!("conda packages: {}\n", m.packages.len()));
    for package in &m.packages {
        out.push_str(&format!(
            "  {} {} {} ({})\n",
            e(&package.name),
            e(&package.version),
            e(&package.build),
            opt(&package.channel)
        ));
    }
    out.push_str(&format!("pip packages:   {}\n", m.pip_packages.len()));
    for package in &m.pip_packages {
        out.push_str(&format!(
            "  {} {} (installed by {})\n",
            e(&package.name),
            e(&package.version),
            opt(&package.installer)
        ));
    }
    out.push_str(&format!("Go binaries:    {}\n", m.go_binaries.len()));
    for binary in &m.go_binaries {
        let info = &binary.build_info;
        let module = info
            .main_module
            .as_ref()
            .map(|m| format!("{} {}", e(&m.path), e(&m.version)))
            .or_else(|| info.main_package.as_deref().map(e))
            .unwrap_or_else(|| "?".into());
        let setting = |key: &str| info.setting(key).map_or_else(|| "?".to_string(), e);
        out.push_str(&format!(
            "  {}: {} {} {}/{} trimpath={} cgo={} deps={}\n",
            escape_bytes(&binary.path.0),
            module,
            e(&info.go_version),
            setting("GOOS"),
            setting("GOARCH"),
            info.trimpath(),
            setting("CGO_ENABLED"),
            info.dependencies.len()
        ));
    }
    let relocation = &m.relocation;
    out.push_str("relocation:\n");
    out.push_str(&format!("  text files:     {}\n", relocation.text.len()));
    out.push_str(&format!(
        "  binary files:   {} ({} strings)\n",
        relocation.binary.len(),
        relocation
            .binary
            .iter()
            .map(|b| b.slots.len())
            .sum::<usize>()
    ));
    let mut fixed = std::collections::BTreeMap::<&str, usize>::new();
    for fix in &relocation.fixed {
        *fixed.entry(fix.kind()).or_default() += 1;
    }
    for (kind, count) in fixed {
        out.push_str(&format!("  fixed at pack:  {count} {kind}\n"));
    }
    let mut left = std::collections::BTreeMap::<&str, usize>::new();
    for item in &relocation.left_alone {
        *left.entry(item.reason.as_str()).or_default() += 1;
    }
    for (reason, count) in left {
        out.push_str(&format!("  left alone:     {count} {reason}\n"));
    }
    if args.sbom {
        out.push_str(&provenance::sbom_summary(&manifest));
    }
    print_stdout(&out);
    Ok(())
}

/// A message with every control character but its line breaks escaped: names from bundles
/// and paths from the command line are escaped where they are put into messages, and this is
/// the last line of defence before the terminal.
/// Prints `value` as pretty JSON to stdout.
pub(crate) fn print_json(value: &impl serde::Serialize) -> Result<(), Error> {
    print_stdout(&serde_json::to_string_pretty(value).map_err(json_error)?);
    Ok(())
}

/// Serialising gopack's own values cannot fail; were it to, the command fails rather than
/// printing half a document.
fn json_error(err: serde_json::Error) -> Error {
    Error::io("cannot serialise the JSON output", err.into())
}

/// Prints to stdout; a closed pipe (`gopack inspect | head`) is not an error.
fn print_stdout(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    if !text.ends_with('\n') {
        let _ = stdout.write_all(b"\n");
    }
    let _ = stdout.flush();
}

fn human_bytes(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < units.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}
