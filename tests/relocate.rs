//! The promise: a bundle extracted anywhere (a longer path, a path with spaces) on a host with
//! no Python, conda or gopack works after `bin/gopack-unpack` under dash or busybox sh with only
//! POSIX tools on PATH, keeps working once the original environment is gone, and relocates
//! again after another move.

use std::path::Path;
use std::process::Command;

use crate::util::*;

/// Runs `bin/gopack-unpack` of `prefix` with `shell` and a PATH holding only POSIX tools; with
/// `sh_only`, without the native relocator the bundle carries.
fn unpack_with(shell: &[&str], prefix: &Path, posix: &Path, sh_only: bool) -> String {
    let mut command = Command::new(shell[0]);
    command
        .args(&shell[1..])
        .arg(prefix.join("bin/gopack-unpack"));
    command.env_clear().env("PATH", posix);
    if sh_only {
        command.env("GOPACK_UNPACK_SH", "1");
    }
    let out = run_ok(&mut command);
    if !out.contains("already relocated") {
        assert_eq!(out.contains("(native relocator)"), !sh_only, "{out}");
    }
    out
}

/// Runs a program of the environment with a clean environment (no PATH entry for it).
fn in_env(program: &Path, args: &[&str]) -> String {
    run_ok(bare_host(Command::new(program).args(args)))
}

fn check_environment(prefix: &Path, check_config_script: bool) {
    let python = prefix.join("bin/python3");
    let out = in_env(
        &python,
        &[
            "-c",
            "import numpy, ssl, sqlite3, sys, sysconfig; \
             print(sys.prefix); print(sysconfig.get_config_var('prefix')); \
             print(numpy.__file__); print(int(numpy.arange(10).sum()))",
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    let prefix_text = prefix.to_str().unwrap();
    assert_eq!(lines[0], prefix_text, "sys.prefix");
    assert_eq!(lines[1], prefix_text, "sysconfig prefix");
    assert!(lines[2].starts_with(prefix_text), "numpy from {}", lines[2]);
    assert_eq!(lines[3], "45");
    if check_config_script {
        // CPython's own python-config script breaks on paths with spaces (it runs
        // `cd $(dirname "$0")` unquoted), so it is checked where the path has none.
        assert_eq!(
            in_env(&prefix.join("bin/python3.11-config"), &["--prefix"]).trim(),
            prefix_text
        );
    }
    let hello = in_env(&prefix.join("bin/hello"), &[]);
    assert!(
        hello.starts_with("hello from libhello: Greetings"),
        "{hello}"
    );
    assert_eq!(
        in_env(&prefix.join("bin/hello"), &["--prefix"]).trim(),
        prefix_text
    );
    assert_eq!(
        in_env(&prefix.join("bin/hello-py"), &[]).trim(),
        prefix_text
    );
    assert!(in_env(&prefix.join("bin/hello-py-unbuffered"), &[]).contains(prefix_text));
    assert!(
        in_env(&prefix.join("bin/demo-tool"), &[]).contains(&format!("demo-tool ok {prefix_text}"))
    );
    assert!(in_env(&prefix.join("bin/hello-sh"), &[]).contains("Greetings"));
    let conf = std::fs::read_to_string(prefix.join("etc/hello/hello.conf")).unwrap();
    assert!(conf.contains(prefix_text), "{conf}");
}

fn check_go(prefix: &Path) {
    let out = run_ok(bare_host(
        Command::new(prefix.join("bin/go")).args(["env", "GOROOT"]),
    ));
    assert_eq!(out.trim(), prefix.join("go").to_str().unwrap());
    assert_eq!(
        std::fs::read_link(prefix.join("bin/go")).unwrap().to_str(),
        Some("../go/bin/go")
    );
}

fn activate_round_trip(shell: &str, prefix: &Path) {
    let script = format!(
        "PS1='$ '; before=\"$PATH\"; . '{p}/bin/activate' || exit 9; \
         echo \"prefix=$CONDA_PREFIX\"; echo \"state=$GOPACK_STATE_VAR\"; echo \"hello=$HELLO_ACTIVATED\"; \
         echo \"toolchain=$GOTOOLCHAIN\"; echo \"ps1=$PS1\"; command -v python3; \
         deactivate; [ \"$PATH\" = \"$before\" ] && echo path-restored; \
         echo \"after=${{CONDA_PREFIX-unset}} ${{GOPACK_STATE_VAR-unset}} ${{GOTOOLCHAIN-unset}}\"; echo \"ps1=$PS1\"",
        p = prefix.display()
    );
    let out = run_ok(bare_host(Command::new(shell).arg("-c").arg(&script)));
    let prefix_text = prefix.to_str().unwrap();
    assert!(
        out.contains(&format!("prefix={prefix_text}\n")),
        "{shell}: {out}"
    );
    assert!(out.contains("state=from-state\n"), "{shell}: {out}");
    assert!(out.contains("hello=1\n"), "{shell}: {out}");
    assert!(out.contains("toolchain=local\n"), "{shell}: {out}");
    assert!(
        out.contains(&format!("{prefix_text}/bin/python3\n")),
        "{shell}: {out}"
    );
    assert!(out.contains("path-restored\n"), "{shell}: {out}");
    assert!(out.contains("after=unset unset unset\n"), "{shell}: {out}");
    assert!(out.ends_with("ps1=$ \n"), "{shell}: {out}");
}

fn fish_round_trip(prefix: &Path) {
    let script = format!(
        "set before (string join : $PATH); source '{p}/bin/activate.fish'; or exit 9; \
         echo \"prefix=$CONDA_PREFIX\"; echo \"state=$GOPACK_STATE_VAR\"; echo \"toolchain=$GOTOOLCHAIN\"; \
         command -v python3; deactivate; \
         test (string join : $PATH) = $before; and echo path-restored; \
         set -q CONDA_PREFIX; or echo prefix-unset; set -q GOPACK_STATE_VAR; or echo state-unset",
        p = prefix.display()
    );
    let out = run_ok(bare_host(
        Command::new(which("fish"))
            .arg("--no-config")
            .arg("-c")
            .arg(&script),
    ));
    let prefix_text = prefix.to_str().unwrap();
    for expected in [
        format!("prefix={prefix_text}"),
        "state=from-state".into(),
        "toolchain=local".into(),
        format!("{prefix_text}/bin/python3"),
        "path-restored".into(),
        "prefix-unset".into(),
        "state-unset".into(),
    ] {
        assert!(
            out.lines().any(|line| line == expected),
            "fish: missing {expected:?} in\n{out}"
        );
    }
}

#[test]
fn real_env_bundle_relocates_anywhere_without_python_and_again_after_a_move() {
    let scratch = Scratch::new();
    // --smoke: the environment works (Python, C program, scripts, Go) before gopack touches it.
    let env = scratch.env("src/env", &["--go", "--smoke"]);
    let bundle = scratch.path("env.tar.zst");
    pack(&env, &bundle, &["-q"]);
    let posix = posix_bin(&scratch.path("posix-bin"), false);
    let busybox = posix_bin(&scratch.path("busybox-bin"), true);

    let longer =
        scratch.path("a-much-longer-destination-directory/for/the/relocated/environment/env");
    let spaced = scratch.path("dest with spaces/env");
    extract(&bundle, &longer);
    extract(&bundle, &spaced);
    // The native relocator the bundle carries here, POSIX sh alone there.
    let out = unpack_with(&["/usr/bin/dash"], &longer, &posix, false);
    assert!(out.contains("relocated"), "{out}");
    let out = unpack_with(
        &[which("busybox").to_str().unwrap(), "sh"],
        &spaced,
        &busybox,
        true,
    );
    assert!(out.contains("relocated"), "{out}");
    // Running it again is a no-op.
    let out = unpack_with(&["/usr/bin/dash"], &longer, &posix, false);
    assert!(out.contains("already relocated"), "{out}");

    // The original environment is gone: nothing may still point at it.
    let away = scratch.path("src/env-moved-away");
    std::fs::rename(&env, &away).unwrap();
    check_environment(&longer, true);
    check_environment(&spaced, false);
    check_go(&longer);
    check_go(&spaced);
    for shell in ["bash", "dash", "zsh", "ksh"] {
        activate_round_trip(shell, &longer);
    }
    activate_round_trip("bash", &spaced);
    fish_round_trip(&spaced);

    // Move again; activation notices and relocates first, and so does gopack-unpack.
    let moved = scratch.path("moved/again/env");
    std::fs::create_dir_all(moved.parent().unwrap()).unwrap();
    std::fs::rename(&longer, &moved).unwrap();
    activate_round_trip("bash", &moved);
    check_environment(&moved, true);
    let moved2 = scratch.path("moved/once more/env");
    std::fs::create_dir_all(moved2.parent().unwrap()).unwrap();
    std::fs::rename(&moved, &moved2).unwrap();
    let out = unpack_with(
        &[which("busybox").to_str().unwrap(), "sh"],
        &moved2,
        &busybox,
        false,
    );
    assert!(out.contains("relocated"), "{out}");
    check_environment(&moved2, false);
    check_go(&moved2);
}

#[test]
fn real_env_a_target_too_long_for_binary_strings_changes_nothing() {
    let scratch = Scratch::new();
    let env = shared_env(&[]);
    let bundle = scratch.path("env.tar.zst");
    pack(&env, &bundle, &["-q"]);
    // bin/hello was built under a 255-byte placeholder: its strings have room for 255 bytes.
    let too_long = scratch.path(&format!("{}/env", "d".repeat(250)));
    extract(&bundle, &too_long);
    let before = tree_snapshot(&too_long);
    let posix = posix_bin(&scratch.path("posix-bin"), false);
    for sh_only in [false, true] {
        let output = unpack_script(&too_long, &posix, sh_only).output().unwrap();
        assert_eq!(output.status.code(), Some(1), "{}", text(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("too long") && stderr.contains("bin/hello"),
            "{stderr}"
        );
        assert!(stderr.contains("nothing was changed"), "{stderr}");
        assert_eq!(tree_snapshot(&too_long), before);
    }
}

#[test]
fn real_env_dest_prefix_relocates_at_pack_time() {
    let scratch = Scratch::new();
    let env = scratch.env("src/env", &[]);
    let target = scratch.path("known target/with a longer path/env");
    let bundle = scratch.path("env.tar.zst");
    pack(
        &env,
        &bundle,
        &["-q", "--dest-prefix", target.to_str().unwrap()],
    );
    extract(&bundle, &target);
    std::fs::rename(&env, scratch.path("src/gone")).unwrap();
    // No unpack step: it works as extracted.
    check_environment(&target, false);
    let posix = posix_bin(&scratch.path("posix-bin"), false);
    let out = unpack_with(&["/usr/bin/dash"], &target, &posix, false);
    assert!(out.contains("already relocated"), "{out}");
    // Moved elsewhere, it relocates from the packed target.
    let moved = scratch.path("moved/env");
    std::fs::create_dir_all(moved.parent().unwrap()).unwrap();
    std::fs::rename(&target, &moved).unwrap();
    let out = unpack_with(&["/usr/bin/dash"], &moved, &posix, true);
    assert!(out.contains("relocated"), "{out}");
    check_environment(&moved, true);

    let too_long = format!("/{}", "x".repeat(300));
    let env = shared_env(&[]);
    let stderr = run_fails(
        create_command(&env, &scratch.path("b.tar.zst"))
            .arg("--dest-prefix")
            .arg(&too_long),
        1,
    );
    assert!(
        stderr.contains("too long") && stderr.contains("bin/hello"),
        "{stderr}"
    );
    assert!(!scratch.path("b.tar.zst").exists());
    run_fails(
        create_command(&env, &scratch.path("c.tar.zst"))
            .arg("--dest-prefix")
            .arg("relative/path"),
        2,
    );
}
