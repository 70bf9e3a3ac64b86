//! Self-extracting installers (`create --format sh`): installed by dash, bash and busybox sh with
//! only POSIX tools on PATH, on paths with spaces, as an unprivileged user, refused when
//! truncated, altered or piped (nothing left behind); read by `gopack inspect` and `unpack`;
//! and gzip output that is the same for any thread count.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::synthetic::SyntheticEnv;
use crate::util::{Scratch, assert_no_leftovers, gopack, pack, run_fails, run_ok, unpack, which};

/// The tools an installer (and the bundle's gopack-unpack) may use, and nothing else.
const TOOLS: &[&str] = &[
    "awk",
    "cat",
    "chmod",
    "cp",
    "dd",
    "ln",
    "ls",
    "mkdir",
    "mv",
    "readlink",
    "rm",
    "rmdir",
    "sed",
    "tail",
    "tar",
    "touch",
    "wc",
    "gzip",
    "sha256sum",
];

/// A directory of links to `tools` (busybox applets, or the system's own).
fn tool_dir(dir: &Path, busybox: bool, tools: &[&str]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for tool in tools {
        let target = if busybox {
            which("busybox")
        } else {
            which(tool)
        };
        std::os::unix::fs::symlink(target, dir.join(tool)).unwrap();
    }
    dir.to_path_buf()
}

fn env_with_prefix(scratch: &Scratch) -> PathBuf {
    SyntheticEnv::new(&scratch.path("src env/app"))
        .text("etc/a.txt", "x=@PREFIX@\n")
        .file("bin/tool", b"#!/bin/sh\necho @PREFIX@\n", 0o755)
        .build()
}

/// `SHELL INSTALLER ARGS…` with PATH holding only `bin`.
fn installer(shell: &[&str], file: &Path, bin: &Path) -> Command {
    let mut command = Command::new(which(shell[0]));
    command
        .args(&shell[1..])
        .arg(file)
        .env_clear()
        .env("PATH", bin)
        .env("HOME", "/nonexistent");
    command
}

fn open_for_others(path: &Path) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn installs_under_dash_bash_and_busybox_with_only_posix_tools_on_a_path_with_spaces() {
    let scratch = Scratch::new();
    let prefix = env_with_prefix(&scratch);
    let out_dir = scratch.path("out dir");
    std::fs::create_dir_all(&out_dir).unwrap();
    let file = out_dir.join("my app.sh");
    // The extension chooses the format.
    pack(&prefix, &file, &[]);
    let bytes = std::fs::read(&file).unwrap();
    assert!(bytes.starts_with(b"#!/bin/sh\n# gopack self-extracting installer\n"));
    assert_eq!(file.metadata().unwrap().mode() & 0o777, 0o755);

    for (name, shell, busybox) in [
        ("dash", &["dash"][..], false),
        ("bash", &["bash"][..], false),
        ("busybox", &["busybox", "sh"][..], true),
    ] {
        let bin = tool_dir(&scratch.path(&format!("bin-{name}")), busybox, TOOLS);
        let help = run_ok(installer(shell, &file, &bin).arg("--help"));
        assert!(help.contains("default: ./my_app"), "{help}");
        let check = run_ok(installer(shell, &file, &bin).arg("--check"));
        assert!(check.contains("ok ("), "{check}");
        let list = run_ok(installer(shell, &file, &bin).arg("--list"));
        assert!(list.contains("etc/a.txt"), "{list}");

        let parent = scratch.path(&format!("installed by {name}"));
        std::fs::create_dir_all(&parent).unwrap();
        let dest = parent.join("the env");
        run_ok(installer(shell, &file, &bin).arg("-d").arg(&dest));
        assert_eq!(
            std::fs::read_to_string(dest.join("etc/a.txt")).unwrap(),
            format!("x={}\n", dest.display()),
            "{name}"
        );
        let tool = run_ok(&mut Command::new(dest.join("bin/tool")));
        assert_eq!(tool.trim(), dest.display().to_string());
        assert_no_leftovers(&parent);

        // An existing, non-empty DEST is refused without -f, and replaced with it.
        let err = run_fails(installer(shell, &file, &bin).arg("-d").arg(&dest), 1);
        assert!(err.contains("exists and is not empty"), "{err}");
        std::fs::write(dest.join("stale"), "old").unwrap();
        run_ok(installer(shell, &file, &bin).arg("-d").arg(&dest).arg("-f"));
        assert!(!dest.join("stale").exists());
        assert!(dest.join("etc/a.txt").exists());
        assert_no_leftovers(&parent);

        // The default DEST is ./NAME in the current directory.
        let cwd = scratch.path(&format!("cwd {name}"));
        std::fs::create_dir_all(&cwd).unwrap();
        run_ok(installer(shell, &file, &bin).current_dir(&cwd));
        assert!(cwd.join("my_app/etc/a.txt").exists());
        assert_no_leftovers(&cwd);
    }
}

#[test]
fn installs_as_an_unprivileged_user_into_a_user_owned_dest() {
    if !is_root() {
        eprintln!("skipped: needs root to switch to user 65534");
        return;
    }
    let scratch = Scratch::new();
    open_for_others(scratch.dir.path());
    let prefix = env_with_prefix(&scratch);
    let file = scratch.path("app.sh");
    pack(&prefix, &file, &["--format", "sh"]);
    let bin = tool_dir(&scratch.path("bin"), false, TOOLS);
    let nobody = |dest: &Path| {
        let mut command = Command::new(which("setpriv"));
        command
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(which("sh"))
            .arg(&file)
            .arg("-d")
            .arg(dest)
            .env_clear()
            .env("PATH", &bin)
            .env("HOME", "/nonexistent");
        command
    };

    // A user-owned parent: staged beside DEST.
    let home = scratch.path("home");
    std::fs::create_dir_all(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(65534), Some(65534)).unwrap();
    let dest = home.join("env");
    run_ok(&mut nobody(&dest));
    assert_eq!(
        std::fs::read_to_string(dest.join("etc/a.txt")).unwrap(),
        format!("x={}\n", dest.display())
    );
    assert_eq!(dest.join("etc/a.txt").metadata().unwrap().uid(), 65534);
    assert_no_leftovers(&home);

    // An empty, user-owned DEST in a directory the user cannot write: staged inside DEST.
    let opt = scratch.path("opt");
    std::fs::create_dir_all(&opt).unwrap();
    open_for_others(&opt);
    let dest = opt.join("app");
    std::fs::create_dir(&dest).unwrap();
    std::os::unix::fs::chown(&dest, Some(65534), Some(65534)).unwrap();
    run_ok(&mut nobody(&dest));
    assert_eq!(
        std::fs::read_to_string(dest.join("etc/a.txt")).unwrap(),
        format!("x={}\n", dest.display())
    );
    assert_no_leftovers(&dest);
    assert_no_leftovers(&opt);

    // A directory the user cannot write, and no empty DEST: refused, nothing made.
    let err = run_fails(&mut nobody(&opt.join("other")), 1);
    assert!(err.contains("cannot write"), "{err}");
    assert!(!opt.join("other").exists());
}

#[test]
fn truncated_altered_and_piped_installers_are_refused_and_leave_nothing() {
    let scratch = Scratch::new();
    let prefix = env_with_prefix(&scratch);
    let good = scratch.path("app.sh");
    pack(&prefix, &good, &[]);
    let bytes = std::fs::read(&good).unwrap();
    let bin = tool_dir(&scratch.path("bin"), false, TOOLS);
    let target = scratch.path("target");
    std::fs::create_dir_all(&target).unwrap();

    let truncated = scratch.path("truncated.sh");
    std::fs::write(&truncated, &bytes[..bytes.len() - 100]).unwrap();
    let mut altered_bytes = bytes.clone();
    let last = altered_bytes.len() - 20;
    altered_bytes[last] ^= 0x40;
    let altered = scratch.path("altered.sh");
    std::fs::write(&altered, &altered_bytes).unwrap();
    for (file, message) in [(&truncated, "truncated"), (&altered, "damaged")] {
        for extra in [&[][..], &["--check"][..], &["--list"][..]] {
            let err = run_fails(
                installer(&["dash"], file, &bin)
                    .args(extra)
                    .arg("-d")
                    .arg(target.join("env")),
                1,
            );
            assert!(err.contains(message), "{err}");
        }
        assert!(!target.join("env").exists());
        assert_no_leftovers(&target);
    }

    // Piped into sh there is no file to read the payload from.
    let piped = Command::new(which("sh"))
        .arg("-c")
        .arg(r#"sh -s -- -d "$1/env" < "$2""#)
        .arg("sh")
        .arg(&target)
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(piped.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&piped.stderr).contains("piped"));
    assert!(!target.join("env").exists());

    // No sha256 tool: refused unless --no-verify.
    let no_sha: Vec<&str> = TOOLS
        .iter()
        .copied()
        .filter(|t| *t != "sha256sum")
        .collect();
    let bare = tool_dir(&scratch.path("bin-no-sha"), false, &no_sha);
    let err = run_fails(
        installer(&["dash"], &good, &bare)
            .arg("-d")
            .arg(target.join("env")),
        1,
    );
    assert!(err.contains("--no-verify"), "{err}");
    assert!(!target.join("env").exists());
    run_ok(
        installer(&["dash"], &good, &bare)
            .arg("--no-verify")
            .arg("-d")
            .arg(target.join("env")),
    );
    assert!(target.join("env/etc/a.txt").exists());

    // A failing relocation removes what was installed (the sh engine, without the relocator
    // the bundle carries, and without awk).
    let broken = scratch.path("broken bin");
    let without_awk: Vec<&str> = TOOLS.iter().copied().filter(|t| *t != "awk").collect();
    tool_dir(&broken, false, &without_awk);
    let err = run_fails(
        installer(&["dash"], &good, &broken)
            .env("GOPACK_UNPACK_SH", "1")
            .arg("-d")
            .arg(target.join("env2")),
        1,
    );
    assert!(err.contains("relocating"), "{err}");
    assert!(!target.join("env2").exists());
    assert_no_leftovers(&target);

    // Usage errors exit 2.
    run_fails(installer(&["dash"], &good, &bin).arg("--bogus"), 2);
}

#[test]
fn zstd_payload_and_gopack_reads_installers() {
    let scratch = Scratch::new();
    let prefix = env_with_prefix(&scratch);
    let zst = scratch.path("app-zstd.sh");
    pack(&prefix, &zst, &["--payload", "zstd"]);
    let gz = scratch.path("app.run");
    pack(&prefix, &gz, &["--format", "sh"]);
    for file in [&zst, &gz] {
        let inspect = run_ok(gopack().arg("inspect").arg(file));
        assert!(inspect.contains("platform:"), "{inspect}");
        let dest = scratch.path(&format!(
            "unpacked-{}",
            file.file_name().unwrap().to_string_lossy()
        ));
        unpack(file, &dest);
        assert_eq!(
            std::fs::read_to_string(dest.join("etc/a.txt")).unwrap(),
            format!("x={}\n", dest.display())
        );
    }
    // The zstd payload needs zstd: checked before anything is extracted.
    let bin = tool_dir(&scratch.path("bin"), false, TOOLS);
    let err = run_fails(
        installer(&["dash"], &zst, &bin)
            .arg("-d")
            .arg(scratch.path("z")),
        1,
    );
    assert!(err.contains("zstd is not installed"), "{err}");
    assert!(!scratch.path("z").exists());
    let with_zstd = tool_dir(&scratch.path("bin-zstd"), false, &["zstd"]);
    let path = std::env::join_paths([&bin, &with_zstd]).unwrap();
    run_ok(
        installer(&["dash"], &zst, &bin)
            .env("PATH", path)
            .arg("-d")
            .arg(scratch.path("z")),
    );
    assert!(scratch.path("z/etc/a.txt").exists());

    // --payload applies to installers only.
    let err = run_fails(
        gopack()
            .arg("create")
            .arg("-p")
            .arg(&prefix)
            .arg("-o")
            .arg(scratch.path("x.tar.gz"))
            .args(["--payload", "zstd"]),
        2,
    );
    assert!(err.contains("--payload"), "{err}");
}

#[test]
fn gzip_output_is_the_same_for_any_thread_count() {
    let scratch = Scratch::new();
    // More than one 1 MiB piece, not all of it compressible.
    let mut big = Vec::new();
    let mut x: u32 = 1;
    for _ in 0..(3 << 20) {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        big.push(if x.is_multiple_of(3) {
            (x >> 16) as u8
        } else {
            b'a'
        });
    }
    let prefix = SyntheticEnv::new(&scratch.path("env"))
        .text("etc/a.txt", "x=@PREFIX@\n")
        .file("lib/big.bin", &big, 0o644)
        .build();
    let mut sums = Vec::new();
    for (name, threads) in [("one", "1"), ("two", "2"), ("four", "4")] {
        let out = scratch.path(&format!("{name}.tar.gz"));
        pack(&prefix, &out, &["-j", threads, "--no-checksum"]);
        run_ok(Command::new(which("gzip")).arg("-t").arg(&out));
        run_ok(
            Command::new(which("busybox"))
                .args(["gzip", "-t"])
                .arg(&out),
        );
        sums.push(crate::util::sha256_file(&out));
        // The same file name: the default install directory is named after it.
        std::fs::create_dir_all(scratch.path(name)).unwrap();
        let installer = scratch.path(&format!("{name}/app.sh"));
        pack(&prefix, &installer, &["-j", threads, "--no-checksum"]);
        sums.push(crate::util::sha256_file(&installer));
    }
    assert_eq!(sums[0], sums[2]);
    assert_eq!(sums[0], sums[4]);
    assert_eq!(sums[1], sums[3]);
    assert_eq!(sums[1], sums[5]);
}

#[test]
fn staging_left_by_a_killed_install_is_removed_by_the_next_one() {
    let scratch = Scratch::new();
    let prefix = env_with_prefix(&scratch);
    let file = scratch.path("app.sh");
    pack(&prefix, &file, &[]);
    let bin = tool_dir(&scratch.path("bin"), false, TOOLS);
    // A process id that is gone (a child that ran and was reaped), and one that is alive.
    let gone = Command::new("true").spawn().unwrap();
    let gone_pid = gone.id();
    let mut gone = gone;
    gone.wait().unwrap();
    let alive = std::process::id();
    let parent = scratch.path("opt");
    let dest = parent.join("app");
    std::fs::create_dir_all(&dest).unwrap();
    // What a kill -9 leaves: staging beside DEST, and inside an empty DEST.
    let stale_beside = parent.join(format!(".gopack-install.{gone_pid}"));
    let stale_inside = dest.join(format!(".gopack-install.{gone_pid}"));
    let live = parent.join(format!(".gopack-install.{alive}"));
    for dir in [&stale_beside, &stale_inside, &live] {
        std::fs::create_dir_all(dir.join("half/extracted")).unwrap();
    }
    run_ok(installer(&["dash"], &file, &bin).arg("-d").arg(&dest));
    assert!(!stale_beside.exists() && !stale_inside.exists());
    assert!(live.exists(), "a running install's staging was removed");
    assert_eq!(
        std::fs::read_to_string(dest.join("etc/a.txt")).unwrap(),
        format!("x={}\n", dest.display())
    );
}
