//! Mach-O: real arm64 and universal (x86_64 + arm64) Mach-O files made here by clang and
//! ld64.lld inside a 255-character conda-build placeholder prefix, ad-hoc signed by the linker
//! (`fixtures/macho.py`, cached under the fixture cache), and a Go darwin/arm64 binary signed by
//! Go, installed into an `osx-arm64` environment as conda installs them (binary placeholder
//! replacement, then an ad-hoc re-sign). After pack → `gopack unpack` to a longer and a shorter
//! path, and after `--dest-prefix`: no load command names the old prefix (`llvm-objdump`),
//! `LC_RPATH` and the install names are `@loader_path`-relative, the data path names the new
//! prefix, every slice's code directory hashes match its bytes (checked by `macho.py verify`,
//! written independently of gopack's Rust code), with identifier and flags kept, and the Go
//! binary is byte-identical.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::synthetic::SyntheticEnv;
use crate::util::*;

const TOOLS: &[&[&str]] = &[
    &["clang", "clang-14", "clang-15", "clang-16"],
    &["ld64.lld", "ld64.lld-14", "ld64.lld-15", "ld64.lld-16"],
    &["llvm-lipo", "llvm-lipo-14", "llvm-lipo-15", "llvm-lipo-16"],
    &[
        "llvm-objdump",
        "llvm-objdump-14",
        "llvm-objdump-15",
        "llvm-objdump-16",
    ],
    &["go"],
];

fn find_tool(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .chain(["/usr/local/go/bin", "/usr/bin"].map(PathBuf::from))
        .collect();
    names
        .iter()
        .flat_map(|name| dirs.iter().map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// Whether the tools are installed: in CI a missing one fails the test (`.ci/run` installs
/// them), elsewhere the test is skipped with a message saying what to install.
fn have_tools(test: &str) -> bool {
    let missing: Vec<&str> = TOOLS
        .iter()
        .filter(|names| find_tool(names).is_none())
        .map(|names| names[0])
        .collect();
    if missing.is_empty() {
        return true;
    }
    let message = format!(
        "{test}: {} not installed (apt-get install clang lld llvm; Go in /usr/local/go)",
        missing.join(", ")
    );
    if std::env::var_os("CI").is_some() {
        panic!("{message}");
    }
    eprintln!("skipping {message}");
    false
}

fn script() -> PathBuf {
    repo().join("fixtures/macho.py")
}

/// The fixtures built by `macho.py build` (cached, keyed by the script's content) and their
/// placeholder.
fn fixtures() -> (PathBuf, String) {
    let key = &sha256_file(&script())[..16];
    let dir = fixture_cache().join(format!("macho-{key}"));
    let placeholder_file = dir.join("placeholder");
    if !placeholder_file.exists() {
        std::fs::create_dir_all(fixture_cache()).unwrap();
        let temp = tempfile::Builder::new()
            .prefix(".macho-")
            .tempdir_in(fixture_cache())
            .unwrap();
        let out = run_ok(
            Command::new("python3")
                .arg(script())
                .arg("build")
                .arg(temp.path()),
        );
        std::fs::write(temp.path().join("placeholder"), out.trim()).unwrap();
        let built = temp.keep();
        if std::fs::rename(&built, &dir).is_err() {
            // Another test built it first.
            let _ = std::fs::remove_dir_all(&built);
        }
    }
    let placeholder = std::fs::read_to_string(&placeholder_file).unwrap();
    assert_eq!(placeholder.len(), 255);
    (dir, placeholder)
}

/// `src` installed for `prefix` as conda installs it on osx-arm64.
fn conda_install(src: &Path, placeholder: &str, prefix: &Path, scratch: &Scratch) -> Vec<u8> {
    let out = scratch.path("installed.tmp");
    run_ok(
        Command::new("python3")
            .arg(script())
            .arg("install")
            .arg(src)
            .arg(&out)
            .arg(placeholder)
            .arg(prefix),
    );
    std::fs::read(&out).unwrap()
}

/// A Go darwin/arm64 binary (signed by Go's linker) holding `prefix` in a string.
fn go_darwin(prefix: &Path, scratch: &Scratch) -> Vec<u8> {
    let dir = scratch.path("gosrc");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("go.mod"), "module example.com/hello\n\ngo 1.21\n").unwrap();
    std::fs::write(
        dir.join("main.go"),
        "package main\n\nimport \"fmt\"\n\nvar dataPath = \"unset\"\n\n\
         func main() { fmt.Println(dataPath) }\n",
    )
    .unwrap();
    let out = scratch.path("hello-go");
    let go = find_tool(&["go"]).unwrap();
    run_ok(
        Command::new(go)
            .current_dir(&dir)
            .env("GOOS", "darwin")
            .env("GOARCH", "arm64")
            .env("CGO_ENABLED", "0")
            .arg("build")
            .arg("-ldflags")
            .arg(format!(
                "-X main.dataPath={}/share/go.txt",
                prefix.display()
            ))
            .arg("-o")
            .arg(&out)
            .arg("."),
    );
    std::fs::read(&out).unwrap()
}

/// `rcodesign` (`cargo install apple-codesign`), from `GOPACK_RCODESIGN` or PATH: it takes
/// 20–40 minutes to build here, so the tests use it where it is installed and rely on
/// `macho.py verify` otherwise.
fn rcodesign() -> Option<PathBuf> {
    std::env::var_os("GOPACK_RCODESIGN")
        .map(PathBuf::from)
        .or_else(|| find_tool(&["rcodesign"]))
}

/// An independent check where rcodesign is installed: per slice, the page digests its code
/// directory holds (`rcodesign extract code-directory`) are the ones rcodesign computes from
/// the file's bytes (`rcodesign compute-code-hashes`). (`rcodesign verify` insists on a CMS
/// signature, which ad-hoc signatures never have.)
fn rcodesign_check(rcodesign: &Path, file: &Path, slices: usize, label: &str) {
    let digests = |text: &str| -> Vec<String> {
        text.split(|c: char| !c.is_ascii_hexdigit())
            .filter(|word| word.len() == 64)
            .map(str::to_string)
            .collect()
    };
    for index in 0..slices {
        let index = index.to_string();
        let stored = run_ok(
            Command::new(rcodesign)
                .args(["extract", "--universal-index", &index, "code-directory"])
                .arg(file),
        );
        let stored = stored
            .split("code_digests: [")
            .nth(1)
            .and_then(|rest| rest.split(']').next())
            .map(digests)
            .unwrap_or_default();
        let computed = digests(&run_ok(
            Command::new(rcodesign)
                .args(["compute-code-hashes", "--universal-index", &index])
                .arg(file),
        ));
        assert!(
            !stored.is_empty(),
            "{label}: {}: no code digests",
            file.display()
        );
        assert_eq!(
            stored,
            computed,
            "{label}: {} slice {index}",
            file.display()
        );
    }
}

/// `macho.py verify` of one file: per slice, `signed`, `valid`, identifiers and flags.
fn verify(file: &Path) -> serde_json::Value {
    let out = run_ok(
        Command::new("python3")
            .arg(script())
            .arg("verify")
            .arg(file),
    );
    serde_json::from_str(out.trim()).unwrap()
}

fn objdump(file: &Path) -> String {
    let tool = find_tool(TOOLS[3]).unwrap();
    run_ok(
        Command::new(tool)
            .arg("--macho")
            .arg("--private-headers")
            .arg("--arch=all")
            .arg(file),
    )
}

const MACHO: [&str; 4] = [
    "bin/app",
    "bin/app-universal",
    "bin/app-unsigned",
    "lib/libanswer.dylib",
];

fn occurrences(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count()
}

/// Every Mach-O file of `dest` relocated from `old` and validly signed as `original` was.
fn check(dest: &Path, old: &Path, original: &Path, go: &[u8], label: &str) {
    let old = old.to_str().unwrap();
    for file in MACHO {
        let path = dest.join(file);
        let headers = objdump(&path);
        assert!(
            !headers.contains(old),
            "{label}: {file} names {old}:\n{headers}"
        );
        let slices = if file.ends_with("universal") { 2 } else { 1 };
        if file.starts_with("bin/") {
            assert_eq!(
                headers.matches("path @loader_path/../lib (offset").count(),
                slices,
                "{label}: {file} LC_RPATH:\n{headers}"
            );
            assert_eq!(
                headers
                    .matches("name @loader_path/../lib/libanswer.dylib (offset")
                    .count(),
                slices,
                "{label}: {file} LC_LOAD_DYLIB:\n{headers}"
            );
            let data = std::fs::read(&path).unwrap();
            let mut wanted = format!("{}/share/app/data.txt", dest.display()).into_bytes();
            wanted.push(0);
            assert_eq!(
                occurrences(&data, &wanted),
                slices,
                "{label}: {file} data path"
            );
        } else {
            assert!(
                headers.contains("name @loader_path/libanswer.dylib (offset"),
                "{label}: {file} LC_ID_DYLIB:\n{headers}"
            );
        }
        let report = verify(&path);
        let before = verify(&original.join(file));
        if let Some(rcodesign) = rcodesign()
            && before["slices"][0]["signed"] == true
        {
            rcodesign_check(&rcodesign, &path, slices, label);
        }
        let got = report["slices"].as_array().unwrap();
        assert_eq!(got.len(), slices, "{label}: {file}: {report}");
        for (slice, was) in got.iter().zip(before["slices"].as_array().unwrap()) {
            // Signed files stay validly signed; unsigned ones stay unsigned.
            assert_eq!(slice["signed"], was["signed"], "{label}: {file}: {report}");
            if was["signed"] == true {
                assert_eq!(slice["valid"], true, "{label}: {file}: {report}");
            }
            for key in ["identifiers", "flags", "special_slots", "cputype"] {
                assert_eq!(slice[key], was[key], "{label}: {file} {key}");
            }
        }
    }
    assert!(
        std::fs::read(dest.join("bin/hello-go")).unwrap() == go,
        "{label}: the Go binary changed"
    );
    let go_report = verify(&dest.join("bin/hello-go"));
    assert_eq!(
        go_report["slices"][0]["valid"], true,
        "{label}: {go_report}"
    );
}

#[test]
fn macho_files_are_relocated_and_re_signed_by_every_engine() {
    if !have_tools("macho_files_are_relocated_and_re_signed_by_every_engine") {
        return;
    }
    let (fixtures, placeholder) = fixtures();
    let scratch = Scratch::new();
    let prefix = scratch.path("src/environment");
    let go = go_darwin(&prefix, &scratch);
    let mut env = SyntheticEnv::new(&prefix).platform("osx-arm64");
    for file in MACHO {
        let mode = if file.starts_with("bin/") {
            0o755
        } else {
            0o644
        };
        let content = conda_install(&fixtures.join(file), &placeholder, &prefix, &scratch);
        env = env.binary_file(file, content, &placeholder, mode);
    }
    let prefix = env
        .file("bin/hello-go", &go, 0o755)
        .text("share/app/data.txt", "data\n")
        .build();
    // The installed environment is what conda leaves: valid signatures, the prefix inside.
    for file in MACHO {
        let report = verify(&prefix.join(file));
        for slice in report["slices"].as_array().unwrap() {
            let signed = !file.ends_with("-unsigned");
            assert_eq!(slice["signed"], signed, "fixture {file}: {report}");
            if signed {
                assert_eq!(slice["valid"], true, "fixture {file}: {report}");
            }
        }
        assert!(objdump(&prefix.join(file)).contains(prefix.to_str().unwrap()));
    }

    let bundle = scratch.path("b.tar.zst");
    pack(&prefix, &bundle, &[]);
    let fixes = manifest(&bundle).to_string();
    assert!(fixes.contains("relative-install-name"), "{fixes}");
    for dest in [
        scratch.path("a-much-longer-destination-directory/for/the/unpacked/environment"),
        scratch.path("s"),
    ] {
        run_ok(gopack().arg("unpack").arg(&bundle).arg("-d").arg(&dest));
        check(
            &dest,
            &prefix,
            &prefix,
            &go,
            &format!("unpack to {}", dest.display()),
        );
    }

    // The sh engine (tar + bin/gopack-unpack) writes the same slots as the native one; on a
    // Mac it re-signs with /usr/bin/codesign, elsewhere only the signature's hashes differ.
    let native = scratch.path("s");
    let kept = scratch.path("s-native");
    std::fs::rename(&native, &kept).unwrap();
    extract(&bundle, &native);
    run_ok(
        Command::new(which("dash"))
            .arg(native.join("bin/gopack-unpack"))
            .arg("-q"),
    );
    for file in MACHO {
        let by_sh = std::fs::read(native.join(file)).unwrap();
        let by_rust = std::fs::read(kept.join(file)).unwrap();
        assert_eq!(by_sh.len(), by_rust.len());
        let report = verify(&kept.join(file));
        let signatures: Vec<(usize, usize)> = report["slices"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|slice| {
                let at = slice["signature"][0].as_u64()? as usize;
                Some((at, at + slice["signature"][1].as_u64()? as usize))
            })
            .collect();
        for (at, (a, b)) in by_sh.iter().zip(&by_rust).enumerate() {
            if a != b {
                assert!(
                    signatures
                        .iter()
                        .any(|(start, end)| at >= *start && at < *end),
                    "{file}: the sh engine and the native one differ at {at}, outside the signature"
                );
            }
        }
        if !Path::new("/usr/bin/codesign").exists() && by_sh != by_rust {
            let report = verify(&native.join(file));
            assert!(
                report["slices"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|s| s["valid"] == false),
                "{file}: {report}"
            );
        }
    }

    // On a Mac the sh engine calls /usr/bin/codesign exactly for the signed Mach-O files it
    // patched: run with a recording stub in its place.
    let stubbed = scratch.path("c");
    extract(&bundle, &stubbed);
    let log = scratch.path("codesign.log");
    let stub = scratch.path("codesign-stub");
    std::fs::write(
        &stub,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >>'{}'\n\
             case \"$*\" in '-d '*-unsigned) exit 1 ;; esac\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&stub, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let script = std::fs::read_to_string(stubbed.join("bin/gopack-unpack")).unwrap();
    assert!(script.contains("/usr/bin/codesign -f -s - --preserve-metadata="));
    let runner = stubbed.join("bin/gopack-unpack-stubbed");
    std::fs::write(
        &runner,
        script.replace("/usr/bin/codesign", stub.to_str().unwrap()),
    )
    .unwrap();
    run_ok(Command::new(which("dash")).arg(&runner).arg("-q"));
    let calls = std::fs::read_to_string(&log).unwrap();
    // Asked for each patched Mach-O file; re-signed only where it was signed.
    let mut expected = format!("-d {}\n", stubbed.join("bin/app-unsigned").display());
    for file in ["bin/app", "bin/app-universal"] {
        let path = stubbed.join(file);
        expected.push_str(&format!(
            "-d {}\n-f -s - --preserve-metadata=identifier,entitlements,flags {}.gopack-new\n",
            path.display(),
            path.display()
        ));
    }
    let mut got: Vec<&str> = calls.lines().collect();
    let mut want: Vec<&str> = expected.lines().collect();
    got.sort();
    want.sort();
    assert_eq!(got, want, "codesign calls");

    let fixed = scratch.path("fixed/app");
    let fixed_bundle = scratch.path("fixed.tar.zst");
    pack(
        &prefix,
        &fixed_bundle,
        &["--dest-prefix", fixed.to_str().unwrap()],
    );
    extract(&fixed_bundle, &fixed);
    check(&fixed, &prefix, &prefix, &go, "--dest-prefix");
    // And a --dest-prefix bundle unpacked elsewhere relocates (and re-signs) again.
    let again = scratch.path("again/somewhere/else");
    run_ok(
        gopack()
            .arg("unpack")
            .arg(&fixed_bundle)
            .arg("-d")
            .arg(&again),
    );
    check(&again, &fixed, &prefix, &go, "--dest-prefix then unpack");
}

#[test]
fn hostile_macho_headers_give_errors_not_panics() {
    if !have_tools("hostile_macho_headers_give_errors_not_panics") {
        return;
    }
    let (fixtures, placeholder) = fixtures();
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    let mut next = move || random.next();
    for file in ["bin/app", "bin/app-universal"] {
        let original = std::fs::read(fixtures.join(file)).unwrap();
        for _ in 0..3000 {
            let mut data = original.clone();
            for _ in 0..(next() % 8 + 1) {
                // Mostly the headers and load commands, sometimes anywhere.
                let at = if next() % 4 == 0 {
                    next() as usize % data.len()
                } else {
                    next() as usize % 4096.min(data.len())
                };
                data[at] = next() as u8;
            }
            if next() % 16 == 0 {
                data.truncate(next() as usize % data.len());
            }
            let _ = gopack::relocate::macho::plan_load_commands(
                &data,
                placeholder.as_bytes(),
                b"bin/app",
            );
            let _ = gopack::relocate::macho::signature_patches(&data);
        }
    }
}
