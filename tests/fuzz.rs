//! Hostile bytes never panic a parser. Each test takes something real (a bundle gopack wrote,
//! its relocation records and manifest, a gcc-built ELF with a run path, the Go toolchain's
//! build info), damages it thousands of ways with a seeded generator, and feeds every copy to
//! the parser that reads such bytes from a bundle or an environment. A parser may refuse; it
//! must not panic. Tests build with overflow checks, so unchecked arithmetic panics here too.
//! `GOPACK_FUZZ_CASES` raises the number of cases (CI runs the default).

use std::path::Path;
use std::process::Command;

use crate::util::synthetic::SyntheticEnv;
use crate::util::*;

fn cases(default: usize) -> usize {
    std::env::var("GOPACK_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// One damaged copy of `original`: a few bytes changed (mostly in its first `hot` bytes, where
/// headers are), sometimes a run copied over another place, sometimes cut short.
fn damaged(random: &mut Random, original: &[u8], hot: usize) -> Vec<u8> {
    let mut data = original.to_vec();
    if data.is_empty() {
        return data;
    }
    for _ in 0..1 + random.below(8) {
        let range = if random.below(4) == 0 {
            data.len()
        } else {
            hot.clamp(1, data.len())
        };
        let at = random.below(range);
        data[at] = match random.below(4) {
            0 => 0,
            1 => 0xff,
            2 => data[at] ^ (1 << random.below(8)),
            _ => random.next() as u8,
        };
    }
    if random.below(8) == 0 {
        let len = random.below(64).min(data.len());
        let from = random.below(data.len() - len + 1);
        let to = random.below(data.len() - len + 1);
        let run = data[from..from + len].to_vec();
        data[to..to + len].copy_from_slice(&run);
    }
    if random.below(16) == 0 {
        data.truncate(random.below(data.len()));
    }
    data
}

/// The 512-byte blocks of `tar` that are headers: their stored checksum is their byte sum.
fn header_blocks(tar: &[u8]) -> Vec<usize> {
    tar.chunks_exact(512)
        .enumerate()
        .filter(|(_, block)| block.iter().any(|&b| b != 0) && stored_sum(block) == Some(sum(block)))
        .map(|(index, _)| index)
        .collect()
}

fn sum(block: &[u8]) -> u32 {
    block
        .iter()
        .enumerate()
        .map(|(at, &b)| {
            if (148..156).contains(&at) {
                32
            } else {
                u32::from(b)
            }
        })
        .sum()
}

fn stored_sum(block: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(&block[148..156]).ok()?;
    u32::from_str_radix(text.trim_matches(|c| c == ' ' || c == '\0'), 8).ok()
}

/// Recomputes the checksum of the header `blocks`, so that damaged headers pass it and the
/// parser behind the checksum is reached.
fn fix_tar_checksums(data: &mut [u8], blocks: &[usize]) {
    for &index in blocks {
        let Some(block) = data.get_mut(index * 512..(index + 1) * 512) else {
            continue;
        };
        let sum = sum(block);
        block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    }
}

fn small_bundle(scratch: &Scratch) -> std::path::PathBuf {
    let env = SyntheticEnv::new(&scratch.path("env"))
        .text("etc/a.conf", "home=@PREFIX@\n")
        .file("bin/tool", b"#!@PREFIX@/bin/python3.11\nprint(1)\n", 0o755)
        .symlink("lib/libx.so", "@PREFIX@/lib/libx.so.1")
        .text("lib/libx.so.1", "not really a library")
        .hard_link("lib/libx-again.so.1", "lib/libx.so.1")
        .dir("share/empty")
        .build();
    let bundle = scratch.path("env.tar");
    pack(&env, &bundle, &["-q", "--no-relocator"]);
    bundle
}

#[test]
fn damaged_tar_streams_are_refused_without_panic() {
    let scratch = Scratch::new();
    let original = std::fs::read(small_bundle(&scratch)).unwrap();
    let headers = header_blocks(&original);
    assert!(headers.len() > 5, "{headers:?}");
    let path = scratch.path("damaged.tar");
    let mut random = Random(0x5eed_0001);
    let mut refused = 0;
    for case in 0..cases(1500) {
        let mut data = damaged(&mut random, &original, original.len());
        if case % 2 == 0 {
            fix_tar_checksums(&mut data, &headers);
        }
        std::fs::write(&path, &data).unwrap();
        let outcome = (|| -> gopack::Result<()> {
            let mut reader = gopack::archive::read::open_bundle(&path)?;
            let mut buffer = [0u8; 700];
            while reader.next_member()?.is_some() {
                while reader.read_content(&mut buffer)? > 0 {}
            }
            reader.finish()
        })();
        if let Err(err) = outcome {
            refused += 1;
            // Every refusal names the bundle and says what is wrong.
            let message = err.to_string();
            assert!(
                message.contains("damaged.tar") || message.contains("not a gopack bundle"),
                "{message}"
            );
        }
    }
    // The damage is real: many copies are refused by the tar layer alone (the rest, damaged
    // in content, are what unpack's sha256 check is for: see the next test).
    assert!(refused > cases(1500) / 10, "only {refused} refused");
}

#[test]
fn damaged_bundles_are_refused_by_unpack_and_inspect_without_panic() {
    // The whole unpack and inspect paths, through the real binary: exit 1 with a message, or
    // success, never a panic (exit 101) or a signal.
    // A copy that unpacks must give exactly what the undamaged bundle gives (the damage was
    // somewhere nothing reads, such as padding).
    let scratch = Scratch::new();
    let bundle = small_bundle(&scratch);
    let original = std::fs::read(&bundle).unwrap();
    let headers = header_blocks(&original);
    let dest = scratch.path("dest");
    unpack(&bundle, &dest);
    let reference = tree_snapshot(&dest);
    let mut random = Random(0x5eed_0002);
    let mut unpacked = 0;
    for case in 0..cases(60) {
        let mut data = damaged(&mut random, &original, original.len());
        fix_tar_checksums(&mut data, &headers);
        let bundle = scratch.path(&format!("b{case}.tar"));
        std::fs::write(&bundle, &data).unwrap();
        let _ = std::fs::remove_dir_all(&dest);
        for (index, command) in [
            gopack().arg("unpack").arg(&bundle).arg("-d").arg(&dest),
            gopack().arg("inspect").arg(&bundle),
        ]
        .into_iter()
        .enumerate()
        {
            let output = command.output().unwrap();
            let code = output.status.code();
            assert!(
                matches!(code, Some(0 | 1)),
                "case {case}: exit {code:?}\n{}",
                text(&output)
            );
            if code == Some(1) {
                let stderr = String::from_utf8_lossy(&output.stderr);
                assert!(stderr.starts_with("error: "), "case {case}: {stderr}");
            } else if index == 0 {
                unpacked += 1;
                assert_eq!(tree_snapshot(&dest), reference, "case {case}");
            }
        }
    }
    // Both outcomes ran: some copies were damaged only where nothing is read, and unpacked.
    assert!(
        unpacked > 0 && unpacked < cases(60),
        "{unpacked} of {} unpacked",
        cases(60)
    );
}

#[test]
fn damaged_relocation_records_and_manifests_are_refused_without_panic() {
    let scratch = Scratch::new();
    let out = scratch.path("out");
    extract(&small_bundle(&scratch), &out);
    let records = std::fs::read(out.join(".gopack/records.sh")).unwrap();
    let manifest = std::fs::read(out.join(".gopack/manifest.json")).unwrap();
    gopack::relocate::script::parse_records(&records).unwrap();
    gopack::manifest::Manifest::from_json(&manifest).unwrap();
    let mut random = Random(0x5eed_0003);
    for _ in 0..cases(5000) {
        let data = damaged(&mut random, &records, records.len());
        let _ = gopack::relocate::script::parse_records(&data);
        let data = damaged(&mut random, &manifest, manifest.len());
        let _ = gopack::manifest::Manifest::from_json(&data);
    }
}

#[test]
fn damaged_go_build_info_is_refused_without_panic() {
    let go = which("go");
    let binary = std::fs::read(&go).unwrap();
    let magic = gopack::scan::content::GO_BUILDINFO_MAGIC;
    let at = binary
        .windows(magic.len())
        .position(|window| window == magic)
        .expect("the Go toolchain carries build info");
    let blob = &binary[at..(at + 64 * 1024).min(binary.len())];
    gopack::go::buildinfo::parse(blob).unwrap();
    let mut random = Random(0x5eed_0004);
    for _ in 0..cases(5000) {
        let data = damaged(&mut random, blob, 512);
        let _ = gopack::go::buildinfo::parse(&data);
    }
}

#[test]
fn damaged_elf_files_are_read_without_panic() {
    let scratch = Scratch::new();
    let source = scratch.path("hello.c");
    std::fs::write(&source, "int main(void) { return 0; }\n").unwrap();
    let built = scratch.path("hello");
    run_ok(
        Command::new("gcc")
            .arg(&source)
            .arg("-o")
            .arg(&built)
            .arg("-Wl,-rpath,/opt/old/prefix/lib:$ORIGIN/../lib,--enable-new-dtags"),
    );
    let original = std::fs::read(&built).unwrap();
    let read = |path: &Path| {
        let file = std::fs::File::open(path).unwrap();
        gopack::relocate::elf::search_paths(&file)
    };
    assert!(!read(&built).is_empty(), "gcc wrote no run path");
    let damaged_path = scratch.path("damaged");
    let mut random = Random(0x5eed_0005);
    for _ in 0..cases(1500) {
        // The ELF header, program headers and dynamic section are in the first pages.
        std::fs::write(&damaged_path, damaged(&mut random, &original, 16 * 1024)).unwrap();
        let _ = read(&damaged_path);
    }
}
