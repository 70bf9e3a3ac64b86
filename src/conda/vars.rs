//! The environment's activation variables, as conda applies them: every
//! `etc/conda/env_vars.d/*.json` (sorted by name), then `conda-meta/state`'s `env_vars`.

use std::path::Path;

/// The environment's variables, in the order conda applies them: every
/// `etc/conda/env_vars.d/*.json` (sorted by name), then `conda-meta/state`'s `env_vars`.
pub fn env_vars(prefix: &Path) -> Vec<(String, String)> {
    read_env_vars(prefix).0
}

/// Whether `name` can be set by a shell (`[A-Za-z_][A-Za-z0-9_]*`).
pub fn is_shell_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// [`env_vars`], and the names that were skipped because no shell can set them.
pub fn read_env_vars(prefix: &Path) -> (Vec<(String, String)>, Vec<String>) {
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    let mut set = |name: &str, value: &serde_json::Value| {
        let value = match value {
            serde_json::Value::String(text) => text.clone(),
            serde_json::Value::Null => return,
            other => other.to_string(),
        };
        if !is_shell_name(name) {
            if !skipped.iter().any(|s| s == name) {
                skipped.push(name.to_string());
            }
            return;
        }
        vars.retain(|(existing, _)| existing != name);
        vars.push((name.to_string(), value));
    };
    let dir = prefix.join("etc/conda/env_vars.d");
    let mut files: Vec<_> = fs_err::read_dir(&dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|path: &std::path::PathBuf| path.extension().is_some_and(|e| e == "json"));
    files.sort();
    for file in files {
        if let Some(object) = read_json_object(&file) {
            for (name, value) in &object {
                set(name, value);
            }
        }
    }
    if let Some(state) = read_json_object(&prefix.join("conda-meta/state"))
        && let Some(serde_json::Value::Object(object)) = state.get("env_vars")
    {
        for (name, value) in object {
            set(name, value);
        }
    }
    (vars, skipped)
}

fn read_json_object(path: &Path) -> Option<serde_json::Map<String, serde_json::Value>> {
    let text = fs_err::read(path).ok()?;
    match serde_json::from_slice(&text).ok()? {
        serde_json::Value::Object(object) => Some(object),
        _ => None,
    }
}
