//! `gopack create` on fixture environments: contents, manifest, determinism, formats, filters,
//! the checks' errors (exit code, message, no output left), and finding envs by name.

use std::process::Command;

use crate::util::*;

fn files_named<'a>(manifest: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == path)
}

#[test]
fn packs_the_environment_with_a_complete_manifest() {
    let scratch = Scratch::new();
    let env = scratch.env("env", &[]);
    let bundle = scratch.path("env.tar.zst");
    pack(&env, &bundle, &["-q"]);
    let manifest = manifest(&bundle);
    assert_eq!(manifest["format_version"], 1);
    assert_eq!(manifest["platform"], "linux-64");
    assert_eq!(manifest["source_prefix"], env.to_str().unwrap());
    let names: Vec<&str> = manifest["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for expected in ["python", "numpy", "pip", "hello-c"] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    let pip = &manifest["pip_packages"][0];
    assert_eq!(pip["name"], "gopack-demo-tool");
    assert_eq!(pip["installer"], "pip");

    // Every packed file's sha256 is the sha256 of what the archive holds.
    let out = scratch.path("out");
    extract(&bundle, &out);
    for file in manifest["files"].as_array().unwrap() {
        if file["type"] == "file" {
            let path = out.join(file["path"].as_str().unwrap());
            assert_eq!(
                sha256_file(&path),
                file["sha256"].as_str().unwrap(),
                "{}",
                path.display()
            );
        }
    }
    // Symlinks stay symlinks; the absolute one into the prefix became relative.
    assert_eq!(
        files_named(&manifest, "bin/python3").unwrap()["target"],
        "python3.11"
    );
    assert_eq!(
        std::fs::read_link(out.join("lib/libhello-abs.so"))
            .unwrap()
            .to_str(),
        Some("libhello.so.1")
    );
    // The hard link is a tar hard link.
    let hardlink = files_named(&manifest, "share/hello/greeting-hardlink.txt")
        .or_else(|| files_named(&manifest, "share/hello/greeting.txt"))
        .unwrap();
    assert!(hardlink["type"] == "hardlink" || hardlink["type"] == "file");
    assert_eq!(manifest["totals"]["hardlinks"], 1);
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(out.join("share/hello/greeting.txt"))
            .unwrap()
            .nlink(),
        2
    );
    // Empty directories are kept.
    assert!(out.join("var/hello/empty").is_dir());
    // conda-meta records no longer point at the packing machine's package cache.
    for record in std::fs::read_dir(out.join("conda-meta")).unwrap().flatten() {
        let text = std::fs::read_to_string(record.path()).unwrap();
        if record.path().extension().is_some_and(|e| e == "json") {
            assert!(
                !text.contains("extracted_package_dir"),
                "{}",
                record.path().display()
            );
            assert!(
                !text.contains("fixture-cache"),
                "{}",
                record.path().display()
            );
        }
    }
    // The scripts that make the bundle usable without gopack are there.
    for script in [
        "bin/gopack-unpack",
        "bin/activate",
        "bin/deactivate",
        "bin/activate.fish",
    ] {
        assert!(out.join(script).is_file(), "{script}");
    }
}

#[test]
fn two_packs_are_byte_identical_whatever_the_thread_count() {
    let scratch = Scratch::new();
    let env = scratch.env("env", &[]);
    let first = scratch.path("a.tar.zst");
    let second = scratch.path("b.tar.zst");
    pack(&env, &first, &["-q", "-j", "1"]);
    pack(&env, &second, &["-q", "-j", "2"]);
    assert_eq!(sha256_file(&first), sha256_file(&second));
    // The archive itself holds no owner names or pack-time clock.
    let listing = run_ok(
        Command::new("tar")
            .arg("--numeric-owner")
            .arg("-tvf")
            .arg(&first),
    );
    assert!(
        listing.lines().all(|line| line.contains(" 0/0 ")),
        "{listing}"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&first).unwrap().permissions().mode() & 0o777,
        0o644
    );
}

#[test]
fn gzip_and_plain_tar_formats() {
    let scratch = Scratch::new();
    let env = scratch.env("env", &[]);
    let rooted = scratch.path("rooted.tar.zst");
    pack(&env, &rooted, &["-q", "--arcroot", "/opt-app/env/"]);
    let listing = run_ok(Command::new("tar").arg("-tf").arg(&rooted));
    assert!(
        listing.lines().all(|line| line.starts_with("opt-app/env/")),
        "{}",
        &listing[..300]
    );
    assert!(listing.contains("opt-app/env/bin/python3.11\n"));
    assert_eq!(manifest(&rooted)["source_prefix"], env.to_str().unwrap());
    let dest = scratch.path("rooted-out");
    run_ok(
        gopack()
            .arg("unpack")
            .arg("-q")
            .arg(&rooted)
            .arg("-d")
            .arg(&dest),
    );
    assert!(dest.join("bin/python3.11").is_file() && dest.join(".gopack/prefix").is_file());
    for (name, flags) in [
        ("b.tar.gz", vec!["-q"]),
        ("b.tgz", vec!["-q", "--compress-level", "1"]),
        ("b.tar", vec!["-q"]),
        ("b.bin", vec!["-q", "--format", "tar.gz"]),
    ] {
        let bundle = scratch.path(name);
        pack(&env, &bundle, &flags);
        let listing = run_ok(Command::new("tar").arg("-tf").arg(&bundle));
        assert!(
            listing.starts_with(".gopack/\n.gopack/manifest.json\n"),
            "{name}: {}",
            &listing[..200]
        );
        assert!(listing.contains("bin/python3.11\n"));
    }
    let stderr = run_fails(
        gopack()
            .args(["create", "-p"])
            .arg(&env)
            .arg("-o")
            .arg(scratch.path("b.zip")),
        2,
    );
    assert!(stderr.contains("supported: .tar.zst"), "{stderr}");
    let stderr = run_fails(
        gopack()
            .args(["create", "--compress-level", "30", "-p"])
            .arg(&env)
            .arg("-o")
            .arg(scratch.path("c.tar.zst")),
        2,
    );
    assert!(stderr.contains("1 to 22"), "{stderr}");
}

#[test]
fn exclude_and_include_rules_apply_in_order() {
    let scratch = Scratch::new();
    let env = scratch.env("env", &[]);
    let bundle = scratch.path("b.tar.zst");
    pack(
        &env,
        &bundle,
        &[
            "-q",
            "--exclude",
            "include/**",
            "--exclude",
            "lib/python3.11/site-packages/numpy",
            "--include",
            "lib/python3.11/site-packages/numpy/__init__.py",
        ],
    );
    let listing = run_ok(Command::new("tar").arg("-tf").arg(&bundle));
    assert!(!listing.contains("include/python3.11/Python.h"));
    assert!(listing.contains("lib/python3.11/site-packages/numpy/__init__.py\n"));
    assert!(!listing.contains("lib/python3.11/site-packages/numpy/version.py"));
}

#[test]
fn odd_names_long_paths_and_non_utf8_round_trip() {
    let scratch = Scratch::new();
    let env = scratch.env("env", &["--variant", "non-utf8-name"]);
    let odd = env.join("share/odd");
    std::fs::create_dir_all(&odd).unwrap();
    std::fs::write(odd.join("new\nline"), b"n").unwrap();
    let deep = odd
        .join("d".repeat(90))
        .join("e".repeat(90))
        .join("f".repeat(90));
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(deep.join("file-with-a-long-name.txt"), b"deep").unwrap();
    std::os::unix::fs::symlink("../".repeat(3) + &"x".repeat(120), deep.join("long-link")).unwrap();
    let bundle = scratch.path("b.tar.zst");
    pack(&env, &bundle, &["-q"]);
    let out = scratch.path("out");
    extract(&bundle, &out);
    use std::os::unix::ffi::OsStrExt;
    let cafe = std::ffi::OsStr::from_bytes(b"caf\xe9.txt");
    assert!(out.join("share/hello").join(cafe).is_file());
    assert_eq!(
        std::fs::read(out.join("share/odd/new\nline")).unwrap(),
        b"n"
    );
    let deep_out = out.join(deep.strip_prefix(&env).unwrap());
    assert_eq!(
        std::fs::read(deep_out.join("file-with-a-long-name.txt")).unwrap(),
        b"deep"
    );
    assert_eq!(
        std::fs::read_link(deep_out.join("long-link")).unwrap(),
        std::fs::read_link(deep.join("long-link")).unwrap()
    );
    // The manifest records the non-UTF-8 name losslessly.
    let manifest = manifest(&bundle);
    assert!(
        manifest["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["path"]["hex"] == hex::encode(b"share/hello/caf\xe9.txt"))
    );
}

#[test]
fn missing_managed_files_fail_cleanly_unless_ignored() {
    let scratch = Scratch::new();
    let env = scratch.env("env", &["--variant", "missing-file"]);
    let bundle = scratch.path("b.tar.zst");
    let stderr = run_fails(&mut create_command(&env, &bundle), 1);
    assert!(
        stderr.contains("numpy-2.1.3-py311h_gopack_0: lib/python3.11/site-packages/numpy/py.typed"),
        "{stderr}"
    );
    assert!(stderr.contains("--ignore-missing-files"), "{stderr}");
    assert!(!bundle.exists());
    assert_no_leftovers(scratch.dir.path());
    let out = run_ok(create_command(&env, &bundle).arg("--ignore-missing-files"));
    let _ = out;
    assert!(bundle.is_file());
}

#[test]
fn editable_installs_are_refused_unless_ignored() {
    let scratch = Scratch::new();
    for variant in ["editable", "egg-link"] {
        let env = scratch.env(variant, &["--variant", variant]);
        let bundle = scratch.path(&format!("{variant}.tar.zst"));
        let stderr = run_fails(&mut create_command(&env, &bundle), 1);
        assert!(stderr.contains("editable"), "{stderr}");
        let expected = if variant == "editable" {
            "__editable__.mypkg-0.1.pth"
        } else {
            "oldpkg.egg-link"
        };
        assert!(stderr.contains(expected), "{stderr}");
        assert!(!bundle.exists());
        let output = create_command(&env, &bundle)
            .arg("--ignore-editable-packages")
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", text(&output));
        assert!(
            String::from_utf8_lossy(&output.stderr)
                .contains("warning: editable installs packed as they are")
        );
    }
    assert_no_leftovers(scratch.dir.path());
}

#[test]
fn malformed_record_names_file_line_and_column() {
    let scratch = Scratch::new();
    let env = scratch.env("env", &["--variant", "malformed-record"]);
    let bundle = scratch.path("b.tar.zst");
    let stderr = run_fails(&mut create_command(&env, &bundle), 1);
    assert!(stderr.contains("conda-meta/broken-1.0-0.json"), "{stderr}");
    assert!(stderr.contains("line 4"), "{stderr}");
    assert!(!bundle.exists());
}

#[test]
fn output_errors_and_special_files() {
    let scratch = Scratch::new();
    let env = scratch.env("env", &["--variant", "fifo"]);
    let bundle = scratch.path("b.tar.zst");
    let output = create_command(&env, &bundle).output().unwrap();
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("var/hello/pipe"),
        "{}",
        text(&output)
    );
    let before = sha256_file(&bundle);
    let stderr = run_fails(&mut create_command(&env, &bundle), 1);
    assert!(
        stderr.contains("already exists") && stderr.contains("--force"),
        "{stderr}"
    );
    assert_eq!(sha256_file(&bundle), before);
    pack(&env, &bundle, &["-q", "--force"]);
    let stderr = run_fails(
        &mut create_command(&env, &scratch.path("nope/b.tar.zst")),
        1,
    );
    assert!(
        stderr.contains("nope") && stderr.contains("does not exist"),
        "{stderr}"
    );
    let stderr = run_fails(
        gopack()
            .arg("create")
            .arg("-p")
            .arg(scratch.path("nope"))
            .arg("-o")
            .arg(scratch.path("x.tar.zst")),
        1,
    );
    assert!(stderr.contains("not a conda environment"), "{stderr}");
    run_fails(gopack().arg("create").arg("--bogus"), 2);
}

#[test]
fn environments_are_found_by_name_without_conda() {
    let scratch = Scratch::new();
    let home = scratch.path("home");
    std::fs::create_dir_all(&home).unwrap();
    let env = scratch.env("store/envs/ml", &[]);
    std::fs::write(
        home.join(".condarc"),
        format!(
            "channels: [conda-forge]\nenvs_dirs:\n  - {}\n",
            env.parent().unwrap().display()
        ),
    )
    .unwrap();
    let bundle = scratch.path("ml.tar.zst");
    let isolated = |command: &mut Command| {
        command
            .env("HOME", &home)
            .env_remove("CONDA_PREFIX")
            .env_remove("CONDA_ENVS_PATH")
            .env_remove("CONDA_ENVS_DIRS")
            .env_remove("CONDARC")
            .env_remove("CONDA_EXE")
            .env_remove("MAMBA_ROOT_PREFIX")
            .env_remove("CONDA_ROOT")
            .current_dir(scratch.dir.path());
    };
    let mut command = gopack();
    isolated(
        command
            .args(["create", "-q", "-n", "ml", "-o"])
            .arg(&bundle),
    );
    run_ok(&mut command);
    assert_eq!(manifest(&bundle)["source_prefix"], env.to_str().unwrap());
    let mut command = gopack();
    isolated(
        command
            .args(["create", "-n", "nosuch", "-o"])
            .arg(scratch.path("x.tar.zst")),
    );
    let stderr = run_fails(&mut command, 1);
    assert!(
        stderr.contains("no conda environment named `nosuch`"),
        "{stderr}"
    );
    assert!(stderr.contains("environments found: ml"), "{stderr}");
    let mut command = gopack();
    isolated(
        command
            .args(["create", "-o"])
            .arg(scratch.path("x.tar.zst")),
    );
    let stderr = run_fails(&mut command, 1);
    assert!(stderr.contains("CONDA_PREFIX"), "{stderr}");
}

#[test]
fn sparse_file_over_8_gib_round_trips_with_pax_size() {
    let scratch = Scratch::new();
    let env = scratch.env("env", &["--variant", "sparse-file"]);
    let bundle = scratch.path("b.tar.zst");
    pack(
        &env,
        &bundle,
        &["-q", "--exclude", "lib/**", "--exclude", "include/**"],
    );
    let listing = run_ok(Command::new("tar").arg("-tvf").arg(&bundle));
    let line = listing
        .lines()
        .find(|l| l.ends_with("share/big/sparse.bin"))
        .unwrap();
    let size = std::fs::metadata(env.join("share/big/sparse.bin"))
        .unwrap()
        .len();
    assert!(size > 8 << 30);
    assert!(line.contains(&size.to_string()), "{line}");
}

#[test]
fn json_summary_and_ctrl_c_leave_nothing_behind() {
    let scratch = Scratch::new();
    let env = scratch.env("env", &["--variant", "sparse-file"]);
    let bundle = scratch.path("small.tar.zst");
    let out = run_ok(
        gopack()
            .args(["create", "--json", "--exclude", "share/big", "-p"])
            .arg(&env)
            .arg("-o")
            .arg(&bundle),
    );
    let summary: serde_json::Value =
        serde_json::from_str(&out).expect("--json prints JSON on stdout");
    assert_eq!(summary["bundle"]["path"], bundle.to_str().unwrap());
    assert_eq!(
        summary["bundle"]["size"],
        std::fs::metadata(&bundle).unwrap().len()
    );
    assert_eq!(summary["platform"], "linux-64");
    assert!(summary["conda_packages"].as_u64().unwrap() >= 4);

    // The 8.5 GiB sparse file keeps gopack busy long enough to interrupt it.
    let interrupted = scratch.path("interrupted.tar.zst");
    let child = create_command(&env, &interrupted)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    run_ok(Command::new("kill").args(["-INT", &child.id().to_string()]));
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("interrupted"),
        "{}",
        text(&output)
    );
    assert!(!interrupted.exists());
    assert_no_leftovers(scratch.dir.path());
}
