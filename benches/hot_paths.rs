//! Criterion benchmarks of gopack's hot paths: reading a file once for its hash, kind and
//! prefix occurrences; deterministic tar headers; text and C-string rewriting; writing and
//! reading (validating) the manifest of a large environment; relocating an extracted
//! environment in place, as the native relocator does on the target.

// Benchmarks and examples use std::fs freely; `.ci/clippy.toml` forbids it in the library.
#![allow(clippy::disallowed_methods, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::io::Write;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use memchr::memmem::Finder;

use gopack::archive::header::{Member, write_header};
use gopack::relocate::binary::slot_at;
use gopack::relocate::text::replace_all;
use gopack::scan::content::analyse;

const PREFIX: &[u8] = b"/opt/conda/envs/analytics-service-prod";

/// 32 MiB of binary-looking data with a prefix string every 64 KiB.
fn sample() -> Vec<u8> {
    let mut data = Vec::with_capacity(32 << 20);
    let mut state: u32 = 0x1234_5678;
    while data.len() < 32 << 20 {
        if data.len() % (64 << 10) == 0 {
            data.extend_from_slice(PREFIX);
            data.extend_from_slice(b"/lib/python3.11\0");
        }
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        data.push((state >> 24) as u8);
    }
    data
}

fn bench_analyse(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blob.so");
    let data = sample();
    std::fs::File::create(&path)
        .unwrap()
        .write_all(&data)
        .unwrap();
    let finder = Finder::new(PREFIX);
    let mut group = c.benchmark_group("analyse");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("hash+kind+prefix search, 32 MiB", |b| {
        let cancel = std::sync::atomic::AtomicBool::new(false);
        b.iter(|| analyse(&path, b"blob.so", data.len() as u64, &finder, &cancel).unwrap())
    });
    group.finish();
}

fn bench_headers(c: &mut Criterion) {
    let paths: Vec<Vec<u8>> = (0..10_000)
        .map(|i| {
            format!(
                "lib/python3.11/site-packages/package_{}/module_{i}.py",
                i % 97
            )
            .into_bytes()
        })
        .collect();
    let mut group = c.benchmark_group("tar headers");
    group.throughput(Throughput::Elements(paths.len() as u64));
    group.bench_function("10k ustar headers", |b| {
        b.iter(|| {
            let mut sink = std::io::sink();
            for path in &paths {
                let member = Member {
                    path,
                    entry_type: tar::EntryType::Regular,
                    mode: 0o644,
                    mtime: 1_700_000_000,
                    size: 1234,
                    link: None,
                };
                write_header(&mut sink, &member).unwrap();
            }
        })
    });
    group.finish();
}

fn bench_rewrite(c: &mut Criterion) {
    let text: Vec<u8> = (0..20_000)
        .flat_map(|i| {
            format!(
                "'LIBDIR': '{}/lib', 'n': {i},\n",
                String::from_utf8_lossy(PREFIX)
            )
            .into_bytes()
        })
        .collect();
    let mut group = c.benchmark_group("rewrite");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("text replace_all", |b| {
        b.iter(|| {
            replace_all(
                black_box(&text),
                PREFIX,
                b"/srv/app/a-longer-target-prefix/env",
            )
        })
    });
    group.finish();
    let data = sample();
    c.bench_function("C-string slot at a hit", |b| {
        b.iter(|| slot_at(black_box(&data[..8192 * 2]), 0, 0, PREFIX, Some(255)).unwrap())
    });
}

/// A manifest of 100,000 files in 1,000 directories.
fn large_manifest() -> gopack::manifest::Manifest {
    use gopack::manifest::{FORMAT_VERSION, FileRecord, Manifest, PathKind, Totals};
    use gopack::relocate::{ByteString, Relocation};
    let mut files = Vec::new();
    for dir in 0..1000 {
        files.push(FileRecord {
            path: ByteString(format!("lib/python3.11/site-packages/pkg{dir}").into_bytes()),
            kind: PathKind::Dir,
            mode: 0o755,
            size: None,
            sha256: None,
            target: None,
        });
        for file in 0..99 {
            files.push(FileRecord {
                path: ByteString(
                    format!("lib/python3.11/site-packages/pkg{dir}/module_{file}.py").into_bytes(),
                ),
                kind: PathKind::File,
                mode: 0o644,
                size: Some(4096),
                sha256: gopack::manifest::Sha256::from_hex(&format!("{:064x}", dir * 100 + file)),
                target: None,
            });
        }
    }
    Manifest {
        format_version: FORMAT_VERSION,
        gopack_version: "bench".into(),
        source_prefix: ByteString(PREFIX.to_vec()),
        platform: "linux-64".into(),
        packages: Vec::new(),
        pip_packages: Vec::new(),
        go_binaries: Vec::new(),
        relocation: Relocation {
            source_prefix: ByteString(PREFIX.to_vec()),
            ..Relocation::default()
        },
        totals: Totals {
            files: 99_000,
            dirs: 1000,
            bytes: 99_000 * 4096,
            ..Totals::default()
        },
        files,
    }
}

fn bench_manifest(c: &mut Criterion) {
    let manifest = large_manifest();
    let json = manifest.to_json();
    let mut group = c.benchmark_group("manifest");
    group.throughput(Throughput::Elements(manifest.files.len() as u64));
    group.sample_size(20);
    group.bench_function("write, 100k files", |b| {
        b.iter(|| black_box(&manifest).to_json())
    });
    group.bench_function("read and validate, 100k files", |b| {
        b.iter(|| gopack::manifest::Manifest::from_json(black_box(&json)).unwrap())
    });
    group.finish();
}

fn bench_relocate_in_place(c: &mut Criterion) {
    use gopack::relocate::{ByteString, Relocation, TextRecord};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("env");
    let mut relocation = Relocation {
        source_prefix: ByteString(PREFIX.to_vec()),
        ..Relocation::default()
    };
    std::fs::create_dir_all(root.join(".gopack")).unwrap();
    for index in 0..1000 {
        let path = format!("etc/conf{}/file{index}.sh", index % 20);
        let full = root.join(&path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        let line = format!("export HOME={}/share\n", String::from_utf8_lossy(PREFIX));
        std::fs::write(&full, line.repeat(40)).unwrap();
        relocation
            .text
            .push(TextRecord::plain(ByteString(path.into_bytes()), 40));
    }
    std::fs::write(
        root.join(".gopack/records.sh"),
        gopack::relocate::script::records(&relocation),
    )
    .unwrap();
    let cancel = std::sync::atomic::AtomicBool::new(false);
    let mut group = c.benchmark_group("relocate in place");
    group.throughput(Throughput::Elements(1000));
    group.sample_size(10);
    group.bench_function("1,000 text files", |b| {
        b.iter(|| {
            // Every run rewrites every file again: the recorded state is reset to the packed one.
            let _ = std::fs::remove_file(root.join(".gopack/prefix"));
            gopack::relocate::in_place::relocate_in_place(&root, &cancel).unwrap()
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    bench_analyse,
    bench_headers,
    bench_rewrite,
    bench_manifest,
    bench_relocate_in_place
);
criterion_main!(benches);
