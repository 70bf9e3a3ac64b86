//! Building the environment's Go services for the environment's platform: find a toolchain
//! (the env's own first), find the main packages (`--go DIR`, or every main package of the
//! env's workspace), and run `go build` for each, in parallel, offline-capable and reproducible:
//! `-trimpath -buildvcs=false -ldflags=-buildid=`, `CGO_ENABLED=0` unless cgo is asked for,
//! `GOTOOLCHAIN=local` so Go never downloads a toolchain. Every Go command keeps its temporary
//! files in gopack's staging directory and is stopped when the cancel flag is set (Ctrl-C,
//! SIGTERM, SIGHUP), see `run`.

use std::ffi::OsString;
use std::io::{Read, Seek};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::Error as GoError;
use crate::error::{Error, Result};
use crate::go::buildinfo::go_target;

/// What to build and how.
#[derive(Debug, Clone, Default)]
pub struct GoBuildOptions {
    /// Main package directories, each with an optional binary name (`--go [NAME=]DIR`).
    pub packages: Vec<(Option<String>, PathBuf)>,
    /// Build every main package of the environment's Go workspace (`--go-workspace`).
    pub workspace: bool,
    /// An explicit `go` executable (`--go-toolchain`).
    pub toolchain: Option<PathBuf>,
    /// Extra `-ldflags` (`--go-ldflags`).
    pub ldflags: Option<String>,
    /// Build tags (`--go-tags`).
    pub tags: Option<String>,
    /// Build with cgo, with a relocatable `$ORIGIN/../lib` rpath (`--cgo`).
    pub cgo: bool,
    /// No module downloads (`--offline`): `GOPROXY=off`.
    pub offline: bool,
}

impl GoBuildOptions {
    /// Whether anything is to be built.
    pub fn any(&self) -> bool {
        self.workspace || !self.packages.is_empty()
    }
}

/// One main package to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoTarget {
    /// The binary's file name (with `.exe` for Windows).
    pub name: String,
    /// The package directory.
    pub dir: PathBuf,
    /// The workspace file to build through, if any.
    pub gowork: Option<PathBuf>,
}

/// A binary that was built.
#[derive(Debug, Clone)]
pub struct BuiltBinary {
    /// The target it came from.
    pub target: GoTarget,
    /// Where the binary was written (inside the build's staging directory).
    pub path: PathBuf,
}

/// Finds the `go` to use: `--go-toolchain`, then the environment's own (`bin/go`, `go/bin/go`),
/// then `go` on PATH.
///
/// # Errors
/// [`GoError`] listing every place searched.
pub fn find_toolchain(prefix: &Path, explicit: Option<&Path>) -> Result<PathBuf> {
    let mut searched = Vec::new();
    if let Some(path) = explicit {
        if is_executable(path) {
            return Ok(path.to_path_buf());
        }
        return Err(GoError::ToolchainNotExecutable {
            path: path.to_path_buf(),
        }
        .into());
    }
    for candidate in [prefix.join("bin/go"), prefix.join("go/bin/go")] {
        if is_executable(&candidate) {
            return Ok(candidate);
        }
        searched.push(candidate.display().to_string());
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("go");
            if is_executable(&candidate) {
                return Ok(candidate);
            }
        }
        searched.push("every directory on PATH".into());
    }
    Err(GoError::ToolchainNotFound { searched }.into())
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs_err::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The environment's workspace file: `$GOWORK` from its activation variables, then
/// `go.work`, `src/go.work`, `.gowork` in the prefix.
pub fn workspace_file(prefix: &Path, env_vars: &[(String, String)]) -> Option<PathBuf> {
    if let Some((_, value)) = env_vars.iter().find(|(name, _)| name == "GOWORK")
        && !value.is_empty()
        && value != "off"
    {
        let path = PathBuf::from(value);
        if path.is_file() {
            return Some(path);
        }
    }
    [
        prefix.join("go.work"),
        prefix.join("src/go.work"),
        prefix.join(".gowork"),
    ]
    .into_iter()
    .find(|path| path.is_file())
}

/// The module directories a `go.work` file uses (`use ./a` lines and `use ( … )` blocks).
pub fn workspace_modules(gowork: &Path) -> Result<Vec<PathBuf>> {
    let text = fs_err::read_to_string(gowork)
        .map_err(|source| Error::io("cannot read the Go workspace", source))?;
    let base = gowork.parent().unwrap_or(Path::new("."));
    let mut modules = Vec::new();
    let mut in_block = false;
    for line in text.lines() {
        let line = line.split("//").next().unwrap_or("").trim();
        let entry = if in_block {
            if line == ")" {
                in_block = false;
                continue;
            }
            line
        } else if let Some(rest) = line.strip_prefix("use") {
            let rest = rest.trim();
            if rest == "(" {
                in_block = true;
                continue;
            }
            rest
        } else {
            continue;
        };
        let entry = entry.trim_matches('"');
        if !entry.is_empty() {
            modules.push(base.join(entry));
        }
    }
    Ok(modules)
}

/// A Go command for the platform; its temporary files (`go`'s work directory, the C compiler's
/// files with cgo) go to `staging`, which the caller removes, also after an interruption.
fn go_command(
    go: &Path,
    platform: &str,
    options: &GoBuildOptions,
    staging: &Path,
) -> Result<Command> {
    let (goos, goarch) = go_target(platform).ok_or_else(|| GoError::NoTarget {
        platform: platform.to_string(),
    })?;
    let mut command = Command::new(go);
    command
        .env("GOOS", goos)
        .env("GOARCH", goarch)
        .env("CGO_ENABLED", if options.cgo { "1" } else { "0" })
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "")
        .env("GOTMPDIR", staging)
        .env("TMPDIR", staging)
        .env_remove("GOROOT");
    if options.offline {
        command.env("GOPROXY", "off");
    }
    Ok(command)
}

/// Lists the main packages to build.
///
/// # Errors
/// [`GoError`] when a directory is missing, the workspace has no main package, or `go list`
/// fails (its output is shown); [`Error::Interrupted`] when `cancel` is set meanwhile.
/// `staging` takes the Go command's temporary files.
pub fn targets(
    prefix: &Path,
    go: &Path,
    platform: &str,
    env_vars: &[(String, String)],
    options: &GoBuildOptions,
    staging: &Path,
    cancel: &AtomicBool,
) -> Result<Vec<GoTarget>> {
    let exe = if platform.starts_with("win-") {
        ".exe"
    } else {
        ""
    };
    let mut targets = Vec::new();
    for (name, dir) in &options.packages {
        let dir = if dir.is_dir() {
            dir.clone()
        } else {
            prefix.join(dir)
        };
        if !dir.is_dir() {
            return Err(GoError::NoSuchDirectory { dir }.into());
        }
        let dir = std::path::absolute(&dir)
            .map_err(|source| Error::io("cannot resolve a --go directory", source))?;
        let name = name.clone().unwrap_or_else(|| {
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        targets.push(GoTarget {
            name: format!("{name}{exe}"),
            dir,
            gowork: None,
        });
    }
    if options.workspace {
        let gowork = workspace_file(prefix, env_vars);
        let modules = match &gowork {
            Some(file) => workspace_modules(file)?,
            None => {
                let mut found: Vec<PathBuf> = fs_err::read_dir(prefix.join("src"))
                    .map(|entries| {
                        entries
                            .flatten()
                            .map(|e| e.path())
                            .filter(|p| p.join("go.mod").is_file())
                            .collect()
                    })
                    .unwrap_or_default();
                found.sort();
                found
            }
        };
        let mut found_any = false;
        for module in modules {
            let mut command = go_command(go, platform, options, staging)?;
            command
                .current_dir(&module)
                .args([
                    "list",
                    "-f",
                    "{{if eq .Name \"main\"}}{{.Dir}}{{end}}",
                    "./...",
                ])
                .env(
                    "GOWORK",
                    gowork
                        .as_deref()
                        .map(Path::as_os_str)
                        .unwrap_or(&OsString::from("off")),
                );
            let output = run(command, "list the workspace's packages", cancel)?;
            for line in String::from_utf8_lossy(&output)
                .lines()
                .filter(|l| !l.is_empty())
            {
                let dir = PathBuf::from(line);
                let name = dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                found_any = true;
                targets.push(GoTarget {
                    name: format!("{name}{exe}"),
                    dir,
                    gowork: gowork.clone(),
                });
            }
        }
        if !found_any {
            return Err(GoError::NoMainPackage {
                place: gowork
                    .map(|g| g.display().to_string())
                    .unwrap_or_else(|| format!("{}/src/*/go.mod", prefix.display())),
            }
            .into());
        }
    }
    let mut names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
    names.sort();
    if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(GoError::SameBinaryName {
            name: pair[0].to_string(),
        }
        .into());
    }
    Ok(targets)
}

/// How often a running Go command is checked for its end and for the cancel flag.
const POLL: Duration = Duration::from_millis(20);

/// Runs a Go command to its end and returns its stdout.
///
/// The command runs in a process group of its own, with its output in unnamed temporary files.
/// When `cancel` is set the whole group is killed: `go build` has no signal handler (SIGINT
/// would end it without cleaning up just the same), and its compilers, linker and C compiler
/// must not outlive it. Their temporary files are in the staging directory (see
/// [`go_command`]), which the caller removes.
fn run(mut command: Command, what: &str, cancel: &AtomicBool) -> Result<Vec<u8>> {
    let shown = format!("{command:?}");
    let cannot_run = |source: std::io::Error| GoError::CannotRun {
        what: what.to_string(),
        command: shown.clone(),
        source,
    };
    let mut stdout = tempfile::tempfile().map_err(cannot_run)?;
    let mut stderr = tempfile::tempfile().map_err(cannot_run)?;
    command
        .stdin(Stdio::null())
        .stdout(stdout.try_clone().map_err(cannot_run)?)
        .stderr(stderr.try_clone().map_err(cannot_run)?)
        .process_group(0);
    let mut child = command.spawn().map_err(cannot_run)?;
    let status = wait_or_stop(&mut child, cancel).map_err(cannot_run)?;
    let Some(status) = status else {
        return Err(Error::Interrupted);
    };
    let read = |file: &mut std::fs::File| -> std::io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        file.rewind()?;
        file.read_to_end(&mut bytes)?;
        Ok(bytes)
    };
    let stdout = read(&mut stdout).map_err(cannot_run)?;
    let stderr = read(&mut stderr).map_err(cannot_run)?;
    if !status.success() {
        let mut output = String::from_utf8_lossy(&stderr).into_owned();
        if !output.is_empty() && !output.ends_with('\n') {
            output.push('\n');
        }
        output.push_str(&String::from_utf8_lossy(&stdout));
        return Err(GoError::CommandFailed {
            what: what.to_string(),
            command: shown,
            output,
        }
        .into());
    }
    Ok(stdout)
}

/// Waits for `child` (the leader of its own process group); `None` when `cancel` stopped it.
fn wait_or_stop(child: &mut Child, cancel: &AtomicBool) -> std::io::Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if cancel.load(Ordering::Relaxed) {
            kill_group(child);
            child.wait()?;
            return Ok(None);
        }
        std::thread::sleep(POLL);
    }
}

/// Kills the process group `child` leads. `child` has not been reaped yet (even if it has
/// exited), so the group id is still its own and cannot name anyone else's processes.
fn kill_group(child: &Child) {
    let Ok(pid) = libc::pid_t::try_from(child.id()) else {
        return;
    };
    // SAFETY: kill(2) takes plain integers and touches no memory of ours; a negative pid
    // names the process group the child leads (spawned with `process_group(0)`).
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
}

/// Builds every target into `out_dir`, in parallel.
///
/// # Errors
/// [`GoError`] with the exact command and the compiler's output for the first failure;
/// [`Error::Interrupted`] when `cancel` is set meanwhile (every build is stopped).
pub fn build_all(
    go: &Path,
    platform: &str,
    targets: &[GoTarget],
    options: &GoBuildOptions,
    out_dir: &Path,
    cancel: &AtomicBool,
) -> Result<Vec<BuiltBinary>> {
    let results: Vec<Result<BuiltBinary>> = std::thread::scope(|scope| {
        let handles: Vec<_> = targets
            .iter()
            .map(|target| {
                scope.spawn(move || build_one(go, platform, target, options, out_dir, cancel))
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|_| Err(GoError::BuildThreadPanicked.into()))
            })
            .collect()
    });
    if cancel.load(Ordering::Relaxed) {
        return Err(Error::Interrupted);
    }
    results.into_iter().collect()
}

fn build_one(
    go: &Path,
    platform: &str,
    target: &GoTarget,
    options: &GoBuildOptions,
    out_dir: &Path,
    cancel: &AtomicBool,
) -> Result<BuiltBinary> {
    let output = out_dir.join(&target.name);
    let mut ldflags = String::from("-buildid=");
    if options.cgo {
        // A relocatable search path instead of the absolute one conda's compiler activation adds.
        ldflags.push_str(" '-extldflags=-Wl,-rpath,$ORIGIN/../lib'");
    }
    if let Some(extra) = &options.ldflags {
        ldflags.push(' ');
        ldflags.push_str(extra);
    }
    let mut command = go_command(go, platform, options, out_dir)?;
    command
        .current_dir(&target.dir)
        .args(["build", "-trimpath", "-buildvcs=false"]);
    command.arg(format!("-ldflags={ldflags}"));
    if let Some(tags) = &options.tags {
        command.arg(format!("-tags={tags}"));
    }
    command.arg("-o").arg(&output).arg(".");
    if let Some(gowork) = &target.gowork {
        command.env("GOWORK", gowork);
    }
    run(
        command,
        &format!("build the Go package in `{}`", target.dir.display()),
        cancel,
    )?;
    Ok(BuiltBinary {
        target: target.clone(),
        path: output,
    })
}

/// The binary's archive path inside the environment.
pub fn archive_path(binary: &BuiltBinary) -> Vec<u8> {
    let mut path = b"bin/".to_vec();
    path.extend_from_slice(std::ffi::OsStr::new(&binary.target.name).as_bytes());
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_use_lines_and_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("go.work");
        fs_err::write(
            &file,
            "go 1.26\n\nuse ./a // first\nuse (\n\t./b\n\t\"./c d\"\n)\n",
        )
        .unwrap();
        let modules = workspace_modules(&file).unwrap();
        assert_eq!(
            modules,
            vec![
                dir.path().join("./a"),
                dir.path().join("./b"),
                dir.path().join("./c d")
            ]
        );
    }
}
