//! The code's shape follows the pipeline (README, "Layout"): no stage imports a stage that
//! comes after it, and unpack, with everything it runs on the target, imports nothing of the
//! packer. Read from the source: every `crate::…` (and, in the relocator's `main`, `gopack::…`)
//! path outside comments is an import.

use std::collections::BTreeMap;
use std::path::Path;

use crate::util::repo;

/// Files (relative to `src/`, a trailing `/` for a directory) and the modules they must not use.
struct Rule {
    files: &'static [&'static str],
    forbidden: &'static [&'static str],
    why: &'static str,
}

const RULES: &[Rule] = &[
    Rule {
        files: &["error.rs", "error/"],
        forbidden: &["plan", "create", "cli"],
        why: "the error type aggregates each stage's errors and nothing more",
    },
    Rule {
        files: &["progress.rs", "timestamp.rs", "paths.rs", "stream.rs"],
        forbidden: &[
            "conda",
            "scan",
            "plan",
            "relocate",
            "go",
            "scripts",
            "archive",
            "manifest",
            "unpack",
            "oci",
            "installer",
            "provenance",
            "create",
        ],
        why: "the foundation every stage uses depends on no stage",
    },
    Rule {
        files: &["conda/"],
        forbidden: &[
            "scan",
            "plan",
            "relocate",
            "go",
            "scripts",
            "archive",
            "unpack",
            "oci",
            "installer",
            "provenance",
            "create",
        ],
        why: "reading conda's records is the first stage",
    },
    Rule {
        files: &["scan/"],
        forbidden: &[
            "plan",
            "relocate",
            "go::build",
            "go::bundle",
            "scripts",
            "archive",
            "unpack",
            "oci",
            "installer",
            "provenance",
            "create",
        ],
        why: "the scan comes before planning and relocation",
    },
    Rule {
        files: &["plan.rs", "relocate/"],
        forbidden: &[
            "go::build",
            "go::bundle",
            "scripts",
            "archive",
            "unpack",
            "oci",
            "installer",
            "provenance",
            "create",
        ],
        why: "planning and relocation come before Go builds, scripts and writing",
    },
    Rule {
        files: &["go/"],
        forbidden: &[
            "scripts",
            "archive",
            "unpack",
            "oci",
            "installer",
            "provenance",
            "create",
        ],
        why: "Go binaries join the plan before the scripts and the archive are written",
    },
    Rule {
        files: &["scripts/"],
        forbidden: &[
            "archive",
            "unpack",
            "oci",
            "installer",
            "provenance",
            "create",
        ],
        why: "the scripts are generated before the archive is written",
    },
    Rule {
        files: &["archive/"],
        forbidden: &["unpack", "oci", "installer", "provenance", "create"],
        why: "the tar writer and reader serve images, installers and unpack, not the reverse",
    },
    Rule {
        files: &["unpack.rs", "unpack/", "bin/gopack-relocate.rs"],
        forbidden: &[
            "conda",
            "scan",
            "plan",
            "go",
            "scripts",
            "create",
            "oci",
            "installer",
        ],
        why: "unpack runs from the bundle alone and never imports the packer",
    },
    Rule {
        files: &[
            "archive/read.rs",
            "archive/header.rs",
            "manifest.rs",
            "relocate/apply.rs",
            "relocate/in_place.rs",
            "relocate/script.rs",
            "relocate/binary.rs",
            "relocate/bytes.rs",
            "relocate/text.rs",
            "relocate/macho.rs",
            "relocate/codesign.rs",
        ],
        forbidden: &[
            "scan",
            "plan",
            "go::build",
            "go::bundle",
            "scripts",
            "create",
            "oci",
            "installer",
        ],
        why: "what unpack and the native relocator run must not pull in the packer",
    },
];

/// `src/`-relative file → the module paths it uses (`relocate::apply`, `go`, …).
fn imports() -> BTreeMap<String, Vec<String>> {
    let src = repo().join("src");
    let mut found = BTreeMap::new();
    for entry in walkdir::WalkDir::new(&src) {
        let entry = entry.unwrap();
        if entry.path().extension().is_none_or(|ext| ext != "rs") {
            continue;
        }
        let relative = entry.path().strip_prefix(&src).unwrap();
        let text = std::fs::read_to_string(entry.path()).unwrap();
        found.insert(
            relative.to_string_lossy().into_owned(),
            paths_used(relative, &text),
        );
    }
    found
}

fn paths_used(file: &Path, text: &str) -> Vec<String> {
    let roots: &[&str] = if file.starts_with("bin") {
        &["gopack::"]
    } else {
        &["crate::"]
    };
    let mut used = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        for root in roots {
            for (at, _) in code.match_indices(root) {
                let before = code[..at].chars().next_back();
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                    continue;
                }
                let path: String = code[at + root.len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_' || *c == ':')
                    .collect();
                let path = path.trim_end_matches(':').to_string();
                if !path.is_empty() {
                    used.push(path);
                }
            }
        }
    }
    used.sort();
    used.dedup();
    used
}

fn covers(pattern: &str, file: &str) -> bool {
    if pattern.ends_with('/') {
        file.starts_with(pattern)
    } else {
        file == pattern
    }
}

fn is_within(path: &str, module: &str) -> bool {
    path == module || path.starts_with(&format!("{module}::"))
}

#[test]
fn no_stage_imports_a_later_one_and_unpack_never_imports_the_packer() {
    let imports = imports();
    // The reader sees real imports, so the rules below are checked against something.
    assert!(
        imports.len() > 60,
        "only {} source files found",
        imports.len()
    );
    assert!(
        imports["unpack.rs"]
            .iter()
            .any(|p| is_within(p, "manifest"))
    );
    assert!(imports["create.rs"].iter().any(|p| is_within(p, "plan")));
    assert!(
        imports["bin/gopack-relocate.rs"]
            .iter()
            .any(|p| is_within(p, "relocate"))
    );
    for rule in RULES {
        assert!(
            rule.files
                .iter()
                .all(|pattern| imports.keys().any(|file| covers(pattern, file))),
            "a rule names files that do not exist: {:?}",
            rule.files
        );
    }

    let mut broken = Vec::new();
    for (file, used) in &imports {
        for rule in RULES
            .iter()
            .filter(|rule| rule.files.iter().any(|p| covers(p, file)))
        {
            for path in used {
                if let Some(module) = rule.forbidden.iter().find(|m| is_within(path, m)) {
                    broken.push(format!("src/{file} uses `{path}` ({module}): {}", rule.why));
                }
            }
        }
    }
    assert!(broken.is_empty(), "layering broken:\n{}", broken.join("\n"));
}
