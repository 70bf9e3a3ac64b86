//! Finding an environment by name without conda: `CONDA_ENVS_PATH`/`CONDA_ENVS_DIRS`,
//! `envs_dirs` in condarc files, `~/.conda/environments.txt`, the usual installation roots, and
//! pixi's `.pixi/envs` under the current directory.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::Error as CondaError;
use crate::error::Result;

/// The process environment and directories the lookup reads, so tests can fake them.
#[derive(Debug, Clone, Default)]
pub struct LookupContext {
    /// `$HOME`.
    pub home: Option<PathBuf>,
    /// The current directory (for pixi's `.pixi/envs`).
    pub current_dir: Option<PathBuf>,
    /// Environment variables that matter: `CONDA_ENVS_PATH`, `CONDA_ENVS_DIRS`, `CONDARC`,
    /// `CONDA_ROOT`, `MAMBA_ROOT_PREFIX`, `CONDA_EXE`, `CONDA_PREFIX`.
    pub vars: Vec<(String, String)>,
}

impl LookupContext {
    /// Reads the real process environment.
    pub fn from_process() -> Self {
        let names = [
            "CONDA_ENVS_PATH",
            "CONDA_ENVS_DIRS",
            "CONDARC",
            "CONDA_ROOT",
            "MAMBA_ROOT_PREFIX",
            "CONDA_EXE",
            "CONDA_PREFIX",
        ];
        LookupContext {
            home: std::env::var_os("HOME").map(PathBuf::from),
            current_dir: std::env::current_dir().ok(),
            vars: names
                .iter()
                .filter_map(|name| {
                    std::env::var(name)
                        .ok()
                        .map(|value| (name.to_string(), value))
                })
                .filter(|(_, value)| !value.is_empty())
                .collect(),
        }
    }

    fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Resolves `-n NAME` to a prefix. `base` is the installation root itself.
///
/// # Errors
/// [`CondaError::EnvironmentNotFound`] listing every place searched and the names found there.
pub fn find_by_name(name: &str, context: &LookupContext) -> Result<PathBuf> {
    let roots = installation_roots(context);
    if name == "base"
        && let Some(root) = roots.iter().find(|root| is_env(root))
    {
        return Ok(root.clone());
    }
    let mut searched = Vec::new();
    let mut found = BTreeSet::new();
    let mut check_dir = |dir: &Path, searched: &mut Vec<PathBuf>| -> Option<PathBuf> {
        if searched.iter().any(|seen| seen == dir) {
            return None;
        }
        searched.push(dir.to_path_buf());
        let candidate = dir.join(name);
        if is_env(&candidate) {
            return Some(candidate);
        }
        if let Ok(entries) = fs_err::read_dir(dir) {
            for entry in entries.flatten() {
                if is_env(&entry.path()) {
                    found.insert(entry.file_name().to_string_lossy().into_owned());
                }
            }
        }
        None
    };
    for dir in envs_dirs(context, &roots) {
        if let Some(prefix) = check_dir(&dir, &mut searched) {
            return Ok(prefix);
        }
    }
    // environments.txt lists prefixes anywhere on disk; match on the last component.
    if let Some(home) = &context.home {
        let list = home.join(".conda/environments.txt");
        searched.push(list.clone());
        if let Ok(text) = fs_err::read_to_string(&list) {
            for line in text.lines().map(str::trim).filter(|line| !line.is_empty()) {
                let prefix = PathBuf::from(line);
                if !is_env(&prefix) {
                    continue;
                }
                let base = prefix
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if base == name {
                    return Ok(prefix);
                }
                found.insert(base);
            }
        }
    }
    for root in &roots {
        if is_env(root) {
            found.insert("base".into());
        }
    }
    Err(CondaError::EnvironmentNotFound {
        name: name.to_string(),
        searched,
        found: found.into_iter().collect(),
    }
    .into())
}

/// The current environment (`$CONDA_PREFIX`) when neither `-n` nor `-p` is given.
pub fn current(context: &LookupContext) -> Result<PathBuf> {
    context
        .var("CONDA_PREFIX")
        .map(PathBuf::from)
        .ok_or(CondaError::NoEnvironmentGiven.into())
}

fn is_env(path: &Path) -> bool {
    path.join("conda-meta").is_dir()
}

fn installation_roots(context: &LookupContext) -> Vec<PathBuf> {
    let mut roots = Vec::new();
    for var in ["CONDA_ROOT", "MAMBA_ROOT_PREFIX"] {
        if let Some(value) = context.var(var) {
            roots.push(PathBuf::from(value));
        }
    }
    if let Some(exe) = context.var("CONDA_EXE") {
        // $ROOT/bin/conda or $ROOT/condabin/conda.
        if let Some(root) = Path::new(exe).parent().and_then(Path::parent) {
            roots.push(root.to_path_buf());
        }
    }
    if let Some(home) = &context.home {
        for name in [
            "miniconda3",
            "anaconda3",
            "miniforge3",
            "mambaforge",
            "micromamba",
            ".micromamba",
        ] {
            roots.push(home.join(name));
        }
    }
    for base in ["/opt", "/usr/local"] {
        for name in [
            "miniconda3",
            "anaconda3",
            "miniforge3",
            "mambaforge",
            "conda",
        ] {
            roots.push(Path::new(base).join(name));
        }
    }
    roots
}

fn envs_dirs(context: &LookupContext, roots: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for var in ["CONDA_ENVS_PATH", "CONDA_ENVS_DIRS"] {
        if let Some(value) = context.var(var) {
            dirs.extend(
                value
                    .split(':')
                    .filter(|part| !part.is_empty())
                    .map(PathBuf::from),
            );
        }
    }
    let mut condarcs = Vec::new();
    if let Some(path) = context.var("CONDARC") {
        condarcs.push(PathBuf::from(path));
    }
    if let Some(home) = &context.home {
        condarcs.push(home.join(".condarc"));
        condarcs.push(home.join(".config/conda/condarc"));
        condarcs.push(home.join(".config/conda/.condarc"));
    }
    if let Some(root) = context.var("CONDA_ROOT") {
        condarcs.push(Path::new(root).join(".condarc"));
    }
    for rc in condarcs {
        if let Ok(text) = fs_err::read_to_string(&rc) {
            dirs.extend(
                condarc_envs_dirs(&text)
                    .into_iter()
                    .map(|dir| expand_home(&dir, context)),
            );
        }
    }
    if let Some(home) = &context.home {
        dirs.push(home.join(".conda/envs"));
    }
    dirs.extend(roots.iter().map(|root| root.join("envs")));
    if let Some(cwd) = &context.current_dir {
        dirs.push(cwd.join(".pixi/envs"));
    }
    dirs
}

fn expand_home(path: &str, context: &LookupContext) -> PathBuf {
    match (path.strip_prefix("~/"), &context.home) {
        (Some(rest), Some(home)) => home.join(rest),
        _ => PathBuf::from(path),
    }
}

/// Reads the `envs_dirs` list from condarc YAML. condarc files use a tiny YAML subset for this
/// key (a block list or a flow list), so a full YAML parser is not needed.
fn condarc_envs_dirs(text: &str) -> Vec<String> {
    let mut dirs = Vec::new();
    let mut in_list = false;
    for line in text.lines() {
        let without_comment = line.split(" #").next().unwrap_or("");
        let trimmed = without_comment.trim();
        if let Some(rest) = trimmed.strip_prefix("envs_dirs:") {
            let rest = rest.trim();
            if let Some(flow) = rest.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
                dirs.extend(flow.split(',').map(unquote).filter(|d| !d.is_empty()));
                in_list = false;
            } else {
                in_list = true;
            }
            continue;
        }
        if in_list {
            if let Some(item) = trimmed.strip_prefix("- ") {
                dirs.push(unquote(item));
            } else if !trimmed.is_empty() && !line.starts_with(' ') && !line.starts_with('\t') {
                in_list = false;
            }
        }
    }
    dirs
}

fn unquote(text: &str) -> String {
    text.trim()
        .trim_matches(|c| c == '"' || c == '\'')
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn condarc_block_and_flow_lists() {
        let block = "channels:\n  - conda-forge\nenvs_dirs:\n  - ~/my-envs\n  - \"/data/envs\" # comment\nauto_activate_base: false\n";
        assert_eq!(condarc_envs_dirs(block), vec!["~/my-envs", "/data/envs"]);
        assert_eq!(
            condarc_envs_dirs("envs_dirs: [/a, '/b']\n"),
            vec!["/a", "/b"]
        );
    }

    #[test]
    fn finds_envs_through_condarc_and_lists_names_when_missing() {
        let home = tempfile::tempdir().unwrap();
        let envs = home.path().join("elsewhere/envs");
        fs_err::create_dir_all(envs.join("ml/conda-meta")).unwrap();
        fs_err::write(
            home.path().join(".condarc"),
            "envs_dirs:\n  - ~/elsewhere/envs\n",
        )
        .unwrap();
        let context = LookupContext {
            home: Some(home.path().to_path_buf()),
            current_dir: None,
            vars: vec![],
        };
        assert_eq!(find_by_name("ml", &context).unwrap(), envs.join("ml"));
        match find_by_name("nope", &context) {
            Err(crate::Error::Conda(CondaError::EnvironmentNotFound {
                found, searched, ..
            })) => {
                assert_eq!(found, vec!["ml".to_string()]);
                assert!(searched.contains(&envs));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
