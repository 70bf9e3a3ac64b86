//! What a user reads, pinned: `inspect`'s text and JSON for a small bundle, and the message of
//! each common mistake (exit code included). Paths of the test's scratch directory are
//! replaced by `[SCRATCH]`, so the snapshots hold only what gopack itself says.

use std::process::Command;

use crate::util::synthetic::SyntheticEnv;
use crate::util::*;

/// Runs `command` and renders its exit code, stdout and stderr for a snapshot.
fn transcript(command: &mut Command) -> String {
    let output = command.output().unwrap();
    format!(
        "exit: {:?}\n--- stdout\n{}--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn snapshot(scratch: &Scratch, name: &str, text: &str) {
    let root = scratch.dir.path().display().to_string();
    let text = text.replace(&root, "[SCRATCH]");
    insta::with_settings!({
        filters => vec![
            (r"\b[0-9a-f]{64}\b", "[SHA256]"),
            (r"in [0-9.]+s\b", "in [TIME]"),
            (r"\b\d+(\.\d+)? (B|KiB|MiB|GiB)\b", "[SIZE]"),
            (r#""gopack_version": "[^"]+""#, r#""gopack_version": "[VERSION]""#),
            (r"gopack [0-9]+\.[0-9]+\.[0-9]+", "gopack [VERSION]"),
            (r"linux-[a-z0-9]+|osx-[a-z0-9]+", "[PLATFORM]"),
            (r#""mtime": \d+"#, r#""mtime": [MTIME]"#),
        ],
        prepend_module_to_snapshot => false,
    }, {
        insta::assert_snapshot!(name, text);
    });
}

fn small_env(scratch: &Scratch) -> std::path::PathBuf {
    SyntheticEnv::new(&scratch.path("env"))
        .text("etc/app.conf", "home=@PREFIX@\n")
        .file(
            "bin/tool",
            b"#!@PREFIX@/bin/python3.11 -u\nprint(1)\n",
            0o755,
        )
        .symlink("lib/libx.so", "@PREFIX@/lib/libx.so.1")
        .text("lib/libx.so.1", "not really a library")
        .build()
}

#[test]
fn inspect_text_and_json() {
    let scratch = Scratch::new();
    let env = small_env(&scratch);
    let bundle = scratch.path("app.tar.zst");
    pack(&env, &bundle, &["-q"]);
    snapshot(
        &scratch,
        "inspect_text",
        &transcript(gopack().arg("inspect").arg(&bundle)),
    );
    let json = run_ok(gopack().arg("inspect").arg("--json").arg(&bundle));
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    snapshot(
        &scratch,
        "inspect_json_relocation",
        &serde_json::to_string_pretty(&value["relocation"]).unwrap(),
    );
}

#[test]
fn messages_for_common_mistakes() {
    let scratch = Scratch::new();
    let env = small_env(&scratch);
    let bundle = scratch.path("app.tar.zst");
    pack(&env, &bundle, &["-q"]);
    let not_a_bundle = scratch.path("notes.txt");
    std::fs::write(&not_a_bundle, "just some text\n").unwrap();
    let cases: Vec<(&str, Command)> = vec![
        ("create_missing_env", {
            let mut c = create_command(&scratch.path("nope"), &scratch.path("x.tar.zst"));
            c.arg("-q");
            c
        }),
        ("create_not_an_env", {
            let mut c = create_command(&scratch.path("env/etc"), &scratch.path("x.tar.zst"));
            c.arg("-q");
            c
        }),
        ("create_output_exists", create_command(&env, &bundle)),
        ("create_unknown_format", {
            let mut c = create_command(&env, &scratch.path("x.zip"));
            c.args(["--format", "zip"]);
            c
        }),
        ("create_dest_prefix_with_newline", {
            let mut c = create_command(&env, &scratch.path("y.tar.zst"));
            c.args(["--dest-prefix", "/opt/a\nb"]);
            c
        }),
        ("unpack_not_a_bundle", {
            let mut c = gopack();
            c.arg("unpack")
                .arg(&not_a_bundle)
                .arg("-d")
                .arg(scratch.path("d1"));
            c
        }),
        ("unpack_destination_not_empty", {
            let mut c = gopack();
            c.arg("unpack").arg(&bundle).arg("-d").arg(&env);
            c
        }),
        ("inspect_missing_file", {
            let mut c = gopack();
            c.arg("inspect").arg(scratch.path("missing.tar.zst"));
            c
        }),
    ];
    for (name, mut command) in cases {
        snapshot(&scratch, name, &transcript(&mut command));
    }
}

#[test]
fn messages_of_the_relocator_and_of_gopack_unpack() {
    let scratch = Scratch::new();
    let env = small_env(&scratch);
    let bundle = scratch.path("app.tar.zst");
    pack(&env, &bundle, &["-q"]);
    let repo = repo().display().to_string();
    let in_repo = |text: String| text.replace(&repo, "[REPO]");
    snapshot(
        &scratch,
        "create_relocator_not_elf",
        &transcript(create_command(&env, &scratch.path("x.tar.zst")).args([
            "-q",
            "--relocator",
            "Cargo.toml",
        ])),
    );
    let mac = SyntheticEnv::new(&scratch.path("mac"))
        .platform("osx-arm64")
        .text("etc/app.conf", "home=@PREFIX@\n")
        .build();
    snapshot(
        &scratch,
        "create_relocator_for_another_platform",
        &in_repo(transcript(
            create_command(&mac, &scratch.path("mac.tar.zst"))
                .arg("-q")
                .arg("--relocator")
                .arg(relocator()),
        )),
    );
    snapshot(
        &scratch,
        "relocator_usage",
        &transcript(&mut Command::new(relocator())),
    );
    // A recorded file gone after extraction: both engines refuse and change nothing.
    let posix = posix_bin(&scratch.path("posix"), false);
    for (name, sh_only) in [
        ("gopack_unpack_missing_file_native", false),
        ("gopack_unpack_missing_file_sh", true),
    ] {
        let dest = scratch.path(name);
        extract(&bundle, &dest);
        std::fs::remove_file(dest.join("etc/app.conf")).unwrap();
        snapshot(
            &scratch,
            name,
            &transcript(&mut unpack_script(&dest, &posix, sh_only)),
        );
    }
}
