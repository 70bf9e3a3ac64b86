//! The relocation engine: the native engine (`gopack unpack`, `--dest-prefix`), the native
//! relocator bundles carry (`.gopack/relocate`, run by `bin/gopack-unpack`) and the POSIX sh
//! engine (`bin/gopack-unpack` alone, under dash and busybox sh) give identical bytes for random
//! records and random prefixes, and each defect of issue 8 that lives in relocation has a
//! regression test named after it.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;

use gopack::relocate::{
    BinaryRecord, ByteString, CStringSlot, Quoting, Relocation, ShebangLine, TextRecord,
};

use crate::util::synthetic::SyntheticEnv;
use crate::util::*;

/// A small deterministic generator (xorshift64*), so a failing case can be replayed by its seed.
/// Bytes a path component may hold in these tests: the ones that break naive quoting.
const AWKWARD: &[&[u8]] = &[
    b"a", b"Z", b"0", b"_", b"-", b".", b"+", b" ", b"'", b"\"", b"$", b"&", b"\\", b"|", b".*",
    b"$(x)", b"`", b";", b"%", b"!", b"\t", b"\xe9", b"\xff", b"[", b"]", b"^", b"~",
];

fn component(random: &mut Random) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..1 + random.below(6) {
        out.extend_from_slice(random.pick(AWKWARD));
    }
    out
}

/// Text around occurrences: separators, name bytes (which stop a replacement), newlines.
const FILLER: &[&[u8]] = &[
    b"",
    b"/lib",
    b"\n",
    b":",
    b"2",
    b".bak",
    b"x",
    b"'",
    b" ",
    b"\"",
    b"-new",
    b"=",
    b"\xc3\xa9",
];

fn text_content(random: &mut Random, old: &[u8], quoting: Quoting) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..random.below(8) {
        out.extend_from_slice(random.pick(FILLER));
        if random.below(3) > 0 {
            out.extend_from_slice(&quoting.escape(old));
        }
    }
    if random.below(2) == 0 {
        out.push(b'\n');
    }
    out
}

/// One random environment: its files (path → content) and its records.
struct Case {
    files: Vec<(Vec<u8>, Vec<u8>, u32)>,
    links: Vec<(Vec<u8>, Vec<u8>)>,
    relocation: Relocation,
}

fn random_case(random: &mut Random, old: &[u8], new_len: usize) -> Case {
    let mut files = Vec::new();
    let mut links = Vec::new();
    let mut relocation = Relocation {
        source_prefix: ByteString(old.to_vec()),
        ..Relocation::default()
    };
    for index in 0..1 + random.below(5) {
        let quoting = random.pick(&[Quoting::Plain, Quoting::Plain, Quoting::Sh, Quoting::Fish]);
        let path = format!("share/t{index}.txt").into_bytes();
        files.push((path.clone(), text_content(random, old, quoting), 0o644));
        let mut record = TextRecord {
            quoting,
            ..TextRecord::plain(ByteString(path.clone()), 1)
        };
        if random.below(3) == 0 {
            let link = format!("share/t{index}-link.txt").into_bytes();
            links.push((link.clone(), path));
            record.links.push(ByteString(link));
        }
        relocation.text.push(record);
    }
    if random.below(2) == 0 {
        let argument = random.pick(&[&b""[..], b"-u", b"-E -s"]).to_vec();
        // The packed first line, or the sh form a relocation to a spaced path wrote.
        let mut content = match random.below(4) {
            0 => b"#!/bin/sh\n'''exec' \"".to_vec(),
            1 => b"#!/bin/sh\n'''exec".to_vec(),
            _ => b"#!".to_vec(),
        };
        content.extend_from_slice(old);
        content.extend_from_slice(b"/bin/python3.11");
        if !argument.is_empty() {
            content.push(b' ');
            content.extend_from_slice(&argument);
        }
        if content.starts_with(b"#!/bin/sh") {
            content.extend_from_slice(random.pick(&[
                &b"\" \"$0\" \"$@\"\n' '''"[..],
                b"\n' ''' x",
                b"",
            ]));
        }
        content.extend_from_slice(b"\n\"\"\"Doc.\"\"\"\nprint('");
        content.extend_from_slice(old);
        content.extend_from_slice(b"')\n");
        files.push((b"bin/tool".to_vec(), content, 0o555));
        relocation.text.push(TextRecord {
            shebang: Some(ShebangLine {
                interpreter: ByteString::from("bin/python3.11"),
                argument: ByteString(argument),
            }),
            ..TextRecord::plain(ByteString::from("bin/tool"), 2)
        });
    }
    // A binary with C strings: junk, then strings holding the prefix, NUL-padded.
    let mut binary = b"\x7fELF\0\0junk\0".to_vec();
    let mut slots = Vec::new();
    for _ in 0..1 + random.below(3) {
        let pieces: Vec<ByteString> = (0..2 + random.below(2))
            .map(|_| {
                ByteString(
                    random
                        .pick(&[&b""[..], b"/lib", b":", b"x=", b"/share/data"])
                        .to_vec(),
                )
            })
            .collect();
        let occurrences = pieces.len() - 1;
        let mut string = Vec::new();
        for (index, piece) in pieces.iter().enumerate() {
            if index > 0 {
                string.extend_from_slice(old);
            }
            string.extend_from_slice(&piece.0);
        }
        let needed = pieces.iter().map(|p| p.0.len()).sum::<usize>() + occurrences * new_len + 1;
        let room = needed.max(string.len() + 1) + random.below(4);
        let offset = binary.len() as u64;
        binary.extend_from_slice(&string);
        binary.resize(offset as usize + room, 0);
        binary.extend_from_slice(b"\x01\x02\0");
        slots.push(CStringSlot {
            offset,
            room: room as u64,
            pieces,
        });
    }
    files.push((b"lib/libx.so".to_vec(), binary, 0o755));
    relocation.binary.push(BinaryRecord {
        path: ByteString::from("lib/libx.so"),
        macho: false,
        slots,
        links: Vec::new(),
    });
    // As the planner records it: whether the file ends without a newline.
    for record in &mut relocation.text {
        let (_, content, _) = files
            .iter()
            .find(|(path, ..)| *path == record.path.0)
            .unwrap();
        record.no_final_newline = content.last().is_some_and(|&byte| byte != b'\n');
    }
    Case {
        files,
        links,
        relocation,
    }
}

/// Writes the case's tree at `root`, with the sh engine and its records.
fn write_tree(root: &Path, case: &Case) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::remove_dir_all(root);
    for (path, content, mode) in &case.files {
        let full = root.join(OsStr::from_bytes(path));
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(&full, content).unwrap();
        std::fs::set_permissions(&full, std::fs::Permissions::from_mode(*mode)).unwrap();
    }
    for (link, target) in &case.links {
        std::fs::hard_link(
            root.join(OsStr::from_bytes(target)),
            root.join(OsStr::from_bytes(link)),
        )
        .unwrap();
    }
    std::fs::create_dir_all(root.join(".gopack")).unwrap();
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::write(
        root.join(".gopack/records.sh"),
        gopack::relocate::script::records(&case.relocation),
    )
    .unwrap();
    let script = root.join("bin/gopack-unpack");
    std::fs::write(&script, gopack::relocate::script::UNPACK).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Every file of the case after relocation: content, mode, and which names share an inode.
fn case_snapshot(root: &Path, case: &Case) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    for (path, _, _) in &case.files {
        let full = root.join(OsStr::from_bytes(path));
        let meta = std::fs::symlink_metadata(&full).unwrap();
        out.push(format!(
            "{} {:o} nlink={} {}",
            String::from_utf8_lossy(path),
            meta.mode(),
            meta.nlink(),
            hex::encode(std::fs::read(&full).unwrap())
        ));
    }
    for (link, target) in &case.links {
        let a = std::fs::metadata(root.join(OsStr::from_bytes(link))).unwrap();
        let b = std::fs::metadata(root.join(OsStr::from_bytes(target))).unwrap();
        out.push(format!(
            "{} linked={}",
            String::from_utf8_lossy(link),
            a.ino() == b.ino()
        ));
    }
    out
}

/// Runs `bin/gopack-unpack` with `shell` and only the tools in `posix`; with `sh_only`, never
/// the native relocator.
fn run_sh(shell: &[&str], root: &Path, posix: &Path, sh_only: bool) -> std::process::Output {
    let mut command = Command::new(shell[0]);
    command
        .args(&shell[1..])
        .arg(root.join("bin/gopack-unpack"))
        .env_clear()
        .env("PATH", posix);
    if sh_only {
        command.env("GOPACK_UNPACK_SH", "1");
    }
    command.output().unwrap()
}

/// Puts the native relocator where bundles carry it.
fn carry_relocator(root: &Path) {
    let carried = root.join(".gopack/relocate");
    std::fs::copy(relocator(), &carried).unwrap();
    // Until every child that another test thread forks has exec'd, it holds the write handle of
    // the copy, and exec'ing the copy fails (ETXTBSY). A bundle's tar extraction has no such race.
    for _ in 0..200 {
        match Command::new(&carried).arg("--probe").output() {
            Ok(output) if output.status.success() => return,
            _ => std::thread::sleep(std::time::Duration::from_millis(10)),
        }
    }
    panic!("{} never became executable", carried.display());
}

fn shells() -> Vec<Vec<String>> {
    vec![
        vec![which("dash").display().to_string()],
        vec![which("busybox").display().to_string(), "sh".to_string()],
    ]
}

/// Leftovers of the sh engine: staged files or state files being written.
fn staged_leftovers(root: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .flatten()
        .map(|e| e.path().to_path_buf())
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().as_bytes();
            name.ends_with(b".gopack-new")
                || name.starts_with(b".gopack-new-")
                || name == b"relocating"
        })
        .collect()
}

#[test]
fn native_and_sh_engines_write_identical_bytes_for_random_records_and_prefixes() {
    let scratch = Scratch::new();
    let posix_gnu = posix_bin(&scratch.path("posix-gnu"), false);
    let posix_busybox = posix_bin(&scratch.path("posix-busybox"), true);
    let cases: u64 = std::env::var("GOPACK_ENGINE_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(24);
    for seed in 1..=cases {
        let mut random = Random(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut old = Vec::new();
        for _ in 0..1 + random.below(3) {
            old.push(b'/');
            old.extend(component(&mut random));
        }
        let case_dir = scratch.path(&format!("case{seed}"));
        std::fs::create_dir_all(&case_dir).unwrap();
        let mut root = case_dir.as_os_str().as_bytes().to_vec();
        root.push(b'/');
        let name = component(&mut random);
        if name == b"." || name == b".." {
            root.push(b'd'); // a directory's own name, not `.` or `..`
        }
        root.extend(name);
        let root = PathBuf::from(OsStr::from_bytes(&root));
        let new = root.as_os_str().as_bytes().to_vec();
        let case = random_case(&mut random, &old, new.len());
        let context = format!(
            "seed {seed}: {:?} -> {:?}",
            String::from_utf8_lossy(&old),
            root.display()
        );

        write_tree(&root, &case);
        let before = case_snapshot(&root, &case);
        gopack::relocate::apply::relocate_tree(
            &root,
            &case.relocation,
            &old,
            &new,
            &AtomicBool::new(false),
        )
        .unwrap_or_else(|err| panic!("{context}: native engine failed: {err}"));
        let native_tree = case_snapshot(&root, &case);
        assert_ne!(native_tree, before, "{context}: nothing was relocated");
        assert!(
            native_tree
                .iter()
                .all(|line| !line.ends_with("linked=false")),
            "{context}: hard links broken by the native engine"
        );

        // POSIX sh alone under dash and busybox sh, then the relocator run by the script.
        let runs = shells()
            .into_iter()
            .zip([&posix_gnu, &posix_busybox])
            .map(|(shell, posix)| (shell, posix, false))
            .chain([(shells().remove(0), &posix_gnu, true)]);
        for (shell, posix, native) in runs {
            write_tree(&root, &case);
            if native {
                carry_relocator(&root);
            }
            let shell: Vec<&str> = shell.iter().map(String::as_str).collect();
            let output = run_sh(&shell, &root, posix, !native);
            assert!(
                output.status.success(),
                "{context}: {shell:?} native={native}\n{}",
                text(&output)
            );
            assert_eq!(
                String::from_utf8_lossy(&output.stdout).contains("(native relocator)"),
                native,
                "{context}: {}",
                text(&output)
            );
            assert_eq!(
                case_snapshot(&root, &case),
                native_tree,
                "{context}: {shell:?} (relocator: {native}) differs from the native engine"
            );
            assert_eq!(std::fs::read(root.join(".gopack/prefix")).unwrap(), new);
            assert!(
                staged_leftovers(&root).is_empty(),
                "{context}: {:?}",
                staged_leftovers(&root)
            );
        }
        std::fs::remove_dir_all(&case_dir).unwrap();
    }
}

#[test]
fn synthetic_env_packs_and_unpacks() {
    let scratch = Scratch::new();
    let prefix = SyntheticEnv::new(&scratch.path("env"))
        .text("etc/config.txt", "home=@PREFIX@\nsibling=@PREFIX@2\n")
        .build();
    let bundle = scratch.path("b.tar.zst");
    pack(&prefix, &bundle, &[]);
    let dest = scratch.path("dest");
    run_ok(gopack().arg("unpack").arg(&bundle).arg("-d").arg(&dest));
    assert_eq!(
        std::fs::read_to_string(dest.join("etc/config.txt")).unwrap(),
        format!("home={}\nsibling={}2\n", dest.display(), prefix.display())
    );
}

/// `tar -x` of `bundle` into `dest`, then `bin/gopack-unpack` under `shell`.
fn tar_and_script(bundle: &Path, dest: &Path, shell: &str) {
    extract(bundle, dest);
    run_ok(
        Command::new(which(shell))
            .arg(dest.join("bin/gopack-unpack"))
            .arg("-q"),
    );
}

/// Sources `bin/activate` of `prefix` in `shell` (from `cwd`) and prints what it set.
fn activate_in(shell: &str, prefix: &Path, cwd: &Path, extra_env: &[(&str, &Path)]) -> String {
    let script = "PS1='$ '; . \"$ENV_PREFIX/bin/activate\" || exit 9; \
                  printf 'prefix=%s\\nhome=%s\\ngood=%s\\nps1=%s\\n' \"$CONDA_PREFIX\" \"${MY_HOME-}\" \"${GOOD-}\" \"$PS1\"";
    let mut command = Command::new(which(shell));
    command
        .arg("-c")
        .arg(script)
        .current_dir(cwd)
        .env("ENV_PREFIX", prefix);
    for (name, value) in extra_env {
        command.env(name, value);
    }
    run_ok(&mut command)
}

fn env_with_variables(path: &Path) -> PathBuf {
    SyntheticEnv::new(path)
        .text(
            "etc/conda/env_vars.d/vars.json",
            r#"{"MY_HOME": "@PREFIX@/share", "GOOD": "yes", "1X": "not a shell name"}"#,
        )
        .text("etc/config.txt", "home=@PREFIX@\n")
        .build()
}

#[test]
fn defect_1_paths_with_quotes_and_command_substitution_activate_and_execute_nothing() {
    let scratch = Scratch::new();
    // The source prefix holds a quote too: it must be found in its quoted form.
    let prefix = env_with_variables(&scratch.path("src 'q'/env"));
    let bundle = scratch.path("b.tar.zst");
    let created = run_ok(create_command(&prefix, &bundle).arg("--json"));
    assert!(!created.is_empty());
    let sandbox = scratch.path("cwd");
    std::fs::create_dir_all(&sandbox).unwrap();
    let hostile = "it's $(touch PWNED) `touch PWNED2` \\ $HOME";
    for (index, how) in ["native", "dash", "bash"].iter().enumerate() {
        let dest = scratch.path(&format!("d{index}/{hostile}"));
        match *how {
            "native" => unpack(&bundle, &dest),
            shell => tar_and_script(&bundle, &dest, shell),
        }
        for shell in ["dash", "bash", "zsh", "ksh"] {
            let out = activate_in(shell, &dest, &sandbox, &[]);
            let dest_text = dest.display().to_string();
            assert!(
                out.contains(&format!("prefix={dest_text}\n")),
                "{how}/{shell}: {out}"
            );
            assert!(
                out.contains(&format!("home={dest_text}/share\n")),
                "{how}/{shell}: {out}"
            );
            assert!(out.contains("good=yes\n"), "{how}/{shell}: {out}");
            // The prompt shows the name with every expandable byte replaced.
            assert!(
                out.contains("ps1=(it_s __touch PWNED_ _touch PWNED2_ _ _HOME) $ "),
                "{how}/{shell}: {out}"
            );
        }
        assert_eq!(
            std::fs::read_to_string(dest.join("etc/config.txt")).unwrap(),
            format!("home={}\n", dest.display())
        );
    }
    let ran: Vec<_> = std::fs::read_dir(&sandbox).unwrap().collect();
    assert!(ran.is_empty(), "a path ran code: {ran:?}");
    // A newline is the one byte no path may hold: refused clearly, nothing written.
    let newline = scratch.path("d9/a\nb");
    let err = run_fails(
        gopack().arg("unpack").arg(&bundle).arg("-d").arg(&newline),
        1,
    );
    assert!(err.contains("newline"), "{err}");
    assert!(!newline.exists());
    let err = run_fails(
        create_command(&prefix, &scratch.path("n.tar.zst"))
            .arg("--dest-prefix")
            .arg(&newline),
        1,
    );
    assert!(err.contains("newline"), "{err}");
}

#[test]
fn defect_11_cdpath_fresh_fish_and_variable_names_that_are_not_shell_names() {
    let scratch = Scratch::new();
    let prefix = env_with_variables(&scratch.path("src/env"));
    let bundle = scratch.path("b.tar.zst");
    let output = create_command(&prefix, &bundle).output().unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("1X"), "no warning about `1X`: {stderr}");

    // A decoy `env` in CDPATH must not be taken for the environment.
    let work = scratch.path("work");
    std::fs::create_dir_all(scratch.path("decoy/env/bin")).unwrap();
    extract(&bundle, &work.join("env"));
    let decoy = scratch.path("decoy");
    run_ok(
        Command::new(which("dash"))
            .arg("env/bin/gopack-unpack")
            .current_dir(&work)
            .env("CDPATH", &decoy),
    );
    let env = work.join("env");
    assert_eq!(
        std::fs::read(env.join(".gopack/prefix")).unwrap(),
        env.as_os_str().as_bytes()
    );
    let out = run_ok(
        Command::new(which("bash"))
            .arg("-c")
            .arg(". env/bin/activate && printf '%s\\n' \"$CONDA_PREFIX\" \"$GOOD\"")
            .current_dir(&work)
            .env("CDPATH", &decoy),
    );
    assert_eq!(out, format!("{}\nyes\n", env.display()));

    // fish on a fresh `tar -x` (no recorded prefix yet) relocates first.
    let fresh = scratch.path("fresh/env");
    extract(&bundle, &fresh);
    let out = run_ok(
        Command::new(which("fish"))
            .arg("-c")
            .arg("source $argv[1]/bin/activate.fish; and printf '%s\\n' $CONDA_PREFIX $MY_HOME")
            .arg(&fresh),
    );
    assert_eq!(out, format!("{0}\n{0}/share\n", fresh.display()));
    assert_eq!(
        std::fs::read_to_string(fresh.join("etc/config.txt")).unwrap(),
        format!("home={}\n", fresh.display())
    );
}

#[test]
fn defect_4_hard_linked_names_get_the_new_bytes_and_stay_linked() {
    use std::os::unix::fs::MetadataExt;
    let scratch = Scratch::new();
    let prefix = SyntheticEnv::new(&scratch.path("src/env"))
        .text("etc/a.conf", "root=@PREFIX@\n")
        .hard_link("etc/b.conf", "etc/a.conf")
        .build();
    let bundle = scratch.path("b.tar.zst");
    pack(&prefix, &bundle, &[]);
    let native = scratch.path("native");
    unpack(&bundle, &native);
    let script = scratch.path("script");
    tar_and_script(&bundle, &script, "dash");
    for dest in [native, script] {
        let expected = format!("root={}\n", dest.display());
        for name in ["etc/a.conf", "etc/b.conf"] {
            assert_eq!(std::fs::read_to_string(dest.join(name)).unwrap(), expected);
        }
        let a = std::fs::metadata(dest.join("etc/a.conf")).unwrap();
        let b = std::fs::metadata(dest.join("etc/b.conf")).unwrap();
        assert_eq!(
            a.ino(),
            b.ino(),
            "{}: the names were unlinked",
            dest.display()
        );
    }
}

#[test]
fn defect_3_python_scripts_keep_docstring_future_import_and_coding_line() {
    let scratch = Scratch::new();
    let python = which("python3");
    let prefix = SyntheticEnv::new(&scratch.path("src/env"))
        .file(
            "bin/python3.11",
            format!("#!/bin/sh\nexec {} \"$@\"\n", python.display()).as_bytes(),
            0o755,
        )
        .file(
            "bin/doc-tool",
            b"#!@PREFIX@/bin/python3.11\n\"\"\"The tool's own doc.\"\"\"\nfrom __future__ import annotations\nimport sys\nprint(__doc__)\n",
            0o755,
        )
        .file(
            "bin/plain-tool",
            b"#!@PREFIX@/bin/python3.11\nimport sys\nprint('ok', sys.argv[1:])\n",
            0o755,
        )
        .file(
            "bin/latin-tool",
            b"#!@PREFIX@/bin/python3.11 -u\n# -*- coding: latin-1 -*-\nprint(len('\xe9\xe9'))\n",
            0o755,
        )
        .build();
    for (index, path) in ["d/env", "d/long name with spaces/env"].iter().enumerate() {
        let bundle = scratch.path(&format!("b{index}.tar.zst"));
        pack(&prefix, &bundle, &[]);
        let dest = scratch.path(path);
        unpack(&bundle, &dest);
        let plain = run_ok(Command::new(dest.join("bin/plain-tool")).arg("a b"));
        assert_eq!(plain, "ok ['a b']\n", "{path}");
        if index == 0 {
            let latin = run_ok(&mut Command::new(dest.join("bin/latin-tool")));
            assert_eq!(latin, "2\n", "{path}");
            // A plain path: the script is byte for byte the original with the new #! line.
            let doc = run_ok(&mut Command::new(dest.join("bin/doc-tool")));
            assert_eq!(doc, "The tool's own doc.\n");
            let content = std::fs::read(dest.join("bin/doc-tool")).unwrap();
            let expected = format!("#!{}/bin/python3.11\n\"\"\"The tool", dest.display());
            assert!(content.starts_with(expected.as_bytes()));
        } else {
            // A path with spaces cannot be a #! line: pip's sh form runs the script.
            let content = std::fs::read_to_string(dest.join("bin/plain-tool")).unwrap();
            assert!(content.starts_with("#!/bin/sh\n'''exec' \""), "{content}");
        }
    }
}

#[test]
fn dest_prefix_bundles_relocate_from_the_prefix_they_hold_by_both_unpack_paths() {
    let scratch = Scratch::new();
    let prefix = env_with_variables(&scratch.path("src/env"));
    // Longer than the engine's buffers, with occurrences across their boundaries.
    let line = format!("{}/lib:", prefix.display());
    std::fs::write(prefix.join("etc/big.txt"), line.repeat(40_000)).unwrap();
    let fixed = scratch.path("fixed/app");
    let bundle = scratch.path("b.tar.zst");
    pack(
        &prefix,
        &bundle,
        &["--dest-prefix", fixed.to_str().unwrap()],
    );
    // At the fixed path nothing is left to do.
    extract(&bundle, &fixed);
    assert_eq!(
        std::fs::read_to_string(fixed.join("etc/config.txt")).unwrap(),
        format!("home={}\n", fixed.display())
    );
    let said = run_ok(Command::new(which("dash")).arg(fixed.join("bin/gopack-unpack")));
    assert!(said.contains("already relocated"), "{said}");
    // Anywhere else, both paths relocate from the fixed prefix.
    let native = scratch.path("native/app");
    unpack(&bundle, &native);
    let script = scratch.path("script/app");
    tar_and_script(&bundle, &script, "dash");
    for dest in [&native, &script] {
        assert_eq!(
            std::fs::read_to_string(dest.join("etc/config.txt")).unwrap(),
            format!("home={}\n", dest.display())
        );
        let out = activate_in("dash", dest, dest, &[]);
        assert!(
            out.contains(&format!("home={}/share\n", dest.display())),
            "{out}"
        );
        assert_eq!(
            std::fs::read_to_string(dest.join("etc/big.txt")).unwrap(),
            format!("{}/lib:", dest.display()).repeat(40_000)
        );
    }
}

/// A directory of wrappers around the POSIX tools in `posix`: the `n`-th call of `tool` kills
/// the shell that runs gopack-unpack (SIGKILL) before doing anything.
fn killing_tools(dir: &Path, posix: &Path, tool: &str, n: usize, counter: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    for entry in std::fs::read_dir(posix).unwrap().flatten() {
        let name = entry.file_name();
        let real = std::fs::read_link(entry.path()).unwrap();
        let link = dir.join(&name);
        if name == OsStr::new(tool) {
            let script = format!(
                "#!/bin/sh\nn=$(/bin/cat '{c}' 2>/dev/null || echo 0)\nn=$((n + 1))\necho $n >'{c}'\n[ $n -eq {n} ] && kill -9 $PPID && exit 1\nexec '{real}' \"$@\"\n",
                c = counter.display(),
                real = real.display()
            );
            std::fs::write(&link, script).unwrap();
            std::fs::set_permissions(&link, std::fs::Permissions::from_mode(0o755)).unwrap();
        } else {
            std::os::unix::fs::symlink(real, link).unwrap();
        }
    }
    dir.to_path_buf()
}

fn as_user(command: &mut Command, user: Option<u32>) -> &mut Command {
    if let Some(uid) = user {
        let program = command.get_program().to_owned();
        let args: Vec<_> = command.get_args().map(|a| a.to_owned()).collect();
        let mut wrapped = Command::new(which("setpriv"));
        wrapped
            .arg(format!("--reuid={uid}"))
            .arg(format!("--regid={uid}"))
            .arg("--clear-groups")
            .arg(program)
            .args(args);
        wrapped.env_clear();
        for (key, value) in command.get_envs() {
            if let Some(value) = value {
                wrapped.env(key, value);
            }
        }
        *command = wrapped;
    }
    command
}

/// The environment the kill tests relocate: text, a read-only file, hard-linked names.
fn kill_test_env(old: &Path) -> SyntheticEnv {
    SyntheticEnv::new(old)
        .text("etc/a.conf", "root=@PREFIX@\n")
        .file("etc/readonly.conf", b"ro=@PREFIX@/lib\n", 0o444)
        .text("share/b.txt", "@PREFIX@:@PREFIX@/x\n")
        .hard_link("share/b-link.txt", "share/b.txt")
}

/// Builds `env` at `old`, packs it and moves it away. Returns the bundle, the destination the
/// kill tests relocate to (`old/new`: relocating twice would show), a directory of the POSIX
/// tools, and the user the runs take (`nobody` where the tests run as root, so the tree and the
/// runs are unprivileged).
fn packed_and_moved(
    scratch: &Scratch,
    env: SyntheticEnv,
    old: &Path,
) -> (PathBuf, PathBuf, PathBuf, Option<u32>) {
    let prefix = env.build();
    let bundle = scratch.path("b.tar.zst");
    pack(&prefix, &bundle, &[]);
    std::fs::rename(old, old.with_file_name("env-was")).unwrap();
    let posix = posix_bin(&scratch.path("posix"), false);
    let user = (unsafe { libc::geteuid() } == 0).then_some(65534u32);
    (bundle, old.join("new"), posix, user)
}

/// A fresh `tar -x` of `bundle` into `dest`, below a fresh `old`; with `user`, all of `old`
/// belongs to that uid (and its parent is searchable), so the unpack runs unprivileged.
fn extract_as(bundle: &Path, old: &Path, dest: &Path, user: Option<u32>) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::remove_dir_all(old);
    std::fs::create_dir_all(old).unwrap();
    extract(bundle, dest);
    if let Some(uid) = user {
        run_ok(
            Command::new("chown")
                .arg("-R")
                .arg(format!("{uid}:{uid}"))
                .arg(old),
        );
        std::fs::set_permissions(
            old.parent().unwrap(),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
    }
}

#[test]
fn defect_2_a_rerun_after_kill_9_at_any_point_relocates_exactly_once() {
    let scratch = Scratch::new();
    // The new prefix holds the old one followed by `/`: relocating twice would show.
    let old = scratch.path("x/env");
    let (bundle, dest, posix, user) = packed_and_moved(&scratch, kill_test_env(&old), &old);
    let prepare = || extract_as(&bundle, &old, &dest, user);
    // The bundle carries the native relocator; the killed runs are the sh engine's, and the
    // reruns alternate between both engines: each finishes what the other was stopped in.
    let run = |path: &Path, sh_only: bool| {
        let mut command = unpack_script(&dest, path, sh_only);
        as_user(command.arg("-q"), user).output().unwrap()
    };
    prepare();
    let output = run(&posix, true);
    assert!(output.status.success(), "{}", text(&output));
    let reference = tree_snapshot(&dest);
    assert!(
        std::fs::read_to_string(dest.join("share/b.txt")).unwrap()
            == format!("{0}:{0}/x\n", dest.display())
    );
    let counter = scratch.path("counter");
    let mut kills = 0;
    for tool in ["cp", "awk", "mv", "ln"] {
        for n in 1.. {
            prepare();
            let _ = std::fs::remove_file(&counter);
            let tools = killing_tools(&scratch.path("killing"), &posix, tool, n, &counter);
            if user.is_some() {
                run_ok(
                    Command::new("chmod")
                        .arg("-R")
                        .arg("a+rwX")
                        .arg(scratch.path("killing")),
                );
                std::fs::write(&counter, "0").unwrap();
                run_ok(Command::new("chmod").arg("a+rw").arg(&counter));
            }
            let killed = run(&tools, true);
            if killed.status.success() {
                break; // the tool was called fewer than n times
            }
            kills += 1;
            let rerun = run(&posix, kills % 2 == 0);
            assert!(rerun.status.success(), "{tool} #{n}: {}", text(&rerun));
            assert_eq!(tree_snapshot(&dest), reference, "killed at {tool} #{n}");
            let left: Vec<_> = walkdir::WalkDir::new(&dest)
                .into_iter()
                .flatten()
                .filter(|e| {
                    let name = e.file_name().to_string_lossy();
                    name.ends_with(".gopack-new") || name == "relocating"
                })
                .map(|e| e.path().to_path_buf())
                .collect();
            assert!(left.is_empty(), "killed at {tool} #{n}: {left:?}");
        }
    }
    assert!(kills >= 10, "only {kills} kill points were exercised");
}

#[test]
fn relocator_killed_at_any_system_call_is_finished_by_either_engine() {
    let scratch = Scratch::new();
    // As in defect 2: relocating twice from `/x/env` to `/x/env/new` would show.
    let old = scratch.path("x/env");
    let env = kill_test_env(&old)
        .text("lib/python3.11/site-packages/m.py", "P = '@PREFIX@'\n")
        .file(
            "lib/python3.11/site-packages/__pycache__/m.cpython-311.pyc",
            b"stale",
            0o644,
        );
    let (bundle, dest, posix, user) = packed_and_moved(&scratch, env, &old);
    let prepare = || extract_as(&bundle, &old, &dest, user);
    let finish = |sh_only: bool| {
        as_user(&mut unpack_script(&dest, &posix, sh_only), user)
            .output()
            .unwrap()
    };
    prepare();
    let output = finish(false);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("(native relocator)"),
        "{}",
        text(&output)
    );
    let reference = tree_snapshot(&dest);
    assert!(
        !dest
            .join("lib/python3.11/site-packages/__pycache__/m.cpython-311.pyc")
            .exists()
    );

    // strace delivers SIGKILL to the relocator on the n-th call of one system call: every file
    // it opens, writes, renames, links or removes is a point where it dies.
    let mut kills = 0;
    for call in [
        "openat",
        "write",
        "fchmod",
        "utimensat",
        "rename",
        "link",
        "unlink",
    ] {
        for n in 1.. {
            prepare();
            let mut command = Command::new(which("strace"));
            command
                .args(["-f", "-qq", "-o", "/dev/null", "-e"])
                .arg(format!("trace={call}"))
                .arg("-e")
                .arg(format!("inject={call}:signal=KILL:when={n}"))
                .arg(dest.join(".gopack/relocate"))
                .arg("-q")
                .arg("--")
                .arg(&dest)
                .env_clear();
            let killed = as_user(&mut command, user).output().unwrap();
            if killed.status.success() {
                break; // the call was made fewer than n times
            }
            kills += 1;
            let sh_only = kills % 2 == 0;
            let rerun = finish(sh_only);
            let context = format!("killed at {call} #{n}, finished by sh only: {sh_only}");
            assert!(rerun.status.success(), "{context}: {}", text(&rerun));
            assert_eq!(tree_snapshot(&dest), reference, "{context}");
        }
    }
    assert!(kills >= 20, "only {kills} kill points were exercised");
}

#[test]
fn dest_prefix_leaves_out_bytecode_of_rewritten_python_sources() {
    let scratch = Scratch::new();
    let prefix = SyntheticEnv::new(&scratch.path("src/env"))
        .text("lib/mod.py", "ROOT = '@PREFIX@'\n")
        .file(
            "lib/__pycache__/mod.cpython-311.pyc",
            b"stale @PREFIX@",
            0o644,
        )
        .file("lib/__pycache__/other.cpython-311.pyc", b"kept", 0o644)
        .build();
    let bundle = scratch.path("b.tar.zst");
    pack(&prefix, &bundle, &["--dest-prefix", "/opt/app"]);
    let manifest = manifest(&bundle);
    let paths: Vec<&str> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(
        !paths.contains(&"lib/__pycache__/mod.cpython-311.pyc"),
        "{paths:?}"
    );
    assert!(paths.contains(&"lib/__pycache__/other.cpython-311.pyc"));
}

#[test]
fn activate_and_deactivate_without_activate_d_scripts_in_every_shell() {
    let scratch = Scratch::new();
    let prefix = env_with_variables(&scratch.path("src/env"));
    let bundle = scratch.path("b.tar.zst");
    pack(&prefix, &bundle, &[]);
    let dest = scratch.path("dest/env");
    unpack(&bundle, &dest);
    let script = "before=$PATH; . \"$ENV_PREFIX/bin/activate\" || exit 9; \
                  [ \"$CONDA_PREFIX\" = \"$ENV_PREFIX\" ] || exit 8; deactivate || exit 7; \
                  [ \"$PATH\" = \"$before\" ] || exit 6; [ -z \"${CONDA_PREFIX+x}\" ] || exit 5; \
                  [ -z \"${MY_HOME+x}\" ] || exit 4; echo done";
    for shell in ["dash", "bash", "zsh", "ksh"] {
        let out = run_ok(
            Command::new(which(shell))
                .arg("-c")
                .arg(script)
                .env("ENV_PREFIX", &dest)
                .env_remove("CONDA_PREFIX"),
        );
        assert_eq!(out, "done\n", "{shell}");
    }
}

#[test]
fn the_unpack_side_never_imports_the_planner() {
    let src = repo().join("src");
    let mut files = vec![src.join("unpack.rs"), src.join("manifest.rs")];
    for dir in ["unpack", "relocate"] {
        for entry in std::fs::read_dir(src.join(dir)).unwrap().flatten() {
            files.push(entry.path());
        }
    }
    for file in files {
        if file.ends_with("relocate/dest.rs") {
            continue; // pack-time relocation works on the plan by design
        }
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        assert!(
            !text.contains("crate::plan") && !text.contains("crate::create"),
            "{} imports the pack side",
            file.display()
        );
    }
}

#[test]
fn a_python_script_whose_path_fits_no_first_line_is_warned_about_by_both_unpack_paths() {
    let scratch = Scratch::new();
    let prefix = SyntheticEnv::new(&scratch.path("src/env"))
        .file("bin/tool", b"#!@PREFIX@/bin/python3.11\nprint(1)\n", 0o755)
        .build();
    let bundle = scratch.path("b.tar.zst");
    pack(&prefix, &bundle, &[]);
    // A blank needs the sh form, and a `$` cannot be carried by it.
    let native = scratch.path("n/a b$c");
    let output = gopack()
        .arg("unpack")
        .arg(&bundle)
        .arg("-d")
        .arg(&native)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot be written into the first line"),
        "{stderr}"
    );
    assert!(stderr.contains("bin/tool"), "{stderr}");
    let script = scratch.path("s/a b$c");
    extract(&bundle, &script);
    let output = Command::new(which("dash"))
        .arg(script.join("bin/gopack-unpack"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot be written into the first line"),
        "{stderr}"
    );
    for dest in [&native, &script] {
        let first = std::fs::read_to_string(dest.join("bin/tool")).unwrap();
        assert!(
            first.starts_with(&format!("#!{}/bin/python3.11\n", dest.display())),
            "{first}"
        );
    }
}

#[test]
fn an_environment_whose_path_holds_a_newline_is_refused_clearly() {
    let scratch = Scratch::new();
    let prefix = SyntheticEnv::new(&scratch.path("odd\nenv"))
        .text("etc/a.conf", "x=@PREFIX@\n")
        .build();
    let bundle = scratch.path("b.tar.zst");
    let stderr = run_fails(&mut create_command(&prefix, &bundle), 1);
    assert!(
        stderr.contains("newline") && stderr.contains("odd\\x0aenv"),
        "{stderr}"
    );
    assert!(!bundle.exists());
    assert_no_leftovers(scratch.dir.path());
}
