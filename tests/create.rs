//! `gopack create`: contents, manifest, determinism and formats on a real fixture environment;
//! filters, the checks' errors (exit code, message, no output left), finding envs by name, huge
//! files and interruption on small synthetic ones.

use std::process::Command;

use crate::util::synthetic::{SyntheticEnv, host_platform};
use crate::util::*;

#[test]
fn real_env_packs_with_a_complete_manifest() {
    let scratch = Scratch::new();
    let env = shared_env(&[]);
    let bundle = scratch.path("env.tar.zst");
    pack(&env, &bundle, &["-q"]);
    let manifest = manifest(&bundle);
    assert_eq!(manifest["format_version"], 1);
    assert_eq!(manifest["platform"], host_platform());
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
fn real_env_two_packs_are_byte_identical_whatever_the_thread_count() {
    let scratch = Scratch::new();
    let env = shared_env(&[]);
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
    let env = SyntheticEnv::new(&scratch.path("env"))
        .file("bin/python3.11", b"\x7fELF not really", 0o755)
        .text("etc/a.conf", "root=@PREFIX@\n")
        .build();
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
    let env = SyntheticEnv::new(&scratch.path("env"))
        .text("include/python3.11/Python.h", "/* h */")
        .text("lib/python3.11/site-packages/numpy/__init__.py", "")
        .text("lib/python3.11/site-packages/numpy/version.py", "")
        .build();
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
    let env = SyntheticEnv::new(&scratch.path("env"))
        .dir("share/hello")
        .build();
    {
        use std::os::unix::ffi::OsStrExt;
        let name = std::ffi::OsStr::from_bytes(b"caf\xe9.txt");
        std::fs::write(env.join("share/hello").join(name), b"caf\xe9").unwrap();
    }
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
    let env = SyntheticEnv::new(&scratch.path("env"))
        .text("lib/python3.11/site-packages/numpy/__init__.py", "")
        .missing("lib/python3.11/site-packages/numpy/py.typed")
        .build();
    let bundle = scratch.path("b.tar.zst");
    let stderr = run_fails(&mut create_command(&env, &bundle), 1);
    assert!(
        stderr.contains("synthetic-1.0-0: lib/python3.11/site-packages/numpy/py.typed"),
        "{stderr}"
    );
    assert!(stderr.contains("--ignore-missing-files"), "{stderr}");
    assert!(!bundle.exists());
    assert_no_leftovers(scratch.dir.path());
    run_ok(create_command(&env, &bundle).arg("--ignore-missing-files"));
    assert!(bundle.is_file());
}

#[test]
fn editable_installs_are_refused_unless_ignored() {
    let scratch = Scratch::new();
    let site = "lib/python3.11/site-packages";
    for (variant, file, content) in [
        ("editable", "__editable__.mypkg-0.1.pth", "/tmp/src/mypkg\n"),
        ("egg-link", "oldpkg.egg-link", "/tmp/src/oldpkg\n."),
        ("pth", "easy-install.pth", "/tmp/src/elsewhere\n"),
    ] {
        let env = SyntheticEnv::new(&scratch.path(variant))
            .text(&format!("{site}/{file}"), content)
            .build();
        let bundle = scratch.path(&format!("{variant}.tar.zst"));
        let stderr = run_fails(&mut create_command(&env, &bundle), 1);
        assert!(stderr.contains("editable"), "{stderr}");
        assert!(stderr.contains(file), "{stderr}");
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
    let env = SyntheticEnv::new(&scratch.path("env")).build();
    std::fs::write(
        env.join("conda-meta/broken-1.0-0.json"),
        "{\n  \"name\": \"broken\",\n  \"version\": \"1.0\"\n  \"build\": \"0\",\n  \"files\": []\n}\n",
    )
    .unwrap();
    let bundle = scratch.path("b.tar.zst");
    let stderr = run_fails(&mut create_command(&env, &bundle), 1);
    assert!(stderr.contains("conda-meta/broken-1.0-0.json"), "{stderr}");
    assert!(stderr.contains("line 4"), "{stderr}");
    assert!(!bundle.exists());
}

#[test]
fn output_errors_and_special_files() {
    let scratch = Scratch::new();
    let env = SyntheticEnv::new(&scratch.path("env"))
        .text("etc/a.conf", "x")
        .dir("var/hello")
        .build();
    run_ok(Command::new("mkfifo").arg(env.join("var/hello/pipe")));
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
    assert!(stderr.contains("does not exist"), "{stderr}");
    let stderr = run_fails(
        gopack()
            .arg("create")
            .arg("-p")
            .arg(scratch.path("env/etc"))
            .arg("-o")
            .arg(scratch.path("x.tar.zst")),
        1,
    );
    assert!(stderr.contains("not a conda environment"), "{stderr}");
    run_fails(gopack().arg("create").arg("--bogus"), 2);
    let stderr = run_fails(
        create_command(&env, &scratch.path("x.zip")).args(["--format", "zip"]),
        2,
    );
    assert!(
        stderr.contains("tar.zst") && stderr.contains("tar.gz"),
        "{stderr}"
    );
    assert!(!stderr.contains(".tzst"), "{stderr}");
}

#[test]
fn environments_are_found_by_name_without_conda() {
    let scratch = Scratch::new();
    let home = scratch.path("home");
    std::fs::create_dir_all(&home).unwrap();
    let env = SyntheticEnv::new(&scratch.path("store/envs/ml")).build();
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

/// A synthetic environment with an 8.5 GiB sparse file (a few KiB on disk).
fn env_with_sparse_file(scratch: &Scratch) -> (std::path::PathBuf, u64) {
    let env = SyntheticEnv::new(&scratch.path("env"))
        .text("share/big/sparse.bin", "gopack-sparse-head\n")
        .build();
    let size = (8 << 30) + (512 << 20);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(env.join("share/big/sparse.bin"))
        .unwrap();
    file.set_len(size).unwrap();
    (env, size)
}

#[test]
fn huge_file_over_8_gib_round_trips_with_pax_size() {
    let scratch = Scratch::new();
    let (env, size) = env_with_sparse_file(&scratch);
    let bundle = scratch.path("b.tar.zst");
    pack(&env, &bundle, &["-q", "--compress-level", "1"]);
    let listing = run_ok(Command::new("tar").arg("-tvf").arg(&bundle));
    let line = listing
        .lines()
        .find(|l| l.ends_with("share/big/sparse.bin"))
        .unwrap();
    assert!(size > 8 << 30);
    assert!(line.contains(&size.to_string()), "{line}");
}

#[test]
fn huge_file_json_summary_and_ctrl_c_leave_nothing_behind() {
    let scratch = Scratch::new();
    let (env, _) = env_with_sparse_file(&scratch);
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
    assert_eq!(summary["platform"], host_platform());
    assert_eq!(summary["conda_packages"], 1);

    // The 8.5 GiB sparse file keeps gopack busy; it is interrupted once the partial bundle
    // exists (an event, not a delay).
    let interrupted = scratch.path("out/interrupted.tar.zst");
    std::fs::create_dir_all(scratch.path("out")).unwrap();
    let child = create_command(&env, &interrupted)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    interrupt_while_writing(child, &interrupted, libc::SIGINT);
}

#[test]
fn bytecode_holding_the_prefix_is_counted_in_the_summary_not_warned_about() {
    let scratch = Scratch::new();
    let env = SyntheticEnv::new(&scratch.path("env"))
        .text("lib/mod.py", "X = 1\n")
        .file(
            "lib/__pycache__/mod.cpython-311.pyc",
            b"\xa7\r\r\n\0\0\0\0@PREFIX@/lib/mod.py",
            0o644,
        )
        .build();
    let output = create_command(&env, &scratch.path("b.tar.zst"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("warning"), "{stderr}");
    assert!(
        stderr.contains("1 bytecode files keep the old path"),
        "{stderr}"
    );
}

/// A relative path of exactly `len` bytes (components of at most 200 bytes).
fn path_of_len(len: usize, tag: char) -> String {
    let mut parts = Vec::new();
    let mut left = len;
    while left > 201 {
        parts.push("d".repeat(150));
        left -= 151;
    }
    parts.push(tag.to_string().repeat(left));
    parts.join("/")
}

#[test]
fn names_and_link_targets_at_every_tar_header_boundary_round_trip() {
    let scratch = Scratch::new();
    let mut env = SyntheticEnv::new(&scratch.path("env"));
    let lengths = [99, 100, 101, 154, 155, 156, 255, 256, 257, 400];
    let mut names = Vec::new();
    for (index, len) in lengths.iter().enumerate() {
        let name = path_of_len(*len, (b'a' + index as u8) as char);
        assert_eq!(name.len(), *len);
        env = env.text(&name, &format!("{len}\n"));
        names.push(name);
    }
    for len in [99, 100, 101, 300] {
        let target = "t".repeat(len);
        env = env.symlink(&format!("links/l{len}"), &target);
    }
    let env = env.build();
    let bundle = scratch.path("b.tar.zst");
    pack(&env, &bundle, &["-q"]);
    // GNU tar reads every name and target back exactly.
    let listing = run_ok(Command::new("tar").arg("-tf").arg(&bundle));
    for name in &names {
        assert!(
            listing.lines().any(|line| line == name),
            "{} bytes: not listed",
            name.len()
        );
    }
    let out = scratch.path("tar-out");
    extract(&bundle, &out);
    let native = scratch.path("native-out");
    run_ok(gopack().arg("unpack").arg(&bundle).arg("-d").arg(&native));
    for root in [&out, &native] {
        for (name, len) in names.iter().zip(lengths) {
            assert_eq!(
                std::fs::read_to_string(root.join(name)).unwrap(),
                format!("{len}\n")
            );
        }
        for len in [99, 100, 101, 300] {
            assert_eq!(
                std::fs::read_link(root.join(format!("links/l{len}"))).unwrap(),
                std::path::PathBuf::from("t".repeat(len))
            );
        }
    }
}

#[test]
fn progress_on_a_terminal_starts_as_a_spinner_and_never_guesses_an_eta() {
    let scratch = Scratch::new();
    let env = SyntheticEnv::new(&scratch.path("env"))
        .text("etc/a.conf", "x")
        .build();
    let bundle = scratch.path("b.tar.zst");
    // `script` gives gopack a terminal on stderr.
    let command = format!(
        "{} create -p '{}' -o '{}'",
        env!("CARGO_BIN_EXE_gopack"),
        env.display(),
        bundle.display()
    );
    let out = run_ok(
        Command::new(which("script"))
            .args(["-qec", &command, "/dev/null"])
            .env("COLUMNS", "80")
            .env_remove("GOPACK_NO_PROGRESS"),
    );
    assert!(bundle.is_file(), "{out}");
    assert!(out.contains("packed"), "{out}");
    assert!(!out.contains("0 B/0 B"), "{out}");
    assert!(!out.contains("eta"), "{out}");
}
