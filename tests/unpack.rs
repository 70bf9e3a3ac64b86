//! `gopack unpack`: the same tree as `tar -x` + `bin/gopack-unpack`, verification against the
//! manifest, and hostile, corrupt, truncated or tampered bundles refused with nothing written.

use std::path::Path;
use std::process::Command;

use crate::util::bundle::{RawEntry, hostile_bundle};
use crate::util::*;

#[test]
fn real_env_native_unpack_matches_tar_plus_script_and_works() {
    let scratch = Scratch::new();
    let env = scratch.env("src/env", &[]);
    let bundle = scratch.path("env.tar.zst");
    pack(&env, &bundle, &["-q"]);
    let dest = scratch.path("target dir/env");
    run_ok(&mut unpack_command(&bundle, &dest));
    let native = tree_snapshot(&dest);
    std::fs::rename(&dest, scratch.path("native")).unwrap();
    // `tar -x` + the script, which hands over to the relocator the bundle carries, and the
    // script alone: the same tree as the native unpack, byte for byte.
    let posix = posix_bin(&scratch.path("posix-bin"), false);
    for sh_only in [true, false] {
        let _ = std::fs::remove_dir_all(&dest);
        extract(&bundle, &dest);
        let said = run_ok(&mut unpack_script(&dest, &posix, sh_only));
        assert_eq!(said.contains("(native relocator)"), !sh_only, "{said}");
        assert_eq!(native, tree_snapshot(&dest), "sh only: {sh_only}");
    }

    std::fs::rename(&env, scratch.path("src/away")).unwrap();
    let out = run_ok(
        Command::new(dest.join("bin/python3"))
            .env_clear()
            .args(["-c", "import sys, numpy; print(sys.prefix)"]),
    );
    assert_eq!(out.trim(), dest.to_str().unwrap());
    let out = run_ok(
        Command::new("/usr/bin/dash")
            .arg(dest.join("bin/gopack-unpack"))
            .env_clear()
            .env("PATH", &posix),
    );
    assert!(out.contains("already relocated"), "{out}");

    // A non-empty destination needs -f, which replaces it whole.
    let stderr = run_fails(&mut unpack_command(&bundle, &dest), 1);
    assert!(
        stderr.contains("not empty") && stderr.contains("-f"),
        "{stderr}"
    );
    std::fs::write(dest.join("stray-file"), b"x").unwrap();
    run_ok(unpack_command(&bundle, &dest).arg("-f"));
    assert!(!dest.join("stray-file").exists());
    assert_no_leftovers(dest.parent().unwrap());
}

#[test]
fn hostile_bundles_are_refused_and_nothing_is_written() {
    use tar::EntryType::*;
    let scratch = Scratch::new();
    let cases: Vec<(&str, Vec<RawEntry<'_>>, &str)> = vec![
        ("parent", vec![(b"../evil", Regular, b"", b"x")], "../evil"),
        (
            "absolute",
            vec![(b"/tmp/gopack-evil-abs", Regular, b"", b"x")],
            "/tmp/gopack-evil-abs",
        ),
        (
            "symlink-out",
            vec![(b"link", Symlink, b"../../outside", b"")],
            "link",
        ),
        (
            "symlink-abs",
            vec![(b"link", Symlink, b"/etc", b"")],
            "link",
        ),
        (
            "through-link",
            vec![(b"d", Symlink, b".", b""), (b"d/evil", Regular, b"", b"x")],
            "d/evil",
        ),
        (
            "chain",
            vec![
                (b"s", Symlink, b".", b""),
                (b"a", Symlink, b"s/s/s/../../escape", b""),
            ],
            "a",
        ),
        (
            "hardlink-out",
            vec![(b"h", Link, b"../../etc/passwd", b"")],
            "h",
        ),
        ("device", vec![(b"dev", Char, b"", b"")], "dev"),
        ("fifo", vec![(b"fifo", Fifo, b"", b"")], "fifo"),
    ];
    for (name, entries, named) in cases {
        let bundle = scratch.path(&format!("{name}.tar"));
        hostile_bundle(&bundle, &entries);
        let dest = scratch.path(&format!("out/{name}/env"));
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        let stderr = run_fails(&mut unpack_command(&bundle, &dest), 1);
        assert!(stderr.contains(&format!("`{named}`")), "{name}: {stderr}");
        assert!(!dest.exists(), "{name}: destination was created");
        assert_no_leftovers(dest.parent().unwrap());
    }
    assert!(!scratch.path("out/evil").exists());
    assert!(!Path::new("/tmp/gopack-evil-abs").exists());
}

#[test]
fn corrupt_truncated_and_tampered_bundles_are_refused() {
    let scratch = Scratch::new();
    // Enough incompressible bytes that the middle of the bundle is file content.
    let noise = incompressible(1 << 20);
    let env = crate::util::synthetic::SyntheticEnv::new(&scratch.path("env"))
        .text("etc/greeting.txt", "Greetings from the gopack tests\n")
        .file("share/noise.bin", &noise, 0o644)
        .build();
    let bundle = scratch.path("env.tar.zst");
    pack(&env, &bundle, &["-q"]);
    let bytes = std::fs::read(&bundle).unwrap();

    let corrupt = scratch.path("corrupt.tar.zst");
    let mut flipped = bytes.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x55;
    std::fs::write(&corrupt, &flipped).unwrap();
    let truncated = scratch.path("truncated.tar.zst");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    for bad in [&corrupt, &truncated] {
        let dest = scratch.path("dest/env");
        let stderr = run_fails(&mut unpack_command(bad, &dest), 1);
        assert!(
            stderr.contains("corrupt") || stderr.contains("truncated"),
            "{stderr}"
        );
        assert!(!dest.exists());
        assert_no_leftovers(&scratch.path("dest"));
    }

    // A plain tar whose file content was altered after packing fails its sha256.
    let plain = scratch.path("env.tar");
    pack(&env, &plain, &["-q", "--no-checksum"]);
    let mut tar_bytes = std::fs::read(&plain).unwrap();
    let at = memchr_find(&tar_bytes, b"Greetings from the gopack").expect("greeting in the tar");
    tar_bytes[at] = b'g';
    std::fs::write(&plain, &tar_bytes).unwrap();
    let dest = scratch.path("dest/env");
    let stderr = run_fails(&mut unpack_command(&plain, &dest), 1);
    assert!(stderr.contains("does not match its sha256"), "{stderr}");
    assert!(!dest.exists());

    // Not a gopack bundle at all.
    let foreign = scratch.path("foreign.tar");
    run_ok(
        Command::new("tar")
            .arg("-cf")
            .arg(&foreign)
            .arg("-C")
            .arg(&env)
            .arg("etc"),
    );
    let stderr = run_fails(&mut unpack_command(&foreign, &dest), 1);
    assert!(stderr.contains("not written by gopack"), "{stderr}");
    let stderr = run_fails(gopack().arg("inspect").arg(&foreign), 1);
    assert!(stderr.contains("not written by gopack"), "{stderr}");
}

fn memchr_find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
