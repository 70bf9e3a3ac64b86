//! `gopack unpack` and `gopack inspect` against hostile, corrupt and foreign input and against
//! interruption (issue 8, items 5–10, 12, 14, 16, and signals): each defect has a test named
//! after it. Small synthetic environments and hand-made bundles only, so every test runs in
//! milliseconds; interrupted runs are stopped at a deterministic point (a fifo as the bundle,
//! written by the test) or their leftovers are laid out on disk.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::Digest;

use crate::util::bundle::{HandBundle, Raw, header, write_maybe_zstd};
use crate::util::synthetic::SyntheticEnv;
use crate::util::*;

fn inspect(bundle: &Path) -> Command {
    let mut command = gopack();
    command.arg("inspect").arg(bundle);
    command
}

/// A small environment: a text file holding the prefix, a script, a nested directory.
fn small_env(scratch: &Scratch) -> PathBuf {
    SyntheticEnv::new(&scratch.path("env"))
        .text("etc/a.txt", "x=@PREFIX@\n")
        .file("bin/tool", b"#!/bin/sh\necho hi\n", 0o755)
        .text("share/doc/readme", "hello\n")
        .build()
}

fn packed(scratch: &Scratch, name: &str) -> PathBuf {
    let env = small_env(scratch);
    let bundle = scratch.path(name);
    pack(&env, &bundle, &["-q"]);
    bundle
}

/// Asserts that a command's output is UTF-8 text with no control character but line breaks:
/// nothing from a bundle reaches the terminal undecoded.
fn assert_printable(bytes: &[u8]) {
    let text = std::str::from_utf8(bytes)
        .unwrap_or_else(|_| panic!("output is not UTF-8: {}", String::from_utf8_lossy(bytes)));
    assert!(
        !text.chars().any(|c| c.is_control() && c != '\n'),
        "control characters in output: {text:?}"
    );
}

/// Runs a command that must fail with exit code 1 and print only printable text; returns
/// its stderr.
fn refused(command: &mut Command) -> String {
    let output = command.output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(1),
        "{command:?}\n{}",
        text(&output)
    );
    assert_printable(&output.stderr);
    assert!(!text(&output).contains("panicked"), "{}", text(&output));
    String::from_utf8(output.stderr).unwrap()
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `command` run through `sh -c 'umask MASK && exec …'`, and, as root, as user 65534 through
/// setpriv (the test machine runs as root; the unpack must really run as another user).
fn wrapped(command: &Command, umask: Option<&str>, as_nobody: bool) -> Command {
    let mut argv: Vec<std::ffi::OsString> = Vec::new();
    if as_nobody && is_root() {
        argv.extend(
            [
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--",
            ]
            .map(Into::into),
        );
    }
    if let Some(mask) = umask {
        argv.extend(["sh", "-c", &format!("umask {mask} && exec \"$0\" \"$@\"")].map(Into::into));
    }
    argv.push(command.get_program().to_owned());
    argv.extend(command.get_args().map(ToOwned::to_owned));
    let mut out = Command::new(&argv[0]);
    out.args(&argv[1..]);
    for (key, value) in command.get_envs() {
        if let Some(value) = value {
            out.env(key, value);
        }
    }
    out
}

/// Makes the scratch directory traversable by another user (tempdirs are 0700).
fn open_scratch(scratch: &Scratch) {
    std::fs::set_permissions(scratch.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn mode_of(path: &Path) -> u32 {
    path.symlink_metadata().unwrap().permissions().mode() & 0o7777
}

/// The offset and size of `name`'s content in a plain tar.
fn member_span(tar: &[u8], name: &str) -> (usize, usize) {
    let mut archive = tar::Archive::new(tar);
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        if entry.path_bytes().as_ref() == name.as_bytes() {
            return (entry.raw_file_position() as usize, entry.size() as usize);
        }
    }
    panic!("no `{name}` in the archive");
}

// Item 5: decompression bombs.

/// `sh -c 'ulimit -f BLOCKS && exec …'`: writing more than about 2 MiB kills the process
/// (SIGXFSZ), so a test sees whether a bomb was written before it was refused.
fn file_size_limited(command: &Command) -> Command {
    let mut out = Command::new("sh");
    out.arg("-c")
        .arg("ulimit -f 4096 && exec \"$0\" \"$@\"")
        .arg(command.get_program())
        .args(command.get_args());
    for (key, value) in command.get_envs() {
        if let Some(value) = value {
            out.env(key, value);
        }
    }
    out
}

#[test]
fn bomb_unlisted_entry_is_refused_before_it_is_written() {
    let scratch = Scratch::new();
    let bundle = scratch.path("bomb.tar.zst");
    HandBundle::new()
        .file("a.txt", b"a\n")
        .file("bomb", &vec![0u8; 16 << 20])
        .unlisted()
        .write(&bundle);
    assert!(std::fs::metadata(&bundle).unwrap().len() < 64 * 1024);
    let dest = scratch.path("out/env");
    let stderr = refused(&mut file_size_limited(&unpack_command(&bundle, &dest)));
    assert!(stderr.contains("`bomb` is not listed"), "{stderr}");
    assert!(!dest.exists());
    assert_no_leftovers(&scratch.path("out"));
}

#[test]
fn bomb_entry_larger_than_its_listing_is_refused_before_it_is_written() {
    let scratch = Scratch::new();
    let bundle = scratch.path("bomb.tar.zst");
    let hand = HandBundle::new().file("big", &vec![0u8; 16 << 20]);
    let mut manifest = hand.manifest();
    manifest["files"][0]["size"] = 3.into();
    manifest["files"][0]["sha256"] = hex::encode(sha2::Sha256::digest(b"abc")).into();
    hand.write_with(&bundle, &manifest);
    let dest = scratch.path("out/env");
    let stderr = refused(&mut file_size_limited(&unpack_command(&bundle, &dest)));
    assert!(
        stderr.contains("`big` differs from the manifest (16777216 bytes, the manifest says 3)"),
        "{stderr}"
    );
    assert!(!dest.exists());
    assert_no_leftovers(&scratch.path("out"));
}

#[test]
fn huge_manifest_is_refused_before_it_is_read() {
    let scratch = Scratch::new();
    let bundle = scratch.path("huge.tar");
    // The header claims 300 MiB; only its start is there. Nothing of it is read.
    let manifest = Raw {
        name: b".gopack/manifest.json".to_vec(),
        kind: tar::EntryType::Regular,
        link: Vec::new(),
        data: b"{".to_vec(),
        mode: 0o644,
        listed: false,
        header_size: Some(300 << 20),
    };
    let mut tar = header(&manifest).to_vec();
    tar.extend_from_slice(&[b' '; 4096]);
    std::fs::write(&bundle, &tar).unwrap();
    for command in [
        &mut inspect(&bundle),
        &mut unpack_command(&bundle, &scratch.path("out/env")),
    ] {
        let stderr = refused(command);
        assert!(
            stderr
                .contains("manifest is 314572800 bytes; gopack reads manifests of at most 256 MiB"),
            "{stderr}"
        );
    }
    assert!(!scratch.path("out/env").exists());
}

// Item 6: everything verified.

#[test]
fn gopack_metadata_files_are_verified() {
    let scratch = Scratch::new();
    let bundle = packed(&scratch, "env.tar");
    let pristine = std::fs::read(&bundle).unwrap();
    for name in [".gopack/env_vars.sh", ".gopack/records.sh"] {
        let (at, size) = member_span(&pristine, name);
        assert!(size > 0, "{name} is empty");
        let mut altered = pristine.clone();
        altered[at] ^= 0x20;
        let tampered = scratch.path("tampered.tar");
        std::fs::write(&tampered, &altered).unwrap();
        let dest = scratch.path("out/env");
        let stderr = refused(&mut unpack_command(&tampered, &dest));
        assert!(
            stderr.contains(&format!("`{name}` does not match its sha256")),
            "{stderr}"
        );
        assert!(!dest.exists());
        assert_no_leftovers(&scratch.path("out"));
    }
    // And the manifest lists them (inspect shows what unpack verifies).
    let listed = manifest(&bundle)["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect::<Vec<_>>();
    for name in [".gopack", ".gopack/env_vars.sh", ".gopack/records.sh"] {
        assert!(listed.iter().any(|p| p == name), "{name} not listed");
    }
    assert!(!listed.iter().any(|p| p == ".gopack/manifest.json"));
    run_ok(&mut unpack_command(&bundle, &scratch.path("out/env")));
}

#[test]
fn unlisted_gopack_files_symlinks_hard_links_and_directories_are_refused() {
    let scratch = Scratch::new();
    let base = || HandBundle::new().dir(".gopack").file("a.txt", b"a\n");
    let cases = [
        (
            "gopack-file",
            base().file(".gopack/extra.sh", b"echo evil\n"),
            ".gopack/extra.sh",
        ),
        ("symlink", base().symlink("l", "a.txt"), "l"),
        ("hardlink", base().hard_link("h", "a.txt"), "h"),
        ("dir", base().dir("d"), "d"),
    ];
    for (case, hand, named) in cases {
        let bundle = scratch.path(&format!("{case}.tar"));
        hand.clone().unlisted().write(&bundle);
        // Listed, the same bundle unpacks.
        hand.write(&scratch.path("listed.tar"));
        run_ok(&mut unpack_command(
            &scratch.path("listed.tar"),
            &scratch.path(&format!("ok/{case}")),
        ));
        let dest = scratch.path(&format!("out/{case}"));
        let stderr = refused(&mut unpack_command(&bundle, &dest));
        assert!(
            stderr.contains(&format!("`{named}` is not listed in the manifest")),
            "{case}: {stderr}"
        );
        assert!(!dest.exists(), "{case}");
        assert_no_leftovers(&scratch.path("out"));
    }
}

#[test]
fn listed_entries_must_match_their_type_size_mode_and_target() {
    let scratch = Scratch::new();
    let hand = HandBundle::new()
        .file("a.txt", b"a\n")
        .file("b.txt", b"b\n")
        .symlink("l", "a.txt")
        .hard_link("h", "a.txt")
        .dir("d");
    // (case, file index in the manifest, field, value, expected words)
    let cases: [(&str, usize, &str, serde_json::Value, &str); 5] = [
        (
            "symlink-target",
            2,
            "target",
            "b.txt".into(),
            "it points to `a.txt`",
        ),
        (
            "hardlink-target",
            3,
            "target",
            "b.txt".into(),
            "it links to `a.txt`",
        ),
        (
            "type",
            4,
            "type",
            "file".into(),
            "it is a directory, the manifest lists a file",
        ),
        (
            "mode",
            0,
            "mode",
            0o600.into(),
            "mode 644, the manifest says 600",
        ),
        (
            "size",
            1,
            "size",
            2000.into(),
            "2 bytes, the manifest says 2000",
        ),
    ];
    for (case, index, field, value, words) in cases {
        let mut manifest = hand.manifest();
        manifest["files"][index][field] = value;
        if field == "type" {
            manifest["files"][index]["size"] = 0.into();
            manifest["files"][index]["sha256"] = hex::encode(sha2::Sha256::digest(b"")).into();
        }
        let bundle = scratch.path(&format!("{case}.tar"));
        hand.write_with(&bundle, &manifest);
        let dest = scratch.path(&format!("out/{case}"));
        let stderr = refused(&mut unpack_command(&bundle, &dest));
        assert!(
            stderr.contains("differs from the manifest") && stderr.contains(words),
            "{case}: {stderr}"
        );
        assert!(!dest.exists());
        assert_no_leftovers(&scratch.path("out"));
    }
}

#[test]
fn zeroed_zstd_checksum_is_refused() {
    let scratch = Scratch::new();
    let bundle = packed(&scratch, "env.tar.zst");
    let mut bytes = std::fs::read(&bundle).unwrap();
    let end = bytes.len();
    assert_ne!(bytes[end - 4..], [0, 0, 0, 0]);
    bytes[end - 4..].fill(0);
    let zeroed = scratch.path("zeroed.tar.zst");
    std::fs::write(&zeroed, &bytes).unwrap();
    let dest = scratch.path("out/env");
    let stderr = refused(&mut unpack_command(&zeroed, &dest));
    assert!(stderr.contains("corrupt"), "{stderr}");
    assert!(!dest.exists());
    assert_no_leftovers(&scratch.path("out"));
    // Data after the end of the archive is refused too, in a plain tar as in zstd.
    let mut tar = HandBundle::new().file("a.txt", b"a\n").manifest_tar();
    tar.extend_from_slice(b"appended");
    let appended = scratch.path("appended.tar.zst");
    write_maybe_zstd(&appended, &tar);
    let stderr = refused(&mut unpack_command(&appended, &dest));
    assert!(
        stderr.contains("data follows the end of the archive"),
        "{stderr}"
    );
    run_ok(&mut unpack_command(&bundle, &dest));
}

trait ManifestTar {
    fn manifest_tar(&self) -> Vec<u8>;
}

impl ManifestTar for HandBundle {
    /// The tar stream with the bundle's own manifest.
    fn manifest_tar(&self) -> Vec<u8> {
        self.tar(&serde_json::to_vec(&self.manifest()).unwrap())
    }
}

// Item 7: hostile manifests.

#[test]
fn hostile_manifest_records_are_refused_without_panic_or_abort() {
    let scratch = Scratch::new();
    std::fs::create_dir_all(scratch.path("out")).unwrap();
    let hand = HandBundle::new()
        .dir("bin")
        .file("bin/tool", &[b'x'; 64])
        .file("bin/other", b"other\n")
        .symlink("bin/link", "tool");
    let slot = |offset: u64, room: u64, pieces: Vec<&str>| {
        serde_json::json!({"path": "bin/tool", "macho": false,
            "slots": [{"offset": offset, "room": room, "pieces": pieces}]})
    };
    let text = |path: &str| serde_json::json!({"path": path, "occurrences": 1});
    let many_pieces: Vec<&str> = vec![""; 100];
    // (case, relocation field, record, words in the error)
    let cases: Vec<(&str, &str, serde_json::Value, &str)> = vec![
        (
            "room-2^40",
            "binary",
            slot(0, 1 << 40, vec!["", "/lib"]),
            "does not lie inside the file",
        ),
        (
            "offset-2^64",
            "binary",
            slot(u64::MAX - 7, 16, vec!["", "/lib"]),
            "does not lie inside the file",
        ),
        (
            "pieces",
            "binary",
            slot(0, 10, many_pieces),
            "does not fit its room",
        ),
        (
            "unlisted",
            "text",
            text("etc/missing"),
            "`etc/missing` does not name a regular file",
        ),
        (
            "symlink",
            "text",
            text("bin/link"),
            "`bin/link` does not name a regular file",
        ),
        (
            "parent",
            "text",
            text("../../etc/passwd"),
            "`..` leads outside",
        ),
        ("absolute", "text", text("/etc/passwd"), "absolute path"),
        ("empty", "text", text(""), "empty name"),
        (
            "links",
            "text",
            serde_json::json!({"path": "bin/tool", "occurrences": 1, "links": ["bin/other"]}),
            "`bin/other` is not listed as a hard link to it",
        ),
    ];
    for (case, field, record, words) in cases {
        let mut manifest = hand.manifest();
        manifest["relocation"][field] = serde_json::json!([record]);
        let bundle = scratch.path(&format!("{case}.tar.zst"));
        hand.write_with(&bundle, &manifest);
        let stderr = refused(&mut inspect(&bundle));
        assert!(stderr.contains(words), "{case}: {stderr}");
        let dest = scratch.path(&format!("out/{case}"));
        let stderr = refused(&mut unpack_command(&bundle, &dest));
        assert!(stderr.contains(words), "{case}: {stderr}");
        assert!(!dest.exists());
        assert_no_leftovers(&scratch.path("out"));
    }
    let mut manifest = hand.manifest();
    manifest["source_prefix"] = "".into();
    let bundle = scratch.path("prefix.tar");
    hand.write_with(&bundle, &manifest);
    let stderr = refused(&mut inspect(&bundle));
    assert!(stderr.contains("is not an absolute path"), "{stderr}");
}

// Item 8: leftovers.

#[test]
fn failed_final_rename_leaves_no_staging() {
    let scratch = Scratch::new();
    let bundle = packed(&scratch, "env.tar.zst");
    // `-d work/x/..` names `work` itself: resolved, it is replaced like any destination.
    std::fs::create_dir_all(scratch.path("work/x")).unwrap();
    std::fs::write(scratch.path("work/old"), b"old").unwrap();
    run_ok(gopack().current_dir(scratch.path("")).args([
        "unpack",
        "env.tar.zst",
        "-d",
        "work/x/..",
        "-f",
    ]));
    assert!(scratch.path("work/etc/a.txt").is_file());
    assert!(!scratch.path("work/old").exists());
    assert_no_leftovers(&scratch.path(""));
    assert_no_leftovers(&scratch.path("work"));
    // `/` can never be replaced: refused before anything is written.
    let before: Vec<_> = std::fs::read_dir("/")
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    let stderr = refused(unpack_command(&bundle, Path::new("/")).arg("-f"));
    assert!(stderr.contains("root directory"), "{stderr}");
    let after: Vec<_> = std::fs::read_dir("/")
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    for name in &after {
        if !before.contains(name) && name.to_string_lossy().starts_with(".gopack-") {
            let _ = std::fs::remove_dir_all(Path::new("/").join(name));
            panic!("left behind in /: {name:?}");
        }
    }
}

/// Whether mount namespaces can be used here (root in a container that allows it).
fn can_mount() -> bool {
    is_root()
        && Command::new("unshare")
            .args(["-m", "true"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

#[test]
fn mount_point_destination_is_unpacked_into_or_refused_without_leftovers() {
    if !can_mount() {
        eprintln!("skipped: mount namespaces need root");
        return;
    }
    let scratch = Scratch::new();
    let bundle = packed(&scratch, "env.tar.zst");
    let dest = scratch.path("mnt/env");
    std::fs::create_dir_all(&dest).unwrap();
    let in_namespace = |script: &str, force: bool| {
        Command::new("unshare")
            .args(["-m", "sh", "-c"])
            .arg(format!(
                "mount -t tmpfs gopack-test \"$1\" && {script}; echo \"exit=$?\"; ls -A \"$1\""
            ))
            .arg("sh")
            .arg(&dest)
            .arg(env!("CARGO_BIN_EXE_gopack"))
            .arg(&bundle)
            .arg(if force { "-f" } else { "-q" })
            .env("GOPACK_NO_PROGRESS", "1")
            .output()
            .unwrap()
    };
    // Empty: unpacked inside the mount point.
    let output = in_namespace(
        "\"$2\" unpack \"$3\" -d \"$1\" \"$4\" && cat \"$1/etc/a.txt\"",
        false,
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("x={}", dest.display())),
        "{}",
        text(&output)
    );
    assert!(
        stdout.contains("exit=0") && !stdout.contains(".gopack-"),
        "{}",
        text(&output)
    );
    // Not empty, with -f: refused, the old content kept.
    let output = in_namespace(
        "touch \"$1/old\" && \"$2\" unpack \"$3\" -d \"$1\" \"$4\"",
        true,
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("exit=1") && stdout.ends_with("exit=1\nold\n"),
        "{}",
        text(&output)
    );
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("mount point"),
        "{}",
        text(&output)
    );
    assert_no_leftovers(&scratch.path("mnt"));
}

/// Starts `gopack unpack FIFO -d DEST` and feeds it `first` through the fifo. When the write
/// returns, gopack has read all but a pipe's and its read buffer's worth (together under
/// 1.1 MiB) of it: with more than that after the manifest, it has created its staging
/// directory and is writing a file. No timing involved.
fn stopped_in_a_file(
    scratch: &Scratch,
    first: &[u8],
    dest: &Path,
) -> (std::process::Child, std::fs::File) {
    let fifo = scratch.path("bundle.fifo");
    run_ok(Command::new("mkfifo").arg(&fifo));
    let child = unpack_command(&fifo, dest)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut writer = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    if let Err(err) = writer.write_all(first) {
        let output = child.wait_with_output().unwrap();
        panic!("gopack stopped reading ({err}):\n{}", text(&output));
    }
    (child, writer)
}

/// A bundle with one listed file of `size` bytes of zeros, cut after `sent` of them.
fn big_file_start(size: u64, sent: usize) -> Vec<u8> {
    let data = vec![0u8; sent];
    let hand = HandBundle::new().file("big", &data);
    let mut manifest = hand.manifest();
    manifest["files"][0]["size"] = size.into();
    let mut tar = hand.tar(&serde_json::to_vec(&manifest).unwrap());
    tar.truncate(tar.len() - 1024); // no end-of-archive marker
    // The header claims `size`: fix it up.
    let at = tar.len() - sent - 512;
    let raw = Raw {
        name: b"big".to_vec(),
        kind: tar::EntryType::Regular,
        link: Vec::new(),
        data: Vec::new(),
        mode: 0o644,
        listed: true,
        header_size: Some(size),
    };
    tar[at..at + 512].copy_from_slice(&header(&raw));
    tar
}

fn staging_dirs(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".gopack-"))
        .collect()
}

#[test]
fn killed_unpack_leftovers_are_cleaned_by_the_next_run() {
    let scratch = Scratch::new();
    let dest = scratch.path("out/env");
    std::fs::create_dir_all(scratch.path("out")).unwrap();
    let start = big_file_start(64 << 20, 4 << 20);
    let (mut child, writer) = stopped_in_a_file(&scratch, &start, &dest);
    child.kill().unwrap(); // SIGKILL: nothing can be cleaned by the run itself
    child.wait().unwrap();
    drop(writer);
    assert!(
        !staging_dirs(&scratch.path("out")).is_empty(),
        "the killed run left nothing to clean"
    );
    let bundle = packed(&scratch, "env.tar.zst");
    run_ok(&mut unpack_command(&bundle, &dest));
    assert!(dest.join("etc/a.txt").is_file());
    assert_no_leftovers(&scratch.path("out"));
}

#[test]
fn sigterm_and_sighup_during_unpack_leave_nothing() {
    for (signal, number) in [
        ("TERM", libc::SIGTERM),
        ("HUP", libc::SIGHUP),
        ("INT", libc::SIGINT),
    ] {
        let scratch = Scratch::new();
        let dest = scratch.path("out/env");
        std::fs::create_dir_all(scratch.path("out")).unwrap();
        let declared: u64 = 1 << 40;
        let (child, mut writer) =
            stopped_in_a_file(&scratch, &big_file_start(declared, 4 << 20), &dest);
        let pid = libc::pid_t::try_from(child.id()).unwrap();
        // SAFETY: kill has no memory-safety preconditions; `pid` is our live child.
        assert_eq!(unsafe { libc::kill(pid, number) }, 0);
        // Keep feeding the one huge file until gopack stops reading: it must notice the signal
        // inside the file, not only between entries. (A run that ignores it would read on;
        // the cap turns that into a failure instead of a full disk.)
        let chunk = vec![0u8; 1 << 20];
        let mut fed: u64 = 0;
        while writer.write_all(&chunk).is_ok() {
            fed += chunk.len() as u64;
            assert!(
                fed < 2 << 30,
                "SIG{signal}: gopack kept reading after the signal"
            );
        }
        drop(writer);
        let output = child.wait_with_output().unwrap();
        assert_eq!(
            output.status.code(),
            Some(1),
            "SIG{signal}: {}",
            text(&output)
        );
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("interrupted"),
            "{}",
            text(&output)
        );
        assert!(!dest.exists());
        assert_no_leftovers(&scratch.path("out"));
    }
}

#[test]
fn force_replace_killed_between_renames_is_rolled_back() {
    let scratch = Scratch::new();
    let bundle = packed(&scratch, "env.tar.zst");
    let out = scratch.path("out");
    let dest = out.join("env");
    // A run with -f died after moving the old tree aside and before moving the new one in.
    let id = "k1llediddd";
    std::fs::create_dir_all(out.join(format!(".gopack-old-env-{id}/lib"))).unwrap();
    std::fs::write(
        out.join(format!(".gopack-old-env-{id}/lib/old.txt")),
        b"old",
    )
    .unwrap();
    std::fs::create_dir_all(out.join(format!(".gopack-unpack-env-{id}/etc"))).unwrap();
    std::fs::write(out.join(format!(".gopack-unpack-env-{id}.lock")), b"").unwrap();
    // The next run puts the old tree back: then the destination is not empty.
    let stderr = refused(&mut unpack_command(&bundle, &dest));
    assert!(stderr.contains("not empty"), "{stderr}");
    assert_eq!(std::fs::read(dest.join("lib/old.txt")).unwrap(), b"old");
    assert_no_leftovers(&out);
    run_ok(unpack_command(&bundle, &dest).arg("-f"));
    assert!(dest.join("etc/a.txt").is_file() && !dest.join("lib").exists());
    assert_no_leftovers(&out);
    // Replacing a file, and a tree with read-only directories, leaves nothing either.
    std::fs::set_permissions(
        dest.join("share/doc"),
        std::fs::Permissions::from_mode(0o555),
    )
    .unwrap();
    run_ok(unpack_command(&bundle, &dest).arg("-f"));
    let file_dest = out.join("file");
    std::fs::write(&file_dest, b"not a directory").unwrap();
    run_ok(unpack_command(&bundle, &file_dest).arg("-f"));
    assert!(file_dest.join("etc/a.txt").is_file());
    assert_no_leftovers(&out);
}

#[test]
fn killed_move_up_inside_the_destination_is_finished_by_the_next_run() {
    let scratch = Scratch::new();
    let bundle = packed(&scratch, "env.tar.zst");
    let dest = scratch.path("out/env");
    // A run staging inside an empty destination died while moving the tree up: `c` is
    // already up, `a` and `b` are still in the complete tree.
    let id = "m0vingupxx";
    let ready = dest.join(format!(".gopack-ready-env-{id}"));
    std::fs::create_dir_all(ready.join("a")).unwrap();
    std::fs::write(ready.join("b"), b"b").unwrap();
    std::fs::write(dest.join("c"), b"c").unwrap();
    std::fs::write(dest.join(format!(".gopack-unpack-env-{id}.lock")), b"").unwrap();
    let stderr = refused(&mut unpack_command(&bundle, &dest));
    assert!(stderr.contains("not empty"), "{stderr}");
    let mut names: Vec<String> = std::fs::read_dir(&dest)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["a", "b", "c"]);
    assert_no_leftovers(&scratch.path("out"));
}

// Item 9: unpacking into an empty, user-owned directory whose parent is not writable.

#[test]
fn unpack_into_empty_dest_under_a_read_only_parent_as_non_root() {
    let scratch = Scratch::new();
    open_scratch(&scratch);
    let bundle = packed(&scratch, "env.tar.zst");
    std::fs::set_permissions(&bundle, std::fs::Permissions::from_mode(0o644)).unwrap();
    let opt = scratch.path("opt");
    let app = opt.join("app");
    std::fs::create_dir_all(&app).unwrap();
    if is_root() {
        // A root-owned /opt and a user-owned, empty /opt/app.
        std::os::unix::fs::chown(&app, Some(65534), Some(65534)).unwrap();
    } else {
        std::fs::set_permissions(&opt, std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    let output = wrapped(&unpack_command(&bundle, &app), None, true)
        .output()
        .unwrap();
    if !is_root() {
        std::fs::set_permissions(&opt, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(
        std::fs::read_to_string(app.join("etc/a.txt")).unwrap(),
        format!("x={}\n", app.display())
    );
    if is_root() {
        use std::os::unix::fs::MetadataExt;
        assert_eq!(app.join("etc/a.txt").metadata().unwrap().uid(), 65534);
    }
    assert_no_leftovers(&app);
    assert_no_leftovers(&opt);
    // Not empty, it cannot be replaced there: a clear refusal, nothing left.
    let output = wrapped(unpack_command(&bundle, &app).arg("-f"), None, true)
        .output()
        .unwrap();
    if is_root() {
        assert_eq!(output.status.code(), Some(1), "{}", text(&output));
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("not writable"),
            "{}",
            text(&output)
        );
        assert_no_leftovers(&app);
        assert_no_leftovers(&opt);
    }
}

// Item 10: O_NOFOLLOW from the platform, not a literal.

#[test]
fn o_nofollow_is_the_platforms_constant_not_a_literal() {
    // The flag's value differs by architecture (x86 0o400000, aarch64 0o100000, …): no file
    // may spell one out.
    for entry in walkdir::WalkDir::new(repo().join("src")) {
        let entry = entry.unwrap();
        let Ok(source) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        for literal in ["0o400000", "0o100000", "0x0100", "0x8000", "custom_flags(0"] {
            assert!(
                !source.contains(literal),
                "{} hard-codes an open flag ({literal})",
                entry.path().display()
            );
        }
    }
}

// Item 12: inspect escapes what the manifest says.

#[test]
fn inspect_escapes_control_characters() {
    let scratch = Scratch::new();
    let hand = HandBundle::new().file("a.txt", b"a\n");
    let mut manifest = hand.manifest();
    manifest["platform"] = "linux-64\r\u{1b}[2K".into();
    manifest["source_prefix"] = "/x\u{1b}[31m".into();
    manifest["packages"] = serde_json::json!([{
        "name": "evil\u{1b}]0;pwned\u{7}", "version": "1\u{9b}2J", "build": "0\u{202e}",
        "channel": "c\nfake: line"
    }]);
    manifest["pip_packages"] = serde_json::json!([{
        "name": "p\u{1b}[1m", "version": "1", "installer": "pip\u{7}", "dist_info": "x"
    }]);
    let bundle = scratch.path("evil.tar");
    hand.write_with(&bundle, &manifest);
    let output = inspect(&bundle).output().unwrap();
    assert!(output.status.success(), "{}", text(&output));
    assert_printable(&output.stdout);
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains("evil\\x1b]0;pwned\\x07"), "{stdout}");
    assert!(stdout.contains("source prefix:  /x\\x1b[31m"), "{stdout}");
    assert!(stdout.contains("c\\x0afake: line"), "{stdout}");
    assert!(stdout.contains("0\\u{202e}"), "{stdout}");
    // Names in errors are escaped as well.
    let bundle = scratch.path("name.tar");
    HandBundle::new()
        .raw(b"a\x1b[2Jb\xff", tar::EntryType::Regular, b"", b"x")
        .unlisted()
        .write(&bundle);
    let stderr = refused(&mut unpack_command(&bundle, &scratch.path("out/env")));
    assert!(stderr.contains("a\\x1b[2Jb\\xff"), "{stderr}");
}

// Item 14: modes as GNU tar sets them.

/// An environment with a read-only directory holding a file to relocate.
fn moded_bundle(scratch: &Scratch) -> PathBuf {
    let env = SyntheticEnv::new(&scratch.path("menv"))
        .text("etc/a.txt", "x=@PREFIX@\n")
        .file("bin/tool", b"#!/bin/sh\n", 0o755)
        .text("share/ro/conf", "p=@PREFIX@\n")
        .build();
    for dir in ["etc", "bin", "share"] {
        std::fs::set_permissions(env.join(dir), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(env.join("share/ro"), std::fs::Permissions::from_mode(0o555)).unwrap();
    let bundle = scratch.path("moded.tar.zst");
    pack(&env, &bundle, &["-q"]);
    std::fs::set_permissions(env.join("share/ro"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&bundle, std::fs::Permissions::from_mode(0o644)).unwrap();
    bundle
}

#[test]
fn modes_follow_gnu_tar_root_keeps_them_others_get_the_umask() {
    let scratch = Scratch::new();
    open_scratch(&scratch);
    let bundle = moded_bundle(&scratch);
    if is_root() {
        let dest = scratch.path("root/env");
        run_ok(&mut wrapped(
            &unpack_command(&bundle, &dest),
            Some("077"),
            false,
        ));
        assert_eq!(mode_of(&dest.join("etc/a.txt")), 0o644);
        assert_eq!(mode_of(&dest.join("bin/tool")), 0o755);
        assert_eq!(mode_of(&dest.join("share")), 0o755);
        assert_eq!(mode_of(&dest.join("share/ro")), 0o555);
        assert_eq!(
            std::fs::read_to_string(dest.join("share/ro/conf")).unwrap(),
            format!("p={}\n", dest.display())
        );
        // An existing destination directory keeps its own mode and owner, as with `tar -C`.
        let kept = scratch.path("kept/env");
        std::fs::create_dir_all(&kept).unwrap();
        std::fs::set_permissions(&kept, std::fs::Permissions::from_mode(0o711)).unwrap();
        std::os::unix::fs::chown(&kept, Some(65534), Some(65534)).unwrap();
        run_ok(&mut unpack_command(&bundle, &kept));
        use std::os::unix::fs::MetadataExt;
        assert_eq!(mode_of(&kept), 0o711);
        assert_eq!(kept.metadata().unwrap().uid(), 65534);
        assert_no_leftovers(&scratch.path("kept"));
    }
    let home = scratch.path("user");
    std::fs::create_dir_all(&home).unwrap();
    if is_root() {
        std::os::unix::fs::chown(&home, Some(65534), Some(65534)).unwrap();
    }
    let dest = home.join("env");
    run_ok(&mut wrapped(
        &unpack_command(&bundle, &dest),
        Some("027"),
        true,
    ));
    assert_eq!(mode_of(&dest), 0o750);
    assert_eq!(mode_of(&dest.join("etc/a.txt")), 0o640);
    assert_eq!(mode_of(&dest.join("bin/tool")), 0o750);
    assert_eq!(mode_of(&dest.join("share")), 0o750);
    assert_eq!(mode_of(&dest.join("share/ro")), 0o550);
    assert_eq!(
        std::fs::read_to_string(dest.join("share/ro/conf")).unwrap(),
        format!("p={}\n", dest.display())
    );
    // Scratch must be removable by this process.
    std::fs::set_permissions(
        dest.join("share/ro"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
}

// Item 16: input that is not a bundle.

#[test]
fn non_bundles_are_named_and_no_raw_bytes_are_printed() {
    let scratch = Scratch::new();
    let mut random = Vec::with_capacity(4096);
    let mut state: u32 = 0x2545_f491;
    for _ in 0..4096 {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        random.push((state >> 24) as u8);
    }
    let gzip = {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(b"just some text\n").unwrap();
        encoder.finish().unwrap()
    };
    let zstd_text = zstd::encode_all(&b"just some text\n"[..], 3).unwrap();
    let mut elf = b"\x7fELF\x02\x01\x01\x00".to_vec();
    elf.resize(4096, 0);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("random", random, "data of an unknown kind"),
        (
            "zip",
            b"PK\x03\x04\x14\x00\x00\x00\x08\x00rest of a zip".to_vec(),
            "a zip archive",
        ),
        (
            "gzip",
            gzip,
            "gzip-compressed data that is not a tar archive",
        ),
        (
            "zstd",
            zstd_text,
            "zstd-compressed data that is not a tar archive",
        ),
        (
            "xz",
            b"\xfd7zXZ\x00\x00\x04\xe6\xd6\xb4\x46".to_vec(),
            "an xz-compressed file",
        ),
        (
            "bzip2",
            b"BZh91AY&SY\x1b\x00".to_vec(),
            "a bzip2-compressed file",
        ),
        ("7z", b"7z\xbc\xaf\x27\x1c\x00\x04".to_vec(), "a 7z archive"),
        ("text", b"hello\x1b[2J world\n".to_vec(), "a text file"),
        ("html", b"<!DOCTYPE html><html>".to_vec(), "an HTML page"),
        ("elf", elf, "an ELF executable or library"),
        ("empty", Vec::new(), "an empty file"),
    ];
    for (case, bytes, what) in cases {
        let path = scratch.path(case);
        std::fs::write(&path, &bytes).unwrap();
        for command in [
            &mut inspect(&path),
            &mut unpack_command(&path, &scratch.path("out/env")),
        ] {
            let stderr = refused(command);
            assert!(
                stderr.contains(&format!(
                    "`{}` is not a gopack bundle (it is {what}",
                    path.display()
                )),
                "{case}: {stderr}"
            );
        }
    }
    let stderr = refused(&mut inspect(&scratch.path("")));
    assert!(stderr.contains("(it is a directory)"), "{stderr}");
    // A tar whose header holds binary garbage in a number field.
    let mut tar = HandBundle::new().file("a.txt", b"a\n").manifest_tar();
    let manifest_blocks = {
        let (at, size) = member_span(&tar, ".gopack/manifest.json");
        at + size.div_ceil(512) * 512
    };
    let header = &mut tar[manifest_blocks..manifest_blocks + 512];
    header[124..136].copy_from_slice(b"\x1b[2J\xc3\x28zz\x00\x00\x00\x00");
    header[148..156].fill(b' ');
    let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    header[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    let garbage = scratch.path("garbage.tar");
    std::fs::write(&garbage, &tar).unwrap();
    let stderr = refused(&mut unpack_command(&garbage, &scratch.path("out/env")));
    assert!(stderr.contains("size: not an octal number"), "{stderr}");
    assert_no_leftovers(&scratch.path(""));
}
