//! The command line as plain data (clap derive); doc comments are the help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Pack a conda environment and the Go services beside it into one relocatable,
/// offline-installable bundle.
#[derive(Debug, Parser)]
#[command(name = "gopack", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Pack an environment into a bundle (.tar.zst by default).
    Create(Box<CreateArgs>),
    /// Show what a bundle holds, without extracting it.
    Inspect(InspectArgs),
    /// Extract a bundle, verify every file and relocate it, natively (the bundle's own
    /// bin/gopack-unpack does the same with only a POSIX shell).
    Unpack(UnpackArgs),
    /// Write a software bill of materials (CycloneDX 1.5 or SPDX 2.3 JSON) of a bundle or of
    /// an environment unpacked from one.
    Sbom(SbomArgs),
    /// Check an unpacked environment against its manifest: every file's content (after taking
    /// relocation back), modes, links, and nothing extra. Exit code 1 when anything differs.
    Verify(VerifyArgs),
}

/// `gopack sbom`.
#[derive(Debug, Args)]
pub struct SbomArgs {
    /// A bundle, or a directory an environment was unpacked into.
    pub source: PathBuf,
    /// Write the document here (atomically) instead of to stdout.
    #[arg(short = 'o', long = "output")]
    pub output: Option<PathBuf>,
    /// cyclonedx-json (default; spdx-json when -o ends in .spdx.json) or spdx-json.
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
}

/// `gopack verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The directory an environment was unpacked into.
    pub dir: PathBuf,
    /// Compare with this bundle's manifest (checked against BUNDLE.sha256 when present)
    /// instead of the copy the environment carries.
    #[arg(long, value_name = "BUNDLE")]
    pub bundle: Option<PathBuf>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `gopack unpack`.
#[derive(Debug, Args)]
pub struct UnpackArgs {
    /// The bundle.
    pub bundle: PathBuf,
    /// Where the environment goes (created; it must not exist or be empty unless -f).
    #[arg(short = 'd', long = "dest")]
    pub dest: PathBuf,
    /// Replace a non-empty destination.
    #[arg(short = 'f', long)]
    pub force: bool,
    /// No progress bar or summary.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// `gopack create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The environment's name (found without conda: condarc envs_dirs, ~/.conda/environments.txt,
    /// the usual install roots, pixi's .pixi/envs).
    #[arg(short = 'n', long = "name", conflicts_with = "prefix")]
    pub name: Option<String>,
    /// The environment's path. Without -n or -p, $CONDA_PREFIX.
    #[arg(short = 'p', long = "prefix")]
    pub prefix: Option<PathBuf>,
    /// The bundle to write; its extension chooses the format unless --format is given.
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
    /// Format: tar.zst (default), tar.gz (tgz), tar, sh (a self-extracting installer: `sh app.sh
    /// -d DEST`), oci (one tar that is an OCI layout and a docker archive) or oci-dir (an OCI
    /// layout directory). Spark/YARN `--archives` take .tar.gz/.tgz/.tar/.zip, not .tar.zst
    /// (copied, never unpacked).
    #[arg(long)]
    pub format: Option<String>,
    /// Installer (--format sh): payload compression, gzip (default; every host has gzip) or
    /// zstd (smaller and faster; the host needs zstd).
    #[arg(long = "payload", value_name = "gzip|zstd")]
    pub payload: Option<String>,
    /// Compression level (zstd 1-22, default 3; gzip 1-9, default 6).
    #[arg(long = "compress-level")]
    pub compress_level: Option<i32>,
    /// Compression threads (default: all cores).
    #[arg(short = 'j', long = "threads")]
    pub threads: Option<u32>,
    /// Put the environment under this directory inside the archive.
    #[arg(long)]
    pub arcroot: Option<String>,
    /// Leave out paths matching GLOB (relative to the prefix; `**` crosses directories).
    /// Rules apply in order with --include; the last match wins.
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Put back paths matching GLOB that an earlier --exclude left out.
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,
    /// Drop conda-managed files that are missing, with a warning, instead of failing.
    #[arg(long)]
    pub ignore_missing_files: bool,
    /// Pack editable Python installs as they are, with a warning, instead of failing.
    #[arg(long)]
    pub ignore_editable_packages: bool,
    /// Pack the file a symlink leading out of the environment resolves to, in place of the
    /// link, instead of failing (a link to a directory or to nothing stays an error).
    #[arg(long)]
    pub copy_outside_links: bool,
    /// Warn instead of failing when a Go binary is built for another platform.
    #[arg(long)]
    pub allow_foreign_go: bool,
    /// Build the Go main package in DIR into the bundle's bin/ (repeatable; NAME=DIR names
    /// the binary).
    #[arg(long = "go", value_name = "[NAME=]DIR")]
    pub go: Vec<String>,
    /// Build every main package of the environment's Go workspace (go.work in the prefix or
    /// src/, $GOWORK from its activation, or src/*/go.mod).
    #[arg(long)]
    pub go_workspace: bool,
    /// The `go` to build with (default: the environment's own, then `go` on PATH).
    #[arg(long, value_name = "PATH")]
    pub go_toolchain: Option<PathBuf>,
    /// Extra -ldflags for Go builds.
    #[arg(long, value_name = "FLAGS", allow_hyphen_values = true)]
    pub go_ldflags: Option<String>,
    /// Build tags for Go builds (comma-separated).
    #[arg(long, value_name = "TAGS")]
    pub go_tags: Option<String>,
    /// Build Go with cgo (CGO_ENABLED=1) and a relocatable $ORIGIN/../lib rpath.
    #[arg(long)]
    pub cgo: bool,
    /// Never download Go modules (GOPROXY=off); use vendor/ directories or the module cache.
    #[arg(long)]
    pub offline: bool,
    /// Relocate everything at pack time for this absolute target path; the bundle then needs
    /// no unpack step there (gopack-unpack still relocates it if it is put elsewhere).
    #[arg(short = 'd', long, value_name = "PATH")]
    pub dest_prefix: Option<PathBuf>,
    /// Carry this native relocator as .gopack/relocate (default: the gopack-relocate installed
    /// beside gopack, when it is built for the environment's platform). bin/gopack-unpack runs
    /// it when the host can, and relocates with POSIX sh when it cannot.
    #[arg(long, value_name = "PATH", conflicts_with = "no_relocator")]
    pub relocator: Option<PathBuf>,
    /// Carry no native relocator: bin/gopack-unpack relocates with POSIX sh only.
    #[arg(long)]
    pub no_relocator: bool,
    /// Image (--format oci, oci-dir): the base image, as skopeo names it:
    /// oci-archive:PATH[:TAG], oci:DIR[:TAG] or docker-archive:PATH[:NAME:TAG|@INDEX].
    /// Without it, the image holds only the environment.
    #[arg(long, value_name = "IMAGE", help_heading = "Container images")]
    pub base: Option<String>,
    /// Image name and tag (default: <env name>:latest).
    #[arg(long, value_name = "NAME[:TAG]", help_heading = "Container images")]
    pub tag: Option<String>,
    /// Image entrypoint: a JSON array (["python", "-m", "app"]) or words separated by spaces;
    /// replaces the base's entrypoint and command.
    #[arg(
        long,
        value_name = "CMD",
        allow_hyphen_values = true,
        help_heading = "Container images"
    )]
    pub entrypoint: Option<String>,
    /// Image command: a JSON array or words separated by spaces.
    #[arg(
        long,
        value_name = "CMD",
        allow_hyphen_values = true,
        help_heading = "Container images"
    )]
    pub cmd: Option<String>,
    /// Set an environment variable in the image (repeatable).
    #[arg(long = "env", value_name = "K=V", help_heading = "Container images")]
    pub image_env: Vec<String>,
    /// Add a label to the image (repeatable).
    #[arg(long = "label", value_name = "K=V", help_heading = "Container images")]
    pub label: Vec<String>,
    /// The image's working directory.
    #[arg(long, value_name = "DIR", help_heading = "Container images")]
    pub workdir: Option<String>,
    /// How image layers are compressed: gzip (default), zstd or none.
    #[arg(long, value_name = "KIND", help_heading = "Container images")]
    pub layer_compression: Option<String>,
    /// Overwrite an existing output.
    #[arg(short = 'f', long)]
    pub force: bool,
    /// No progress bar, warnings or summary.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Print a machine-readable summary on stdout.
    #[arg(long)]
    pub json: bool,
    /// Also write an SBOM of the bundle to FILE: SPDX 2.3 JSON when FILE ends in .spdx.json,
    /// else CycloneDX 1.5 JSON.
    #[arg(long, value_name = "FILE")]
    pub sbom: Option<PathBuf>,
    /// Do not write BUNDLE.sha256 (sha256sum format) beside the bundle.
    #[arg(long)]
    pub no_checksum: bool,
}

/// `gopack inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The bundle.
    pub bundle: PathBuf,
    /// Print the whole manifest as JSON.
    #[arg(long)]
    pub json: bool,
    /// Add the SBOM's summary: components by type and dependency edges.
    #[arg(long, conflicts_with = "json")]
    pub sbom: bool,
}
