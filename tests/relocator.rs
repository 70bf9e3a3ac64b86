//! The native relocator bundles carry (`.gopack/relocate`): packed and verified like every other
//! member, left out or refused when it cannot serve the environment, run by `bin/gopack-unpack`
//! only when the host can execute it (else POSIX sh does the same work), and, built static, run
//! on a host with no C library at all.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use gopack::relocate::carry::{Linkage, RelocatorChoice};

use crate::util::synthetic::{self, SyntheticEnv};
use crate::util::*;

fn small_env(prefix: &Path) -> PathBuf {
    SyntheticEnv::new(prefix)
        .text("etc/app.conf", "home=@PREFIX@\nsibling=@PREFIX@2\n")
        .text(
            "share/run.sh",
            "#!/bin/sh\nexec \"@PREFIX@/bin/tool\" \"$@\"\n",
        )
        .build()
}

/// The small environment, packed (with the relocator) into `b.tar.zst`, and a directory of the
/// POSIX tools alone.
fn packed_small_env(scratch: &Scratch) -> (PathBuf, PathBuf, PathBuf) {
    let env = small_env(&scratch.path("env"));
    let bundle = scratch.path("b.tar.zst");
    pack(&env, &bundle, &["-q"]);
    (env, bundle, posix_bin(&scratch.path("posix"), false))
}

/// `tar -x` of `bundle` into `dest`, then `bin/gopack-unpack` under dash with only POSIX tools.
fn extract_and_run(bundle: &Path, dest: &Path, posix: &Path) -> String {
    let _ = std::fs::remove_dir_all(dest);
    extract(bundle, dest);
    run_script(dest, posix)
}

fn run_script(dest: &Path, posix: &Path) -> String {
    run_ok(&mut unpack_script(dest, posix, false))
}

#[test]
fn bundles_carry_the_relocator_and_native_unpack_verifies_it() {
    let scratch = Scratch::new();
    let env = small_env(&scratch.path("env"));
    let bundle = scratch.path("b.tar.zst");
    pack(&env, &bundle, &["-q"]);
    let listed = manifest(&bundle)["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|file| file["path"] == ".gopack/relocate")
        .cloned()
        .expect("the manifest lists .gopack/relocate");
    assert_eq!(listed["sha256"], sha256_file(&relocator()).as_str());
    assert_eq!(listed["mode"], 0o755);

    let dest = scratch.path("native");
    unpack(&bundle, &dest);
    assert_eq!(
        sha256_file(&dest.join(".gopack/relocate")),
        sha256_file(&relocator())
    );
    let native = tree_snapshot(&dest);
    let posix = posix_bin(&scratch.path("posix"), false);
    let said = extract_and_run(&bundle, &dest, &posix);
    assert!(said.contains("(native relocator)"), "{said}");
    assert_eq!(tree_snapshot(&dest), native);
}

#[test]
fn no_relocator_leaves_the_work_to_posix_sh() {
    let scratch = Scratch::new();
    let env = small_env(&scratch.path("env"));
    let bundle = scratch.path("b.tar.zst");
    pack(&env, &bundle, &["-q", "--no-relocator"]);
    let files = manifest(&bundle)["files"].as_array().unwrap().clone();
    assert!(files.iter().all(|file| file["path"] != ".gopack/relocate"));
    let posix = posix_bin(&scratch.path("posix"), false);
    let dest = scratch.path("dest");
    let said = extract_and_run(&bundle, &dest, &posix);
    assert!(
        said.contains("relocated 3 file(s)") && !said.contains("native"),
        "{said}"
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("etc/app.conf")).unwrap(),
        format!("home={0}\nsibling={1}2\n", dest.display(), env.display())
    );
}

#[test]
fn the_script_relocates_with_sh_when_the_relocator_cannot_run() {
    let scratch = Scratch::new();
    let (_, bundle, posix) = packed_small_env(&scratch);
    let dest = scratch.path("dest");
    let said = extract_and_run(&bundle, &dest, &posix);
    assert!(said.contains("(native relocator)"), "{said}");
    let reference = tree_snapshot(&dest);

    // An ELF file for another machine: exec fails with ENOEXEC, and a shell may then read the
    // file as a script. Whatever it does, it does not answer the probe.
    let mut foreign = std::fs::read(relocator()).unwrap();
    foreign[18..20].copy_from_slice(&183u16.to_le_bytes()); // EM_AARCH64
    type Breaker = Box<dyn Fn(&Path)>;
    let broken: [(&str, Breaker); 4] = [
        (
            "no execute bit",
            Box::new(|file: &Path| {
                std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap()
            }),
        ),
        (
            "fails to start",
            Box::new(|file: &Path| std::fs::write(file, "#!/bin/sh\nexit 127\n").unwrap()),
        ),
        (
            "answers something else",
            Box::new(|file: &Path| std::fs::write(file, "#!/bin/sh\necho yes\n").unwrap()),
        ),
        (
            "another machine",
            Box::new(move |file: &Path| std::fs::write(file, &foreign).unwrap()),
        ),
    ];
    for (why, break_it) in broken {
        let _ = std::fs::remove_dir_all(&dest);
        extract(&bundle, &dest);
        let file = dest.join(".gopack/relocate");
        break_it(&file);
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        if why != "no execute bit" {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let said = run_script(&dest, &posix);
        assert!(
            said.contains("relocated") && !said.contains("native"),
            "{why}: {said}"
        );
        // The relocator file is the one thing that differs from the reference.
        std::fs::copy(relocator(), &file).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode | 0o755)).unwrap();
        assert_eq!(tree_snapshot(&dest), reference, "{why}");
    }
}

#[test]
fn a_relocator_that_cannot_serve_the_environment_is_left_out_or_refused() {
    let scratch = Scratch::new();
    let env = small_env(&scratch.path("env"));
    let out = scratch.path("b.tar.zst");
    let stderr = run_fails(
        create_command(&env, &out).args(["--relocator", "Cargo.toml"]),
        1,
    );
    assert!(
        stderr.contains("relocator `Cargo.toml`: not an ELF executable"),
        "{stderr}"
    );
    assert!(!out.exists());
    let stderr = run_fails(
        create_command(&env, &out).args(["--relocator", "/nonexistent/gopack-relocate"]),
        1,
    );
    assert!(stderr.contains("cannot read it"), "{stderr}");

    // Environments the relocator is not built for: left out by default, refused when named.
    for (platform, why) in [
        ("osx-arm64", "can serve only Linux environments"),
        ("linux-s390x", "built for ELF machine"),
    ] {
        let env = SyntheticEnv::new(&scratch.path(platform))
            .platform(platform)
            .text("etc/app.conf", "home=@PREFIX@\n")
            .build();
        let bundle = scratch.path(&format!("{platform}.tar.zst"));
        pack(&env, &bundle, &["-q"]);
        let files = manifest(&bundle)["files"].as_array().unwrap().clone();
        assert!(
            files.iter().all(|file| file["path"] != ".gopack/relocate"),
            "{platform}"
        );
        let stderr = run_fails(
            create_command(&env, &scratch.path(&format!("{platform}-named.tar.zst")))
                .arg("--relocator")
                .arg(relocator()),
            1,
        );
        assert!(stderr.contains(why), "{platform}: {stderr}");
    }
    let stderr = run_fails(
        create_command(&env, &out).args(["--relocator", "x", "--no-relocator"]),
        2,
    );
    assert!(stderr.contains("cannot be used with"), "{stderr}");
}

/// `gopack-relocate` built with a static C runtime, as the README shows (cargo is a no-op when
/// it is up to date; `.ci/run` builds it before the tests).
fn static_relocator() -> PathBuf {
    let target = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let dir = repo().join("target/static-relocator");
    run_ok(
        Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--bin", "gopack-relocate", "--target"])
            .arg(&target)
            .arg("--target-dir")
            .arg(&dir)
            .current_dir(repo())
            .env("RUSTFLAGS", "-C target-feature=+crt-static"),
    );
    dir.join(target).join("debug/gopack-relocate")
}

#[test]
fn a_static_relocator_runs_on_a_host_without_a_c_library() {
    let scratch = Scratch::new();
    let linkage = |path: &Path| {
        let choice = RelocatorChoice {
            path: path.to_path_buf(),
            explicit: true,
        };
        gopack::relocate::carry::check(&choice, &synthetic::host_platform())
            .unwrap()
            .unwrap()
            .linkage
    };
    let built = static_relocator();
    assert_eq!(linkage(&built), Linkage::Static);
    assert_eq!(linkage(&relocator()), Linkage::Dynamic);
    // The host: a static busybox, /dev/null and /dev/zero, and nothing else (no dynamic loader,
    // no C library).
    let busybox = which("busybox");
    assert_eq!(
        linkage(&busybox),
        Linkage::Static,
        "{} is dynamically linked; install Debian's busybox-static (see the README's setup)",
        busybox.display()
    );
    let env = small_env(&scratch.path("env"));
    let mut trees = Vec::new();
    for (name, relocator, native) in [("static", built, true), ("dynamic", relocator(), false)] {
        let bundle = scratch.path(&format!("{name}.tar.zst"));
        let output = create_command(&env, &bundle)
            .arg("--relocator")
            .arg(&relocator)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", text(&output));
        assert_eq!(
            text(&output).contains("dynamically linked"),
            !native,
            "{}",
            text(&output)
        );
        let root = scratch.path(&format!("host-{name}"));
        std::fs::create_dir_all(root.join("bin")).unwrap();
        // Copied by another process: a copy written by this one could be held open for writing
        // by a child another test forks, and would not run (ETXTBSY) until that child execs.
        run_ok(
            Command::new("cp")
                .arg(&busybox)
                .arg(root.join("bin/busybox")),
        );
        for tool in [
            "sh", "awk", "cat", "chmod", "cp", "dd", "ln", "mv", "rm", "touch",
        ] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(tool)).unwrap();
        }
        std::fs::create_dir_all(root.join("dev")).unwrap();
        for (device, minor) in [("null", "3"), ("zero", "5")] {
            run_ok(
                Command::new("mknod")
                    .arg(root.join("dev").join(device))
                    .args(["c", "1", minor]),
            );
        }
        extract(&bundle, &root.join("opt/app"));
        let said = run_ok(
            Command::new(which("chroot"))
                .arg(&root)
                .args(["/bin/sh", "/opt/app/bin/gopack-unpack"])
                .env_clear()
                .env("PATH", "/bin"),
        );
        assert!(said.contains("relocated 3 file(s)"), "{name}: {said}");
        assert_eq!(
            said.contains("(native relocator)"),
            native,
            "{name}: {said}"
        );
        assert_eq!(
            std::fs::read_to_string(root.join("opt/app/etc/app.conf")).unwrap(),
            format!("home=/opt/app\nsibling={}2\n", env.display())
        );
        let mut tree = tree_snapshot(&root.join("opt/app"));
        // Only the relocator and the manifest, which lists its hash, differ.
        tree.retain(|line| {
            !line.starts_with(".gopack/relocate ") && !line.starts_with(".gopack/manifest.json ")
        });
        trees.push(tree);
    }
    assert_eq!(trees[0], trees[1]);
}

#[test]
fn both_engines_refuse_a_recorded_file_that_is_missing_or_a_symlink_and_change_nothing() {
    let scratch = Scratch::new();
    let (_, bundle, posix) = packed_small_env(&scratch);
    let dest = scratch.path("dest");
    for (damage, sh_only) in [
        ("missing", false),
        ("missing", true),
        ("symlink", false),
        ("symlink", true),
    ] {
        let _ = std::fs::remove_dir_all(&dest);
        extract(&bundle, &dest);
        std::fs::remove_file(dest.join("etc/app.conf")).unwrap();
        if damage == "symlink" {
            std::os::unix::fs::symlink("../share/run.sh", dest.join("etc/app.conf")).unwrap();
        }
        let before = tree_snapshot(&dest);
        let output = unpack_script(&dest, &posix, sh_only).output().unwrap();
        let context = format!("{damage}, sh only: {sh_only}: {}", text(&output));
        assert_eq!(output.status.code(), Some(1), "{context}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("etc/app.conf") && stderr.contains("nothing was changed"),
            "{context}"
        );
        assert_eq!(tree_snapshot(&dest), before, "{context}");
    }
}

/// Both engines, the relocator and POSIX sh alone, refuse to relocate `dest`, naming `record`
/// as leading out of the environment, and change nothing in `dest` or in `outside`.
fn assert_both_engines_refuse_a_way_out(dest: &Path, outside: &Path, posix: &Path, record: &str) {
    let before = (tree_snapshot(dest), tree_snapshot(outside));
    for sh_only in [false, true] {
        let output = unpack_script(dest, posix, sh_only).output().unwrap();
        assert_eq!(output.status.code(), Some(1), "{}", text(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(record)
                && stderr.contains("leads out of the environment")
                && stderr.contains("nothing was changed"),
            "sh only: {sh_only}: {stderr}"
        );
        assert_eq!((tree_snapshot(dest), tree_snapshot(outside)), before);
    }
}

#[test]
fn both_engines_refuse_a_recorded_directory_that_leads_out_of_the_environment() {
    let scratch = Scratch::new();
    let (_, bundle, posix) = packed_small_env(&scratch);
    let dest = scratch.path("dest");
    extract(&bundle, &dest);
    // etc/ replaced after extraction by a link to a directory outside, holding the same name.
    let outside = scratch.path("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::rename(dest.join("etc/app.conf"), outside.join("app.conf")).unwrap();
    std::fs::remove_dir(dest.join("etc")).unwrap();
    std::os::unix::fs::symlink(&outside, dest.join("etc")).unwrap();
    assert_both_engines_refuse_a_way_out(&dest, &outside, &posix, "etc/app.conf");
    // A directory linked to another place inside the environment is followed by both.
    let inside = scratch.path("inside");
    extract(&bundle, &inside);
    std::fs::rename(inside.join("etc"), inside.join("etc-real")).unwrap();
    std::os::unix::fs::symlink("etc-real", inside.join("etc")).unwrap();
    for sh_only in [false, true] {
        let copy = scratch.path(&format!("inside-{sh_only}"));
        run_ok(Command::new("cp").arg("-a").arg(&inside).arg(&copy));
        let output = unpack_script(&copy, &posix, sh_only).output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{}", text(&output));
        let conf = std::fs::read_to_string(copy.join("etc-real/app.conf")).unwrap();
        assert!(conf.contains(copy.to_str().unwrap()), "{conf}");
    }
}

#[test]
fn both_engines_refuse_to_link_another_name_through_a_directory_that_leads_out() {
    let scratch = Scratch::new();
    let env = SyntheticEnv::new(&scratch.path("env"))
        .text("etc/app.conf", "home=@PREFIX@\n")
        .dir("share/conf")
        .hard_link("share/conf/app.conf", "etc/app.conf")
        .build();
    let bundle = scratch.path("b.tar.zst");
    pack(&env, &bundle, &["-q"]);
    let posix = posix_bin(&scratch.path("posix"), false);
    let dest = scratch.path("dest");
    extract(&bundle, &dest);
    // share/conf/ replaced by a link to a directory outside: relinking the other name there
    // would write outside the environment.
    let outside = scratch.path("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("app.conf"), "theirs\n").unwrap();
    std::fs::remove_dir_all(dest.join("share/conf")).unwrap();
    std::os::unix::fs::symlink(&outside, dest.join("share/conf")).unwrap();
    assert_both_engines_refuse_a_way_out(&dest, &outside, &posix, "share/conf/app.conf");
}

#[test]
fn the_relocator_refuses_a_binary_string_that_no_longer_lies_inside_its_file() {
    let scratch = Scratch::new();
    let prefix = scratch.path("env");
    let placeholder = format!("/{}", "p".repeat(200));
    // What conda leaves: the placeholder replaced by the prefix, NUL-padded to its length.
    let mut content = b"\x7fELF\0\0\0\0junk\0".to_vec();
    let string = format!("{}/lib", prefix.display());
    content.extend_from_slice(string.as_bytes());
    content.resize(content.len() + placeholder.len() + 4 - string.len(), 0);
    content.extend_from_slice(b"tail\0");
    let env = SyntheticEnv::new(&prefix)
        .binary_file("lib/libdata.so", content, &placeholder, 0o644)
        .build();
    let bundle = scratch.path("b.tar.zst");
    pack(&env, &bundle, &["-q"]);
    assert!(
        !manifest(&bundle)["relocation"]["binary"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let posix = posix_bin(&scratch.path("posix"), false);
    let dest = scratch.path("dest");
    extract(&bundle, &dest);
    // Cut short after extraction: the recorded string now lies past its end.
    std::fs::write(dest.join("lib/libdata.so"), b"\x7fELF\0").unwrap();
    let before = tree_snapshot(&dest);
    let output = unpack_script(&dest, &posix, false).output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("lib/libdata.so")
            && stderr.contains("does not lie inside the file")
            && stderr.contains("nothing was changed"),
        "{stderr}"
    );
    assert_eq!(tree_snapshot(&dest), before);
}
