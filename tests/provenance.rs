//! Provenance: SBOMs checked by real validators and against `go version -m` and conda-meta,
//! the `BUNDLE.sha256` checksum file, and `gopack verify` on environments unpacked both ways
//! (native, and `tar -x` + `bin/gopack-unpack`) into paths with spaces.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::util::synthetic::SyntheticEnv;
use crate::util::*;

/// Runs `tests/sbom_validate.py` on a document. In CI (`CI` set) a missing validator fails
/// the test; elsewhere the check is skipped with a message saying how to install it.
fn validate(kind: &str, document: &Path) {
    let output = Command::new("python3")
        .arg(repo().join("tests/sbom_validate.py"))
        .arg(kind)
        .arg(document)
        .output()
        .expect("python3 runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    match output.status.code() {
        Some(0) => {}
        Some(3) if std::env::var_os("CI").is_none() => eprintln!(
            "SKIPPED {kind} validation of {}: {stderr}  install the validators with: python3 -m pip \
             install 'cyclonedx-python-lib[json-validation]==11.12.0' 'spdx-tools==0.8.5' (.ci/run does)",
            document.display()
        ),
        _ => panic!(
            "{kind} validation of {} failed:\n{stderr}",
            document.display()
        ),
    }
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// A module `example.com/greet v1.2.0` served by a file-system GOPROXY, so that the Go
/// binary has a dependency with an `h1:` sum without any network.
fn go_proxy(root: &Path) -> PathBuf {
    let proxy = root.join("proxy");
    let versions = proxy.join("example.com/greet/@v");
    std::fs::create_dir_all(&versions).unwrap();
    std::fs::write(versions.join("list"), "v1.2.0\n").unwrap();
    std::fs::write(
        versions.join("v1.2.0.info"),
        r#"{"Version":"v1.2.0","Time":"2024-01-01T00:00:00Z"}"#,
    )
    .unwrap();
    let module = "module example.com/greet\n\ngo 1.22\n";
    std::fs::write(versions.join("v1.2.0.mod"), module).unwrap();
    let source = "package greet\n\n// Hello greets.\nfunc Hello() string { return \"hello\" }\n";
    run_ok(
        Command::new("python3")
            .arg("-c")
            .arg(
                "import sys, zipfile\n\
                 with zipfile.ZipFile(sys.argv[1], 'w') as z:\n\
                 \x20   z.writestr('example.com/greet@v1.2.0/go.mod', sys.argv[2])\n\
                 \x20   z.writestr('example.com/greet@v1.2.0/greet.go', sys.argv[3])\n",
            )
            .arg(versions.join("v1.2.0.zip"))
            .arg(module)
            .arg(source),
    );
    proxy
}

/// Builds `example.com/provapp` (which imports `example.com/greet`) into `output` with the
/// host toolchain, trimpath, CGO off, modules from the file proxy only.
fn build_go_app(scratch: &Path, output: &Path) {
    let proxy = go_proxy(scratch);
    let app = scratch.join("provapp");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("go.mod"),
        "module example.com/provapp\n\ngo 1.22\n\nrequire example.com/greet v1.2.0\n",
    )
    .unwrap();
    std::fs::write(
        app.join("main.go"),
        "package main\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/greet\"\n)\n\nfunc main() { fmt.Println(greet.Hello()) }\n",
    )
    .unwrap();
    run_ok(
        Command::new(which("go"))
            .current_dir(&app)
            .env("GOPROXY", format!("file://{}", proxy.display()))
            .env("GOSUMDB", "off")
            .env("GOFLAGS", "-mod=mod -modcacherw -buildvcs=false")
            .env("GOMODCACHE", scratch.join("modcache"))
            .env("GOTOOLCHAIN", "local")
            .env("GOWORK", "off")
            .env("CGO_ENABLED", "0")
            .args(["build", "-trimpath", "-o"])
            .arg(output)
            .arg("."),
    );
}

/// `go version -m BINARY`: the Go version, the main module path, the deps as
/// (path, version, sum) and the build settings.
struct GoVersionM {
    go: String,
    main_module: String,
    deps: Vec<(String, String, String)>,
    settings: Vec<(String, String)>,
}

fn go_version_m(binary: &Path) -> GoVersionM {
    let out = run_ok(
        Command::new(which("go"))
            .arg("version")
            .arg("-m")
            .arg(binary),
    );
    let mut lines = out.lines();
    let go = lines
        .next()
        .unwrap()
        .rsplit(": ")
        .next()
        .unwrap()
        .to_string();
    let mut parsed = GoVersionM {
        go,
        main_module: String::new(),
        deps: Vec::new(),
        settings: Vec::new(),
    };
    for line in lines {
        let fields: Vec<&str> = line.trim_start_matches('\t').split('\t').collect();
        match fields.as_slice() {
            ["mod", path, ..] => parsed.main_module = path.to_string(),
            ["dep", path, version, sum] => {
                parsed
                    .deps
                    .push((path.to_string(), version.to_string(), sum.to_string()))
            }
            ["build", setting] => {
                let (key, value) = setting.split_once('=').unwrap();
                parsed.settings.push((key.to_string(), value.to_string()));
            }
            _ => {}
        }
    }
    parsed
}

/// A CycloneDX component's property.
fn property<'a>(component: &'a serde_json::Value, name: &str) -> Option<&'a str> {
    component["properties"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["value"].as_str())
}

fn hash<'a>(component: &'a serde_json::Value, alg: &str) -> Option<&'a str> {
    component["hashes"]
        .as_array()?
        .iter()
        .find(|h| h["alg"] == alg)
        .and_then(|h| h["content"].as_str())
}

/// An environment with two more conda packages (one depending on the other, with archive
/// hashes), a pip distribution with a `RECORD`, and a Go binary with a dependency.
fn sbom_env(scratch: &Scratch) -> PathBuf {
    let prefix = SyntheticEnv::new(&scratch.path("env"))
        .text("etc/a.txt", "x=@PREFIX@\n")
        .build();
    let platform = crate::util::synthetic::host_platform();
    let zlib = serde_json::json!({
        "name": "zlib", "version": "1.3.1", "build": "h4ab18f5_1",
        "channel": format!("https://conda.anaconda.org/conda-forge/{platform}"),
        "subdir": platform,
        "sha256": "57f0cb3c0c4a4d2a2bb7e1b39e1c7a0a47c8f0b6b1a59aa3d3a2b6bdc7a4a2d1",
        "md5": "7ca2a27e0a1c7b0a6a8a4f2a1c5e9d01",
        "depends": ["libgcc-ng >=12"],
        "files": [],
    });
    let app = serde_json::json!({
        "name": "app", "version": "2.0+local", "build": "py_0",
        "channel": "https://conda.anaconda.org/conda-forge/noarch",
        "subdir": "noarch",
        "depends": ["zlib >=1.3.1,<2.0a0", "__glibc >=2.17"],
        "files": [],
    });
    for (name, record) in [("zlib-1.3.1-h4ab18f5_1", zlib), ("app-2.0+local-py_0", app)] {
        std::fs::write(
            prefix.join(format!("conda-meta/{name}.json")),
            serde_json::to_vec_pretty(&record).unwrap(),
        )
        .unwrap();
    }
    // A pip-installed distribution: no conda record owns it.
    let site = prefix.join("lib/python3.11/site-packages");
    let dist_info = site.join("greet_py-0.3.dist-info");
    std::fs::create_dir_all(site.join("greet_py")).unwrap();
    std::fs::create_dir_all(&dist_info).unwrap();
    let init = b"def hello():\n    return 'hi'\n";
    std::fs::write(site.join("greet_py/__init__.py"), init).unwrap();
    std::fs::write(
        dist_info.join("METADATA"),
        "Metadata-Version: 2.1\nName: Greet_Py\nVersion: 0.3\n\n",
    )
    .unwrap();
    std::fs::write(dist_info.join("INSTALLER"), "pip\n").unwrap();
    let digest = {
        use sha2::Digest;
        let raw = sha2::Sha256::digest(init);
        // RECORD's form: urlsafe base64 without padding (written here by Python's rules).
        let out = run_ok(
            Command::new("python3")
                .arg("-c")
                .arg("import base64,sys; print(base64.urlsafe_b64encode(bytes.fromhex(sys.argv[1])).rstrip(b'=').decode())")
                .arg(hex::encode(raw)),
        );
        out.trim().to_string()
    };
    std::fs::write(
        dist_info.join("RECORD"),
        format!(
            "greet_py/__init__.py,sha256={digest},{}\ngreet_py-0.3.dist-info/METADATA,,\ngreet_py-0.3.dist-info/RECORD,,\n",
            init.len()
        ),
    )
    .unwrap();
    std::fs::create_dir_all(prefix.join("bin")).unwrap();
    build_go_app(scratch.dir.path(), &prefix.join("bin/provapp"));
    prefix
}

#[test]
fn sboms_are_valid_deterministic_and_list_what_go_version_m_and_conda_meta_list() {
    let scratch = Scratch::new();
    let prefix = sbom_env(&scratch);
    let bundle = scratch.path("b.tar.zst");
    let cdx = scratch.path("b.cdx.json");
    run_ok(
        create_command(&prefix, &bundle)
            .arg("--sbom")
            .arg(&cdx)
            .env_remove("SOURCE_DATE_EPOCH"),
    );
    let spdx = scratch.path("b.spdx.json");
    run_ok(gopack().arg("sbom").arg(&bundle).arg("-o").arg(&spdx));
    validate("cyclonedx", &cdx);
    validate("spdx", &spdx);

    // Deterministic: the same bytes from `sbom`, from `create --sbom`, and from the
    // environment unpacked from the bundle.
    let again = run_ok(
        gopack()
            .arg("sbom")
            .arg(&bundle)
            .env_remove("SOURCE_DATE_EPOCH"),
    );
    assert_eq!(again.as_bytes(), std::fs::read(&cdx).unwrap());
    let dest = scratch.path("un packed");
    run_ok(gopack().arg("unpack").arg(&bundle).arg("-d").arg(&dest));
    let from_dir = run_ok(
        gopack()
            .arg("sbom")
            .arg(&dest)
            .env_remove("SOURCE_DATE_EPOCH"),
    );
    assert_eq!(
        from_dir, again,
        "the SBOM of the unpacked environment differs"
    );
    let spdx_from_dir = run_ok(gopack().args(["sbom", "--format", "spdx-json"]).arg(&dest));
    assert_eq!(spdx_from_dir.as_bytes(), std::fs::read(&spdx).unwrap());

    let document = read_json(&cdx);
    assert!(
        document["metadata"].get("timestamp").is_none(),
        "no clock without SOURCE_DATE_EPOCH"
    );
    let manifest = manifest(&bundle);
    let serial = document["serialNumber"].as_str().unwrap();
    assert!(serial.starts_with("urn:uuid:"));
    let components = document["components"].as_array().unwrap();
    let by_name = |name: &str| {
        components
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no component `{name}` in {components:#?}"))
    };

    // Conda: every conda-meta record, with its build, channel, subdir, hashes and depends.
    let mut records = 0;
    for entry in std::fs::read_dir(prefix.join("conda-meta")).unwrap() {
        let record = read_json(&entry.unwrap().path());
        records += 1;
        let component = by_name(record["name"].as_str().unwrap());
        assert_eq!(component["version"], record["version"]);
        let purl = component["purl"].as_str().unwrap();
        let version = record["version"].as_str().unwrap().replace('+', "%2B");
        assert!(
            purl.starts_with(&format!(
                "pkg:conda/{}@{version}?",
                record["name"].as_str().unwrap()
            )),
            "{purl}"
        );
        assert!(
            purl.contains(&format!("build={}", record["build"].as_str().unwrap())),
            "{purl}"
        );
        assert!(purl.contains("channel=conda-forge"), "{purl}");
        assert!(
            purl.contains(&format!("subdir={}", record["subdir"].as_str().unwrap())),
            "{purl}"
        );
        assert_eq!(hash(component, "SHA-256"), record["sha256"].as_str());
        assert_eq!(hash(component, "MD5"), record["md5"].as_str());
    }
    assert_eq!(records, 3);
    let dependencies = document["dependencies"].as_array().unwrap();
    let depends_on = |from: &str| -> Vec<String> {
        dependencies
            .iter()
            .find(|d| d["ref"] == from)
            .map(|d| {
                d["dependsOn"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r.as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let app_ref = by_name("app")["bom-ref"].as_str().unwrap();
    let zlib_ref = by_name("zlib")["bom-ref"].as_str().unwrap();
    assert_eq!(depends_on(app_ref), vec![zlib_ref.to_string()]);

    // pip: the distribution no conda record owns, with the files and hashes of its RECORD.
    let pip = by_name("Greet_Py");
    assert_eq!(pip["purl"], "pkg:pypi/greet-py@0.3");
    let files = pip["components"].as_array().unwrap();
    let init = files
        .iter()
        .find(|f| f["name"] == "lib/python3.11/site-packages/greet_py/__init__.py")
        .unwrap();
    assert_eq!(
        hash(init, "SHA-256").unwrap(),
        sha256_file(&prefix.join("lib/python3.11/site-packages/greet_py/__init__.py"))
    );
    assert_eq!(files.len(), 3);

    // Go: what `go version -m` says about the binary.
    let go = go_version_m(&prefix.join("bin/provapp"));
    let binary = components
        .iter()
        .find(|c| property(c, "gopack:path") == Some("bin/provapp"))
        .unwrap();
    assert_eq!(binary["type"], "application");
    assert_eq!(binary["name"].as_str().unwrap(), go.main_module);
    assert_eq!(property(binary, "gopack:go:version").unwrap(), go.go);
    assert_eq!(
        hash(binary, "SHA-256").unwrap(),
        sha256_file(&prefix.join("bin/provapp"))
    );
    for (key, value) in &go.settings {
        assert_eq!(
            property(binary, &format!("gopack:go:build:{key}")),
            Some(value.as_str()),
            "build setting {key}"
        );
    }
    assert!(!go.deps.is_empty(), "the test binary has a dependency");
    let binary_deps = depends_on(binary["bom-ref"].as_str().unwrap());
    for (path, version, sum) in &go.deps {
        let module = by_name(path);
        assert_eq!(module["version"].as_str().unwrap(), version);
        assert_eq!(
            module["purl"].as_str().unwrap(),
            format!("pkg:golang/{}@{version}", path.to_lowercase())
        );
        assert_eq!(property(module, "gopack:go:h1").unwrap(), sum);
        assert!(binary_deps.contains(&module["bom-ref"].as_str().unwrap().to_string()));
    }
    let stdlib = by_name("stdlib");
    assert_eq!(stdlib["version"].as_str().unwrap(), go.go);
    assert_eq!(
        stdlib["purl"].as_str().unwrap(),
        format!("pkg:golang/stdlib@{}", go.go.trim_start_matches("go"))
    );
    assert_eq!(
        manifest["go_binaries"].as_array().unwrap().len(),
        1,
        "{manifest:#}"
    );

    // SPDX: the same packages (plus the bundle's), purls as package-manager references.
    let spdx = read_json(&spdx);
    let packages = spdx["packages"].as_array().unwrap();
    assert_eq!(packages.len(), components.len() + 1);
    for component in components {
        let purl = component["purl"].as_str();
        assert!(
            packages.iter().any(|p| p["externalRefs"]
                .as_array()
                .is_some_and(|refs| refs.iter().any(|r| r["referenceLocator"].as_str() == purl))),
            "{purl:?} not in the SPDX document"
        );
    }
    assert_eq!(
        spdx["documentNamespace"].as_str().unwrap(),
        serial,
        "both documents are named by the manifest's digest"
    );

    // SOURCE_DATE_EPOCH dates both documents.
    let dated = run_ok(
        gopack()
            .arg("sbom")
            .arg(&bundle)
            .env("SOURCE_DATE_EPOCH", "1700000000"),
    );
    let dated: serde_json::Value = serde_json::from_str(&dated).unwrap();
    assert_eq!(dated["metadata"]["timestamp"], "2023-11-14T22:13:20Z");
    let bad = run_fails(
        gopack()
            .arg("sbom")
            .arg(&bundle)
            .env("SOURCE_DATE_EPOCH", "yesterday"),
        2,
    );
    assert!(bad.contains("SOURCE_DATE_EPOCH"), "{bad}");

    // inspect --sbom: components by type.
    let summary = run_ok(gopack().arg("inspect").arg("--sbom").arg(&bundle));
    let modules = go.deps.len();
    assert!(
        summary.contains(&format!(
            "{} components (3 conda, 1 pypi, 1 go-binary, {modules} go-module, 1 go-stdlib)",
            6 + modules
        )),
        "{summary}"
    );
}

#[test]
fn the_checksum_file_is_sha256sum_compatible_and_guards_unpack() {
    let scratch = Scratch::new();
    let prefix = SyntheticEnv::new(&scratch.path("env"))
        .text("etc/a.txt", "x=@PREFIX@\n")
        .build();
    let bundle = scratch.path("b.tar.zst");
    pack(&prefix, &bundle, &[]);
    let sidecar = scratch.path("b.tar.zst.sha256");
    let line = std::fs::read_to_string(&sidecar).unwrap();
    assert_eq!(line, format!("{}  b.tar.zst\n", sha256_file(&bundle)));
    run_ok(
        Command::new("sha256sum")
            .arg("-c")
            .arg("b.tar.zst.sha256")
            .current_dir(scratch.dir.path()),
    );
    run_ok(
        gopack()
            .arg("unpack")
            .arg(&bundle)
            .arg("-d")
            .arg(scratch.path("ok")),
    );

    // A bundle that does not match its checksum file is refused before anything is written.
    let mut wrong = line.clone().into_bytes();
    wrong[0] = if wrong[0] == b'0' { b'1' } else { b'0' };
    std::fs::write(&sidecar, &wrong).unwrap();
    let dest = scratch.path("refused");
    let err = run_fails(gopack().arg("unpack").arg(&bundle).arg("-d").arg(&dest), 1);
    assert!(err.contains("does not match its checksum file"), "{err}");
    assert!(err.contains("b.tar.zst.sha256"), "{err}");
    assert!(!dest.exists());
    std::fs::write(&sidecar, "not a checksum\n").unwrap();
    let err = run_fails(gopack().arg("unpack").arg(&bundle).arg("-d").arg(&dest), 1);
    assert!(err.contains("sha256sum format"), "{err}");

    // --no-checksum writes none, and removes the stale one of the bundle it overwrites.
    pack(&prefix, &bundle, &["--force", "--no-checksum"]);
    assert!(!sidecar.exists());
    run_ok(gopack().arg("unpack").arg(&bundle).arg("-d").arg(&dest));
}

/// An environment with every kind of entry verify compares: a text record, a Python script
/// whose `#!` line is written anew, a binary C-string record, a plain file, a symlink, a hard
/// link to a relocated file, an empty directory. Its prefix is long, so that the binary string
/// has room for the destinations.
fn drift_env(scratch: &Scratch) -> PathBuf {
    SyntheticEnv::new(&scratch.path("source-environment-with-room-to-spare"))
        .text("etc/a.conf", "home=@PREFIX@\nother=@PREFIX@2\n")
        .text("etc/plain.txt", "nothing to relocate\n")
        .file(
            "bin/tool",
            b"#!@PREFIX@/bin/python3.11 -u\nprint('@PREFIX@/share')\n",
            0o755,
        )
        .file(
            "lib/libdata.so.1",
            b"\x7fDATA\0\0\0header\0@PREFIX@/share/data\0trailer\0\0",
            0o644,
        )
        .symlink("lib/link.txt", "../etc/plain.txt")
        .hard_link("etc/b.conf", "etc/a.conf")
        .dir("share/empty")
        .build()
}

/// Runs `gopack verify --json DIR`; returns the exit code and the report.
fn verify_json(dir: &Path) -> (i32, serde_json::Value) {
    let output: Output = gopack()
        .arg("verify")
        .arg("--json")
        .arg(dir)
        .output()
        .unwrap();
    let report = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|err| panic!("{err}: {}", text(&output)));
    (output.status.code().unwrap(), report)
}

/// The report's problems as `category path` lines.
fn problems(report: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    for category in ["missing", "extra"] {
        for path in report[category].as_array().unwrap() {
            out.push(format!("{category} {}", path.as_str().unwrap()));
        }
    }
    for category in ["modified", "permissions"] {
        for item in report[category].as_array().unwrap() {
            out.push(format!("{category} {}", item["path"].as_str().unwrap()));
        }
    }
    for line in report["location"].as_array().unwrap() {
        out.push(format!("location {}", line.as_str().unwrap()));
    }
    out
}

fn assert_clean(dir: &Path) {
    let (code, report) = verify_json(dir);
    assert_eq!(problems(&report), Vec::<String>::new(), "{report:#}");
    assert_eq!(code, 0);
    assert_eq!(report["clean"], true);
}

/// Applies `change`, expects exactly `expected` (one problem) with exit code 1, undoes it
/// with `undo`, expects a clean report again.
fn expect_drift(dir: &Path, expected: &str, change: impl FnOnce(), undo: impl FnOnce()) {
    change();
    let (code, report) = verify_json(dir);
    assert_eq!(problems(&report), vec![expected.to_string()], "{report:#}");
    assert_eq!(code, 1, "{report:#}");
    undo();
    assert_clean(dir);
}

/// Every kind of drift, one at a time, on an environment unpacked and relocated to `dir`;
/// `old` is the prefix the bundle was packed from.
fn every_drift_is_found(dir: &Path, old: &Path) {
    assert_clean(dir);
    let path = |relative: &str| dir.join(relative);
    let saved = |relative: &str| std::fs::read(path(relative)).unwrap();

    // A tampered plain file.
    let plain = saved("etc/plain.txt");
    expect_drift(
        dir,
        "modified etc/plain.txt",
        || std::fs::write(path("etc/plain.txt"), b"nothing to relocatE\n").unwrap(),
        || std::fs::write(path("etc/plain.txt"), &plain).unwrap(),
    );
    // A relocated text file put back to the old prefix: reading it back alone would accept it.
    let conf = saved("etc/a.conf");
    let reverted = String::from_utf8(conf.clone()).unwrap().replacen(
        &dir.display().to_string(),
        &old.display().to_string(),
        1,
    );
    expect_drift(
        dir,
        "modified etc/a.conf",
        || std::fs::write(path("etc/a.conf"), &reverted).unwrap(),
        || std::fs::write(path("etc/a.conf"), &conf).unwrap(),
    );
    // The Python script: its body, and its regenerated first line.
    let tool = saved("bin/tool");
    let body = String::from_utf8(tool.clone())
        .unwrap()
        .replace("print(", "print (");
    expect_drift(
        dir,
        "modified bin/tool",
        || std::fs::write(path("bin/tool"), &body).unwrap(),
        || std::fs::write(path("bin/tool"), &tool).unwrap(),
    );
    // A binary C string: inside the relocated string, and elsewhere in the file.
    let data = saved("lib/libdata.so.1");
    let slot = data
        .windows(b"/share/data".len())
        .position(|w| w == b"/share/data")
        .unwrap();
    for offset in [slot + 1, 2] {
        let mut changed = data.clone();
        changed[offset] ^= 0x01;
        expect_drift(
            dir,
            "modified lib/libdata.so.1",
            || std::fs::write(path("lib/libdata.so.1"), &changed).unwrap(),
            || std::fs::write(path("lib/libdata.so.1"), &data).unwrap(),
        );
    }
    // A deleted file.
    expect_drift(
        dir,
        "missing etc/plain.txt",
        || std::fs::remove_file(path("etc/plain.txt")).unwrap(),
        || std::fs::write(path("etc/plain.txt"), &plain).unwrap(),
    );
    // An added file (bytecode Python writes is not one).
    std::fs::create_dir_all(path("lib/__pycache__")).unwrap();
    std::fs::write(path("lib/__pycache__/x.cpython-311.pyc"), b"bytecode").unwrap();
    expect_drift(
        dir,
        "extra etc/added.conf",
        || std::fs::write(path("etc/added.conf"), b"new\n").unwrap(),
        || std::fs::remove_file(path("etc/added.conf")).unwrap(),
    );
    // A changed mode.
    let set_mode = |relative: &str, mode: u32| {
        std::fs::set_permissions(path(relative), std::fs::Permissions::from_mode(mode)).unwrap()
    };
    expect_drift(
        dir,
        "permissions bin/tool",
        || set_mode("bin/tool", 0o777),
        || set_mode("bin/tool", 0o755),
    );
    // A symlink pointing elsewhere.
    expect_drift(
        dir,
        "modified lib/link.txt",
        || {
            std::fs::remove_file(path("lib/link.txt")).unwrap();
            std::os::unix::fs::symlink("../etc/a.conf", path("lib/link.txt")).unwrap();
        },
        || {
            std::fs::remove_file(path("lib/link.txt")).unwrap();
            std::os::unix::fs::symlink("../etc/plain.txt", path("lib/link.txt")).unwrap();
        },
    );
    // The text output names the file too, with exit code 1.
    std::fs::write(path("etc/plain.txt"), b"x").unwrap();
    let output = gopack().arg("verify").arg(dir).output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let listing = String::from_utf8_lossy(&output.stdout);
    assert!(listing.contains("modified     etc/plain.txt"), "{listing}");
    std::fs::write(path("etc/plain.txt"), &plain).unwrap();
}

#[test]
fn verify_is_silent_on_a_natively_unpacked_environment_and_finds_each_drift() {
    let scratch = Scratch::new();
    let prefix = drift_env(&scratch);
    let bundle = scratch.path("b.tar.zst");
    pack(&prefix, &bundle, &[]);
    let dest = scratch.path("un packed");
    run_ok(gopack().arg("unpack").arg(&bundle).arg("-d").arg(&dest));
    // The relocation happened: the check below is not one of untouched files.
    assert!(
        std::fs::read_to_string(dest.join("bin/tool"))
            .unwrap()
            .starts_with("#!/bin/sh\n")
    );
    every_drift_is_found(&dest, &prefix);
    // Against the bundle's own manifest too.
    run_ok(
        gopack()
            .arg("verify")
            .arg(&dest)
            .arg("--bundle")
            .arg(&bundle),
    );
}

#[test]
fn verify_is_silent_after_tar_and_gopack_unpack_and_finds_each_drift() {
    let scratch = Scratch::new();
    let prefix = drift_env(&scratch);
    let bundle = scratch.path("b.tar.zst");
    pack(&prefix, &bundle, &[]);
    let dest = scratch.path("tar and sh");
    extract(&bundle, &dest);
    // Extracted but not relocated yet: the files hold the packed prefix.
    let (code, report) = verify_json(&dest);
    assert_eq!(code, 1);
    let found = problems(&report);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("not relocated after it was extracted"),
        "{found:?}"
    );
    run_ok(
        Command::new(which("dash"))
            .arg(dest.join("bin/gopack-unpack"))
            .arg("-q"),
    );
    every_drift_is_found(&dest, &prefix);
}

#[test]
fn verify_reports_a_move_without_relocation_until_gopack_unpack_runs() {
    let scratch = Scratch::new();
    let prefix = drift_env(&scratch);
    let bundle = scratch.path("b.tar.zst");
    pack(&prefix, &bundle, &[]);
    let first = scratch.path("first-place");
    run_ok(gopack().arg("unpack").arg(&bundle).arg("-d").arg(&first));
    assert_clean(&first);
    // Moved: said, and the files are still checked against the prefix they hold.
    let moved = scratch.path("moved away");
    std::fs::rename(&first, &moved).unwrap();
    let (code, report) = verify_json(&moved);
    assert_eq!(code, 1);
    let found = problems(&report);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("moved without relocating"), "{found:?}");
    run_ok(
        Command::new(which("dash"))
            .arg(moved.join("bin/gopack-unpack"))
            .arg("-q"),
    );
    assert_clean(&moved);
}

/// A Python script whose `#!` line had to be written in pip's `/bin/sh` form (the first
/// destination has a space) keeps that form's two `'''exec'` lines when it is relocated
/// again: every move adds two lines, so the file is no longer the packed script relocated
/// once, and verify says so. The relocation engine must drop the whole sh form.
#[test]
fn a_script_relocated_twice_through_the_sh_form_is_the_packed_one_relocated_once() {
    let scratch = Scratch::new();
    let prefix = drift_env(&scratch);
    let bundle = scratch.path("b.tar.zst");
    pack(&prefix, &bundle, &[]);
    let first = scratch.path("first place");
    run_ok(gopack().arg("unpack").arg(&bundle).arg("-d").arg(&first));
    let moved = scratch.path("second place");
    std::fs::rename(&first, &moved).unwrap();
    run_ok(
        Command::new(which("dash"))
            .arg(moved.join("bin/gopack-unpack"))
            .arg("-q"),
    );
    let script = std::fs::read_to_string(moved.join("bin/tool")).unwrap();
    assert_eq!(script.matches("'''exec'").count(), 1, "{script}");
    assert_clean(&moved);
}

#[test]
fn verify_refuses_a_directory_that_is_not_an_unpacked_environment() {
    let scratch = Scratch::new();
    std::fs::create_dir_all(scratch.path("empty")).unwrap();
    let err = run_fails(gopack().arg("verify").arg(scratch.path("empty")), 1);
    assert!(
        err.contains("not an environment unpacked from a gopack bundle"),
        "{err}"
    );
    assert!(err.contains(".gopack/manifest.json"), "{err}");
}
