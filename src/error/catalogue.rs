//! Every error and warning gopack can report, as the user reads it, pinned in one snapshot
//! (`tests/snapshots/error_catalogue.snap`): one sample of each variant of each stage's error
//! type, with its causes, hint and exit code, then one of each warning.
//!
//! A new variant does not compile until [`name`] (or [`warning_name`]) knows it; [`ALL`] and
//! [`samples`] sit beside it, and the test fails until the new variant has a sample.

use std::path::PathBuf;

use crate::Error;
use crate::progress::Warning;
use crate::{archive, conda, go, oci, provenance, relocate, scan, unpack};

fn io(path: &str, kind: std::io::ErrorKind, what: &str) -> std::io::Error {
    std::io::Error::new(kind, format!("{what} at path \"{path}\""))
}

/// One value of every variant, with the values gopack would fill in.
fn samples() -> Vec<Error> {
    let env = || PathBuf::from("/opt/conda/envs/ml");
    let bundle = || PathBuf::from("/srv/ml.tar.zst");
    let dest = || PathBuf::from("/opt/app");
    vec![
        Error::io(
            "cannot read a directory",
            io(
                "/opt/conda/envs/ml/lib",
                std::io::ErrorKind::PermissionDenied,
                "Permission denied (os error 13) failed to read directory",
            ),
        ),
        Error::Usage("--dest-prefix must be an absolute path, not `app`".into()),
        Error::Interrupted,
        conda::Error::EnvironmentMissing { path: env() }.into(),
        conda::Error::NotAnEnvironment {
            path: PathBuf::from("/home/ana/project"),
        }
        .into(),
        conda::Error::EnvironmentNotFound {
            name: "ml".into(),
            searched: vec![
                PathBuf::from("/opt/conda/envs"),
                PathBuf::from("/home/ana/.conda/envs"),
            ],
            found: vec!["base".into(), "etl".into()],
        }
        .into(),
        conda::Error::EnvironmentNotFound {
            name: "ml".into(),
            searched: vec![PathBuf::from("/home/ana/.conda/envs")],
            found: vec![],
        }
        .into(),
        conda::Error::NoEnvironmentGiven.into(),
        conda::Error::MalformedRecord {
            path: PathBuf::from("/opt/conda/envs/ml/conda-meta/numpy-2.1.3-py311_0.json"),
            line: 3,
            column: 1,
            message: "missing field `version` at line 3 column 1".into(),
        }
        .into(),
        scan::Error::MissingManagedFiles {
            missing: (0..22)
                .map(|i| ("numpy".to_string(), format!("lib/python3.11/numpy/m{i}.py")))
                .collect(),
        }
        .into(),
        scan::Error::EditableInstalls {
            found: vec![
                "lib/python3.11/site-packages/__editable__.mylib-0.1.pth → /home/ana/mylib".into(),
            ],
        }
        .into(),
        scan::Error::SymlinksOutside {
            links: vec!["etc/ssl/cert.pem → /etc/ssl/certs/ca-certificates.crt".into()],
        }
        .into(),
        scan::Error::OutsideLinksNotCopied {
            links: vec!["share/data → /mnt/data: it is a directory".into()],
        }
        .into(),
        scan::Error::Unreadable {
            path: PathBuf::from("/opt/conda/envs/ml/lib/secret.key"),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        }
        .into(),
        scan::Error::ChangedDuringPack {
            path: PathBuf::from("/opt/conda/envs/ml/var/log/app.log"),
        }
        .into(),
        scan::Error::BadGlob {
            pattern: "lib/[".into(),
            source: globset::Glob::new("lib/[").unwrap_err(),
        }
        .into(),
        relocate::Error::UnreachablePrefix {
            path: PathBuf::from("/opt/new\nline"),
            reason: "it holds a newline, which the unpack script and activation cannot carry; \
                     use a path without one"
                .into(),
        }
        .into(),
        relocate::Error::PrefixTooLong {
            prefix: "/opt/a-very-long-path".into(),
            len: 300,
            files: vec!["lib/libpython3.11.so.1.0 (room 255 bytes)".into()],
        }
        .into(),
        relocate::Error::HostileRecord {
            path: "../../etc/passwd".into(),
            reason: "it leads out of the environment".into(),
        }
        .into(),
        relocate::Error::DamagedEnvironment {
            path: dest(),
            message: "1 recorded file(s) are missing: bin/pip".into(),
        }
        .into(),
        relocate::Error::Relocator {
            path: PathBuf::from("/usr/local/bin/gopack-relocate"),
            message: "it is built for aarch64, but the environment is linux-64 (x86-64)".into(),
        }
        .into(),
        go::Error::ToolchainNotExecutable {
            path: PathBuf::from("/usr/local/go/bin"),
        }
        .into(),
        go::Error::ToolchainNotFound {
            searched: vec![
                "/opt/conda/envs/ml/bin/go".into(),
                "/opt/conda/envs/ml/go/bin/go".into(),
                "every directory on PATH".into(),
            ],
        }
        .into(),
        go::Error::NoTarget {
            platform: "linux-s390".into(),
        }
        .into(),
        go::Error::NoSuchDirectory {
            dir: PathBuf::from("/opt/conda/envs/ml/src/health"),
        }
        .into(),
        go::Error::NoMainPackage {
            place: "/opt/conda/envs/ml/src/*/go.mod".into(),
        }
        .into(),
        go::Error::SameBinaryName {
            name: "agent".into(),
        }
        .into(),
        go::Error::CannotRun {
            what: "build health".into(),
            command: "\"/usr/local/go/bin/go\" \"build\" \"-trimpath\"".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        }
        .into(),
        go::Error::CommandFailed {
            what: "build health".into(),
            command: "\"/usr/local/go/bin/go\" \"build\" \"-trimpath\" \"-o\" \"health\" \".\""
                .into(),
            output: "# example.com/health\n./main.go:9:2: undefined: serve\n".into(),
        }
        .into(),
        go::Error::BuildThreadPanicked.into(),
        go::Error::Binary {
            path: PathBuf::from("bin/agent"),
            message: "built for win-64 (windows/amd64), but the environment is linux-64; rebuild \
                      it for linux-64, remove it, or pass `--allow-foreign-go`"
                .into(),
        }
        .into(),
        archive::Error::OutputExists { path: bundle() }.into(),
        archive::Error::OutputDirMissing {
            path: PathBuf::from("/srv/out"),
        }
        .into(),
        archive::Error::UnknownFormat {
            path: PathBuf::from("/srv/ml.zip"),
        }
        .into(),
        archive::Error::BadBundle {
            path: bundle(),
            message: "`lib/libz.so.1` does not match its sha256 in the manifest".into(),
        }
        .into(),
        archive::Error::NotABundle {
            path: PathBuf::from("/srv/notes.txt"),
            what: "a text file".into(),
        }
        .into(),
        unpack::Error::BadDestination {
            path: PathBuf::from("/"),
            reason: "it is the root directory; name a directory to hold the environment".into(),
        }
        .into(),
        unpack::Error::DestinationNotEmpty { path: dest() }.into(),
        unpack::Error::HostileEntry {
            entry: "lib/\u{1b}]0;owned\u{7}".into(),
            reason: "it would be written through a symlink".into(),
        }
        .into(),
        provenance::Error::ChecksumMismatch {
            bundle: bundle(),
            sidecar: PathBuf::from("/srv/ml.tar.zst.sha256"),
            expected: "0".repeat(64),
            actual: "f".repeat(64),
        }
        .into(),
        provenance::Error::BadChecksumFile {
            path: PathBuf::from("/srv/ml.tar.zst.sha256"),
            reason: "line 1 is not `SHA256  NAME`".into(),
        }
        .into(),
        provenance::Error::NotUnpacked {
            path: dest(),
            reason: "it has no `.gopack/manifest.json`".into(),
        }
        .into(),
        provenance::Error::Drift {
            path: dest(),
            problems: 3,
        }
        .into(),
        provenance::Error::RecordChanged {
            path: PathBuf::from(
                "/opt/app/lib/python3.11/site-packages/numpy-2.1.3.dist-info/RECORD",
            ),
        }
        .into(),
        oci::Error::BadBase {
            path: PathBuf::from("/srv/debian.tar"),
            message: "`index.json` is missing".into(),
        }
        .into(),
        oci::Error::PlatformMismatch {
            path: PathBuf::from("/srv/debian-arm64.tar"),
            base: "linux/arm64".into(),
            env: "linux/amd64".into(),
            env_platform: "linux-64".into(),
        }
        .into(),
        oci::Error::UnsupportedPlatform {
            platform: "win-64".into(),
        }
        .into(),
        oci::Error::BadEntry {
            path: "etc/.wh.config".into(),
            reason: "a name starting with `.wh.` is a whiteout to container runtimes".into(),
        }
        .into(),
        oci::Error::BadImage {
            path: PathBuf::from("/srv/image"),
            message: "it is not an OCI image layout (no `oci-layout` file)".into(),
        }
        .into(),
    ]
}

/// Every variant's name; the match has no catch-all, so a new variant must be added here.
fn name(err: &Error) -> &'static str {
    match err {
        Error::Io { .. } => "Io",
        Error::Usage(_) => "Usage",
        Error::Interrupted => "Interrupted",
        Error::Conda(err) => match err {
            conda::Error::EnvironmentMissing { .. } => "conda::EnvironmentMissing",
            conda::Error::NotAnEnvironment { .. } => "conda::NotAnEnvironment",
            conda::Error::EnvironmentNotFound { .. } => "conda::EnvironmentNotFound",
            conda::Error::NoEnvironmentGiven => "conda::NoEnvironmentGiven",
            conda::Error::MalformedRecord { .. } => "conda::MalformedRecord",
        },
        Error::Scan(err) => match err {
            scan::Error::MissingManagedFiles { .. } => "scan::MissingManagedFiles",
            scan::Error::EditableInstalls { .. } => "scan::EditableInstalls",
            scan::Error::SymlinksOutside { .. } => "scan::SymlinksOutside",
            scan::Error::OutsideLinksNotCopied { .. } => "scan::OutsideLinksNotCopied",
            scan::Error::Unreadable { .. } => "scan::Unreadable",
            scan::Error::ChangedDuringPack { .. } => "scan::ChangedDuringPack",
            scan::Error::BadGlob { .. } => "scan::BadGlob",
        },
        Error::Relocate(err) => match err {
            relocate::Error::UnreachablePrefix { .. } => "relocate::UnreachablePrefix",
            relocate::Error::PrefixTooLong { .. } => "relocate::PrefixTooLong",
            relocate::Error::HostileRecord { .. } => "relocate::HostileRecord",
            relocate::Error::DamagedEnvironment { .. } => "relocate::DamagedEnvironment",
            relocate::Error::Relocator { .. } => "relocate::Relocator",
        },
        Error::Go(err) => match err {
            go::Error::ToolchainNotExecutable { .. } => "go::ToolchainNotExecutable",
            go::Error::ToolchainNotFound { .. } => "go::ToolchainNotFound",
            go::Error::NoTarget { .. } => "go::NoTarget",
            go::Error::NoSuchDirectory { .. } => "go::NoSuchDirectory",
            go::Error::NoMainPackage { .. } => "go::NoMainPackage",
            go::Error::SameBinaryName { .. } => "go::SameBinaryName",
            go::Error::CannotRun { .. } => "go::CannotRun",
            go::Error::CommandFailed { .. } => "go::CommandFailed",
            go::Error::BuildThreadPanicked => "go::BuildThreadPanicked",
            go::Error::Binary { .. } => "go::Binary",
        },
        Error::Archive(err) => match err {
            archive::Error::OutputExists { .. } => "archive::OutputExists",
            archive::Error::OutputDirMissing { .. } => "archive::OutputDirMissing",
            archive::Error::UnknownFormat { .. } => "archive::UnknownFormat",
            archive::Error::BadBundle { .. } => "archive::BadBundle",
            archive::Error::NotABundle { .. } => "archive::NotABundle",
        },
        Error::Unpack(err) => match err {
            unpack::Error::BadDestination { .. } => "unpack::BadDestination",
            unpack::Error::DestinationNotEmpty { .. } => "unpack::DestinationNotEmpty",
            unpack::Error::HostileEntry { .. } => "unpack::HostileEntry",
        },
        Error::Provenance(err) => match err {
            provenance::Error::ChecksumMismatch { .. } => "provenance::ChecksumMismatch",
            provenance::Error::BadChecksumFile { .. } => "provenance::BadChecksumFile",
            provenance::Error::NotUnpacked { .. } => "provenance::NotUnpacked",
            provenance::Error::Drift { .. } => "provenance::Drift",
            provenance::Error::RecordChanged { .. } => "provenance::RecordChanged",
        },
        Error::Oci(err) => match err {
            oci::Error::BadBase { .. } => "oci::BadBase",
            oci::Error::PlatformMismatch { .. } => "oci::PlatformMismatch",
            oci::Error::UnsupportedPlatform { .. } => "oci::UnsupportedPlatform",
            oci::Error::BadEntry { .. } => "oci::BadEntry",
            oci::Error::BadImage { .. } => "oci::BadImage",
        },
    }
}

/// The names [`name`] gives, in its order.
const ALL: &[&str] = &[
    "Io",
    "Usage",
    "Interrupted",
    "conda::EnvironmentMissing",
    "conda::NotAnEnvironment",
    "conda::EnvironmentNotFound",
    "conda::NoEnvironmentGiven",
    "conda::MalformedRecord",
    "scan::MissingManagedFiles",
    "scan::EditableInstalls",
    "scan::SymlinksOutside",
    "scan::OutsideLinksNotCopied",
    "scan::Unreadable",
    "scan::ChangedDuringPack",
    "scan::BadGlob",
    "relocate::UnreachablePrefix",
    "relocate::PrefixTooLong",
    "relocate::HostileRecord",
    "relocate::DamagedEnvironment",
    "relocate::Relocator",
    "go::ToolchainNotExecutable",
    "go::ToolchainNotFound",
    "go::NoTarget",
    "go::NoSuchDirectory",
    "go::NoMainPackage",
    "go::SameBinaryName",
    "go::CannotRun",
    "go::CommandFailed",
    "go::BuildThreadPanicked",
    "go::Binary",
    "archive::OutputExists",
    "archive::OutputDirMissing",
    "archive::UnknownFormat",
    "archive::BadBundle",
    "archive::NotABundle",
    "unpack::BadDestination",
    "unpack::DestinationNotEmpty",
    "unpack::HostileEntry",
    "provenance::ChecksumMismatch",
    "provenance::BadChecksumFile",
    "provenance::NotUnpacked",
    "provenance::Drift",
    "provenance::RecordChanged",
    "oci::BadBase",
    "oci::PlatformMismatch",
    "oci::UnsupportedPlatform",
    "oci::BadEntry",
    "oci::BadImage",
];

/// One value of every warning.
fn warning_samples() -> Vec<Warning> {
    vec![
        Warning::MissingFilesIgnored {
            files: vec![("numpy".into(), "lib/python3.11/numpy/version.py".into())],
        },
        Warning::EditableIgnored {
            found: vec!["lib/python3.11/site-packages/mylib.egg-link → /home/ana/mylib".into()],
        },
        Warning::SpecialFileSkipped {
            path: PathBuf::from("/opt/conda/envs/ml/var/run/app.sock"),
        },
        Warning::PrefixLeftAlone {
            reason: relocate::LeftAloneReason::GoBinary.explain().into(),
            paths: (0..12).map(|i| format!("bin/tool{i}")).collect(),
        },
        Warning::OutsideLinksCopied {
            links: vec!["etc/ssl/cert.pem → /etc/ssl/certs/ca-certificates.crt".into()],
        },
        Warning::Replaced {
            path: "bin/activate".into(),
            by: "gopack's own script".into(),
        },
        Warning::EnvVarsSkipped {
            names: vec!["MY-VAR".into()],
        },
        Warning::ForeignGoBinary {
            path: "bin/agent.exe".into(),
            message: "built for win-64 (windows/amd64), but the environment is linux-64".into(),
        },
        Warning::UntrimmedGoBinaries {
            paths: vec!["bin/health".into()],
        },
        Warning::UnwritableShebangs {
            prefix: "/opt/my app".into(),
            paths: vec!["bin/tool".into()],
        },
    ]
}

/// Every warning's name; no catch-all, so a new warning must be added here.
fn warning_name(warning: &Warning) -> &'static str {
    match warning {
        Warning::MissingFilesIgnored { .. } => "MissingFilesIgnored",
        Warning::EditableIgnored { .. } => "EditableIgnored",
        Warning::SpecialFileSkipped { .. } => "SpecialFileSkipped",
        Warning::PrefixLeftAlone { .. } => "PrefixLeftAlone",
        Warning::OutsideLinksCopied { .. } => "OutsideLinksCopied",
        Warning::Replaced { .. } => "Replaced",
        Warning::EnvVarsSkipped { .. } => "EnvVarsSkipped",
        Warning::ForeignGoBinary { .. } => "ForeignGoBinary",
        Warning::UntrimmedGoBinaries { .. } => "UntrimmedGoBinaries",
        Warning::UnwritableShebangs { .. } => "UnwritableShebangs",
    }
}

/// The names [`warning_name`] gives.
const ALL_WARNINGS: &[&str] = &[
    "MissingFilesIgnored",
    "EditableIgnored",
    "SpecialFileSkipped",
    "PrefixLeftAlone",
    "OutsideLinksCopied",
    "Replaced",
    "EnvVarsSkipped",
    "ForeignGoBinary",
    "UntrimmedGoBinaries",
    "UnwritableShebangs",
];

#[test]
fn every_error_and_warning_gopack_reports_is_pinned() {
    let samples = samples();
    let named: Vec<&str> = samples.iter().map(name).collect();
    for variant in ALL {
        assert!(named.contains(variant), "no sample of {variant}");
    }
    let mut text = String::new();
    for (err, variant) in samples.iter().zip(&named) {
        assert!(ALL.contains(variant), "{variant} is missing from ALL");
        let exit = err.kind().exit_code();
        text.push_str(&format!("── {variant} (exit {exit})\n{}", err.report("")));
    }
    let warnings = warning_samples();
    let named: Vec<&str> = warnings.iter().map(warning_name).collect();
    for variant in ALL_WARNINGS {
        assert!(named.contains(variant), "no sample of warning {variant}");
    }
    for (warning, variant) in warnings.iter().zip(&named) {
        text.push_str(&format!("── warning {variant}\n{}\n", warning.report()));
    }
    insta::with_settings!({
        snapshot_path => "../../tests/snapshots",
        prepend_module_to_snapshot => false,
    }, {
        insta::assert_snapshot!("error_catalogue", text);
    });
}
