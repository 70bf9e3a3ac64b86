//! `create` never writes a bundle its own unpack refuses, and never leaves anything behind when
//! it is stopped: symlinks leading out of the environment are refused (or copied on request),
//! and SIGTERM or SIGHUP, in the writer or in a Go build, leave no partial file.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::util::synthetic::SyntheticEnv;
use crate::util::*;

/// An environment with links that stay inside (relative, absolute into the prefix, through
/// another link) and three that lead out: absolute, `..` past the prefix, and through a link.
fn env_with_outside_links(scratch: &Scratch) -> PathBuf {
    SyntheticEnv::new(&scratch.path("env"))
        .text("a.txt", "a\n")
        .text("lib/x", "x\n")
        .symlink("lib/ok", "../a.txt")
        .symlink("lib/abs-inside", "@PREFIX@/a.txt")
        .symlink("lib/up", "..")
        .symlink("lib/fine", "up/a.txt")
        .symlink("lib/abs", "/etc/hostname")
        .symlink("lib/rel", "../../outside.txt")
        .symlink("lib/chain", "up/../x")
        .build()
}

#[test]
fn outside_symlinks_are_refused_with_every_link_listed_until_excluded() {
    let scratch = Scratch::new();
    let prefix = env_with_outside_links(&scratch);
    let bundle = scratch.path("b.tar.zst");
    let stderr = run_fails(&mut create_command(&prefix, &bundle), 1);
    for line in [
        "lib/abs → /etc/hostname",
        "lib/rel → ../../outside.txt",
        "lib/chain → up/../x (through other symlinks)",
    ] {
        assert!(stderr.contains(line), "`{line}` missing from:\n{stderr}");
    }
    assert!(stderr.contains("3 symlink(s)"), "{stderr}");
    for fine in ["lib/ok", "lib/abs-inside", "lib/up", "lib/fine"] {
        assert!(!stderr.contains(&format!("{fine} →")), "{fine}:\n{stderr}");
    }
    assert!(
        stderr.contains("--exclude") && stderr.contains("--copy-outside-links"),
        "the hint names both ways out:\n{stderr}"
    );
    assert!(!bundle.exists());
    assert_no_leftovers(scratch.dir.path());

    // The first way out: excluded, the rest packs, and unpack accepts the links that stay.
    pack(
        &prefix,
        &bundle,
        &[
            "-q",
            "--exclude",
            "lib/abs",
            "--exclude",
            "lib/rel",
            "--exclude",
            "lib/chain",
        ],
    );
    let dest = scratch.path("dest");
    unpack(&bundle, &dest);
    assert_eq!(
        std::fs::read_link(dest.join("lib/ok")).unwrap(),
        Path::new("../a.txt")
    );
    // The absolute link into the prefix was made relative.
    assert_eq!(
        std::fs::read_link(dest.join("lib/abs-inside")).unwrap(),
        Path::new("../a.txt")
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("lib/fine")).unwrap(),
        "a\n"
    );
    assert!(std::fs::symlink_metadata(dest.join("lib/abs")).is_err());
}

#[test]
fn copy_outside_links_packs_the_target_file_in_place_of_the_link() {
    let scratch = Scratch::new();
    let outside = scratch.path("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let data = outside.join("data.txt");
    let prefix = SyntheticEnv::new(&scratch.path("env"))
        .text("a.txt", "a\n")
        .symlink("lib/abs", data.to_str().unwrap())
        .symlink("lib/rel", "../../outside/data.txt")
        .symlink("lib/via", "rel")
        .symlink("lib/ok", "../a.txt")
        .build();
    // The copied file holds the prefix: it is relocated like any file of the environment.
    std::fs::write(&data, format!("home={}\n", prefix.display())).unwrap();
    let bundle = scratch.path("b.tar.zst");
    let output = create_command(&prefix, &bundle)
        .arg("--copy-outside-links")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("3 symlink(s) leading out of the environment packed as copies")
            && stderr.contains("lib/via → rel (through other symlinks)"),
        "the copies are listed:\n{stderr}"
    );
    let manifest = manifest(&bundle);
    for path in ["lib/abs", "lib/rel", "lib/via"] {
        let record = files_named(&manifest, path).unwrap();
        assert_eq!(record["type"], "file", "{path}: {record}");
        assert_eq!(record["sha256"], sha256_file(&data), "{path}");
    }
    assert_eq!(files_named(&manifest, "lib/ok").unwrap()["type"], "symlink");
    let dest = scratch.path("dest");
    unpack(&bundle, &dest);
    for path in ["lib/abs", "lib/rel", "lib/via"] {
        let meta = std::fs::symlink_metadata(dest.join(path)).unwrap();
        assert!(meta.is_file(), "{path} is a regular file");
        assert_eq!(
            std::fs::read_to_string(dest.join(path)).unwrap(),
            format!("home={}\n", dest.display()),
            "{path}"
        );
    }
    // The source outside the environment is untouched.
    assert_eq!(
        std::fs::read_to_string(&data).unwrap(),
        format!("home={}\n", prefix.display())
    );
}

#[test]
fn copy_outside_links_refuses_directories_and_missing_targets() {
    let scratch = Scratch::new();
    let outside = scratch.path("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("f"), "f").unwrap();
    let prefix = SyntheticEnv::new(&scratch.path("env"))
        .text("a.txt", "a\n")
        .symlink("lib/dir", outside.to_str().unwrap())
        .symlink("lib/gone", scratch.path("missing").to_str().unwrap())
        .symlink("lib/file", outside.join("f").to_str().unwrap())
        .build();
    let bundle = scratch.path("b.tar.zst");
    let stderr = run_fails(
        create_command(&prefix, &bundle).arg("--copy-outside-links"),
        1,
    );
    assert!(
        stderr.contains(&format!(
            "lib/dir → {}: a directory (only files are copied)",
            outside.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("lib/gone →") && stderr.contains("the target does not exist"),
        "{stderr}"
    );
    assert!(!stderr.contains("lib/file →"), "{stderr}");
    assert!(!bundle.exists());
    assert_no_leftovers(scratch.dir.path());
}

/// Starts a slow `create` (level 19 on incompressible data), sends `signal` once the partial
/// bundle exists, and checks that gopack exits with 1 and leaves nothing.
fn signal_while_writing(signal: libc::c_int) {
    let scratch = Scratch::new();
    let prefix = SyntheticEnv::new(&scratch.path("env"))
        .text("a.txt", "a\n")
        .build();
    std::fs::create_dir_all(prefix.join("share")).unwrap();
    std::fs::write(prefix.join("share/big.bin"), incompressible(16 << 20)).unwrap();
    let out = scratch.path("out");
    std::fs::create_dir_all(&out).unwrap();
    let bundle = out.join("b.tar.zst");
    let child = create_command(&prefix, &bundle)
        .args(["--compress-level", "19", "-j", "1", "-q"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    interrupt_while_writing(child, &bundle, signal);
}

#[test]
fn sigterm_while_writing_leaves_nothing() {
    signal_while_writing(libc::SIGTERM);
}

#[test]
fn sighup_while_writing_leaves_nothing() {
    signal_while_writing(libc::SIGHUP);
}

/// Kills the processes the test started (through gopack) that are still there at the end.
struct KillOnDrop(Vec<libc::pid_t>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for &pid in &self.0 {
            // SAFETY: kill(2) on a pid the fake toolchain recorded for itself or its child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

fn alive(pid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks that the pid exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

#[test]
fn sigterm_during_a_go_build_stops_it_and_leaves_nothing() {
    let scratch = Scratch::new();
    let prefix = SyntheticEnv::new(&scratch.path("env"))
        .text("a.txt", "a\n")
        .build();
    // A `go` that starts a compiler, makes its work directory, records both pids and then
    // builds for ten minutes.
    let toolchain = scratch.path("fake-go/go");
    std::fs::create_dir_all(toolchain.parent().unwrap()).unwrap();
    std::fs::write(
        &toolchain,
        "#!/bin/sh\n\
         sleep 600 &\n\
         mkdir \"$GOTMPDIR/go-build-fake\" || exit 1\n\
         echo $$ $! > \"$PIDFILE.tmp\" && mv \"$PIDFILE.tmp\" \"$PIDFILE\"\n\
         exec sleep 600\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&toolchain, std::fs::Permissions::from_mode(0o755)).unwrap();
    let service = scratch.path("svc");
    std::fs::create_dir_all(&service).unwrap();
    let pidfile = scratch.path("go.pid");
    let tmp = scratch.path("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let out = scratch.path("out");
    std::fs::create_dir_all(&out).unwrap();
    let bundle = out.join("b.tar.zst");
    let mut child = create_command(&prefix, &bundle)
        .arg("--go-toolchain")
        .arg(&toolchain)
        .arg("--go")
        .arg(&service)
        .arg("-q")
        .env("PIDFILE", &pidfile)
        .env("TMPDIR", &tmp)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&mut child, "the Go build started", || pidfile.exists());
    let pids: Vec<libc::pid_t> = std::fs::read_to_string(&pidfile)
        .unwrap()
        .split_whitespace()
        .map(|pid| pid.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 2);
    let mut guard = KillOnDrop(pids.clone());
    send(&child, libc::SIGTERM);
    let output = child.wait_with_output().unwrap();
    assert_interrupted(&output);
    // `go` was reaped by gopack; its compiler, orphaned, may take a moment to be reaped by init.
    let start = Instant::now();
    while pids.iter().any(|&pid| alive(pid)) && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    for pid in &pids {
        assert!(!alive(*pid), "pid {pid} of the Go build is still running");
    }
    guard.0.clear();
    assert_eq!(
        entries_starting_with(&tmp, "gopack-go-"),
        Vec::<String>::new(),
        "Go staging left in TMPDIR"
    );
    assert!(!bundle.exists());
    assert_no_leftovers(&out);
}
