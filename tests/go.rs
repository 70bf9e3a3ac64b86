//! Go: services built from the environment's workspace (trimpath, CGO off, the env's platform,
//! reproducible, no prefix bytes), collected binaries of other platforms and formats parsed in
//! Rust, non-trimpath binaries kept byte-for-byte, and the unpacked services answering on
//! loopback after the original environment is gone.

use std::path::Path;
use std::process::Command;

use crate::util::*;

fn go_binaries(manifest: &serde_json::Value) -> Vec<serde_json::Value> {
    manifest["go_binaries"].as_array().unwrap().clone()
}

fn find<'a>(binaries: &'a [serde_json::Value], path: &str) -> &'a serde_json::Value {
    binaries
        .iter()
        .find(|b| b["path"] == path)
        .unwrap_or_else(|| panic!("{path} not among {binaries:?}"))
}

fn setting<'a>(binary: &'a serde_json::Value, key: &str) -> Option<&'a str> {
    binary["build_info"]["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|pair| pair[0] == key)
        .and_then(|pair| pair[1].as_str())
}

fn host_go() -> std::path::PathBuf {
    which("go")
}

/// `go build` of an example service with the host toolchain (for collected binaries).
fn build_example(example: &str, output: &Path, goos: &str, goarch: &str, trimpath: bool) {
    let mut command = Command::new(host_go());
    command
        .current_dir(repo().join("examples/go").join(example))
        .env("GOOS", goos)
        .env("GOARCH", goarch)
        .env("CGO_ENABLED", "0")
        .env("GOFLAGS", "")
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .env("GOWORK", "off")
        .arg("build");
    if trimpath {
        command.arg("-trimpath");
    }
    command.arg("-o").arg(output).arg(".");
    run_ok(&mut command);
}

#[test]
fn real_env_workspace_services_are_built_reproducibly_and_run_after_unpacking() {
    let scratch = Scratch::new();
    let env = scratch.env("src/env", &["--go"]);
    let first = scratch.path("a.tar.zst");
    let second = scratch.path("b.tar.zst");
    pack(&env, &first, &["-q", "--go-workspace", "--offline"]);
    pack(
        &env,
        &second,
        &["-q", "--go-workspace", "--offline", "-j", "1"],
    );
    assert_eq!(
        sha256_file(&first),
        sha256_file(&second),
        "two bundles of the same sources differ"
    );

    let manifest = manifest(&first);
    let binaries = go_binaries(&manifest);
    for (path, module) in [
        ("bin/healthcheck", "example.com/healthcheck"),
        ("bin/pprof-agent", "example.com/pprofagent"),
    ] {
        let binary = find(&binaries, path);
        assert_eq!(binary["origin"], "built");
        assert_eq!(binary["build_info"]["main_module"]["path"], module);
        assert_eq!(setting(binary, "-trimpath"), Some("true"));
        assert_eq!(setting(binary, "CGO_ENABLED"), Some("0"));
        assert_eq!(
            (setting(binary, "GOOS"), setting(binary, "GOARCH")),
            (Some("linux"), Some(crate::util::synthetic::host_goarch()))
        );
    }
    // The toolchain's own binaries are collected and described too.
    assert_eq!(find(&binaries, "go/bin/go")["origin"], "collected");

    let dest = scratch.path("deployed/app");
    unpack(&first, &dest);
    std::fs::rename(&env, scratch.path("src/gone")).unwrap();
    for name in ["healthcheck", "pprof-agent"] {
        let binary = dest.join("bin").join(name);
        let bytes = std::fs::read(&binary).unwrap();
        let prefix = env.to_str().unwrap().as_bytes();
        assert!(
            !bytes.windows(prefix.len()).any(|w| w == prefix),
            "{name} holds the build prefix"
        );
        let version = run_ok(
            Command::new(dest.join("bin/go"))
                .args(["version", "-m"])
                .arg(&binary)
                .env("GOTOOLCHAIN", "local"),
        );
        assert!(
            version.contains("-trimpath=true") && version.contains("CGO_ENABLED=0"),
            "{version}"
        );
        assert!(
            version.contains("GOOS=linux") && version.contains("GOARCH=amd64"),
            "{version}"
        );
    }
    let (child, address) = start_service(Command::new(dest.join("bin/healthcheck")).env_clear());
    assert_eq!(
        http_get(&address, "/healthz"),
        ("HTTP/1.0 200 OK".into(), "ok".into())
    );
    assert_eq!(http_get(&address, "/readyz").1, "ready");
    stop(child);
    let (child, address) = start_service(Command::new(dest.join("bin/pprof-agent")).env_clear());
    let (status, body) = http_get(&address, "/debug/pprof/");
    assert!(
        status.contains("200") && body.contains("goroutine"),
        "{status}\n{body}"
    );
    let (status, body) = http_get(&address, "/debug/pprof/heap?debug=1");
    assert!(
        status.contains("200") && body.contains("heap profile"),
        "{status}\n{body}"
    );
    stop(child);

    // The toolchain inside the env still builds the workspace offline.
    let out = run_ok(
        Command::new(dest.join("bin/go"))
            .current_dir(dest.join("src/healthcheck"))
            .args(["build", "-o", "/dev/null", "."])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", scratch.path("home"))
            .env("GOCACHE", scratch.path("gocache"))
            .env("GOPROXY", "off")
            .env("GOTOOLCHAIN", "local"),
    );
    let _ = out;
}

#[test]
fn real_env_collected_binaries_of_every_format_are_parsed_and_foreign_ones_refused() {
    let scratch = Scratch::new();
    let env = scratch.env("env", &[]);
    let cross = [
        ("hc-linux-arm64", "linux", "arm64"),
        ("hc-darwin-arm64", "darwin", "arm64"),
        ("hc-windows-amd64.exe", "windows", "amd64"),
    ];
    for (name, goos, goarch) in cross {
        build_example(
            "healthcheck",
            &env.join("bin").join(name),
            goos,
            goarch,
            true,
        );
    }
    let bundle = scratch.path("b.tar.zst");
    let stderr = run_fails(&mut create_command(&env, &bundle), 1);
    assert!(
        stderr.contains("bin/hc-") && stderr.contains("--allow-foreign-go"),
        "{stderr}"
    );
    assert!(!bundle.exists());
    let output = create_command(&env, &bundle)
        .arg("--allow-foreign-go")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr)
            .matches("Go binary `bin/hc-")
            .count(),
        3,
        "{}",
        text(&output)
    );
    let binaries = go_binaries(&manifest(&bundle));
    for (name, goos, goarch) in cross {
        let binary = find(&binaries, &format!("bin/{name}"));
        assert_eq!(
            (setting(binary, "GOOS"), setting(binary, "GOARCH")),
            (Some(goos), Some(goarch)),
            "{name}"
        );
        assert_eq!(
            binary["build_info"]["main_module"]["path"],
            "example.com/healthcheck"
        );
        assert!(
            binary["build_info"]["go_version"]
                .as_str()
                .unwrap()
                .starts_with("go1.")
        );
    }
}

#[test]
fn real_env_a_non_trimpath_binary_is_kept_byte_for_byte_with_a_warning() {
    let scratch = Scratch::new();
    let env = scratch.env("env", &[]);
    // Built from sources inside the prefix without -trimpath: the prefix is embedded.
    let src = env.join("src/healthcheck");
    std::fs::create_dir_all(&src).unwrap();
    for file in ["go.mod", "main.go"] {
        std::fs::copy(
            repo().join("examples/go/healthcheck").join(file),
            src.join(file),
        )
        .unwrap();
    }
    let mut command = Command::new(host_go());
    command
        .current_dir(&src)
        .env("CGO_ENABLED", "0")
        .env("GOFLAGS", "")
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .env("GOWORK", "off")
        .args(["build", "-o"])
        .arg(env.join("bin/untrimmed"))
        .arg(".");
    run_ok(&mut command);
    let original = sha256_file(&env.join("bin/untrimmed"));
    let bundle = scratch.path("b.tar.zst");
    let output = create_command(&env, &bundle).output().unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("without -trimpath") && stderr.contains("bin/untrimmed"),
        "{stderr}"
    );
    let manifest = manifest(&bundle);
    let left: Vec<&serde_json::Value> = manifest["relocation"]["left_alone"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["path"] == "bin/untrimmed")
        .collect();
    assert_eq!(left[0]["reason"], "go-binary");
    assert!(
        manifest["relocation"]["binary"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["path"] != "bin/untrimmed")
    );
    let dest = scratch.path("elsewhere/env");
    unpack(&bundle, &dest);
    assert_eq!(sha256_file(&dest.join("bin/untrimmed")), original);
    let version = run_ok(
        Command::new(host_go())
            .args(["version", "-m"])
            .arg(dest.join("bin/untrimmed")),
    );
    assert!(version.contains("example.com/healthcheck"), "{version}");
}

#[test]
fn real_env_a_failing_go_build_shows_the_command_and_writes_no_bundle() {
    let scratch = Scratch::new();
    let env = scratch.env("env", &[]);
    let broken = scratch.path("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(
        broken.join("go.mod"),
        "module example.com/broken\n\ngo 1.22\n",
    )
    .unwrap();
    std::fs::write(
        broken.join("main.go"),
        "package main\n\nfunc main() { undefinedThing() }\n",
    )
    .unwrap();
    let bundle = scratch.path("b.tar.zst");
    let stderr = run_fails(
        create_command(&env, &bundle)
            .arg("--go")
            .arg(format!("svc={}", broken.display()))
            .arg("--go-toolchain")
            .arg(host_go()),
        1,
    );
    assert!(
        stderr.contains("command:") && stderr.contains("-trimpath"),
        "{stderr}"
    );
    assert!(stderr.contains("undefined: undefinedThing"), "{stderr}");
    assert!(!bundle.exists());
    let stderr = run_fails(
        create_command(&env, &bundle)
            .arg("--go-workspace")
            .env("PATH", "/usr/bin:/bin"),
        1,
    );
    assert!(
        stderr.contains("no Go toolchain found") || stderr.contains("no main package"),
        "{stderr}"
    );
}
