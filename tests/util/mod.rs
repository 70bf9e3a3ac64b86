//! Helpers for the integration tests: fixture environments built by `fixtures/build_env.py`
//! (cached under `target/fixture-cache`), and running the real `gopack` binary.

#![allow(dead_code)]

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

pub mod bundle;
pub mod synthetic;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture_cache() -> PathBuf {
    std::env::var_os("GOPACK_FIXTURE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/fixture-cache"))
}

/// Builds a fixture environment at `prefix` with `build_env.py` options (`--go`, `--variant X`).
pub fn build_env(prefix: &Path, options: &[&str]) {
    let output = Command::new("python3")
        .arg(repo().join("fixtures/build_env.py"))
        .arg(prefix)
        .arg("--cache")
        .arg(fixture_cache())
        .arg("--quiet")
        .args(options)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "fixture build failed for {}:\n{}{}",
        prefix.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A fixture environment built once, with `options`, and shared by the tests that only pack
/// it: they must not write into it, move it or run its programs (Python would leave bytecode
/// there). It lives in `target/shared-envs/` under a key made of the options and of every file
/// under `fixtures/` and `examples/go/`, so a change to how fixtures are built builds it anew.
/// A lock serialises builders across test processes; `complete` marks a finished build.
pub fn shared_env(options: &[&str]) -> PathBuf {
    use std::sync::{Mutex, OnceLock};
    static BUILT: OnceLock<Mutex<Vec<(String, PathBuf)>>> = OnceLock::new();
    let key = format!(
        "env{}-{}",
        options.join("").replace("--", "_"),
        &fixture_sources_digest()[..16]
    );
    let built = BUILT.get_or_init(Default::default);
    let mut built = built
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, env)) = built.iter().find(|(k, _)| *k == key) {
        return env.clone();
    }
    // Beside the fixture cache, not in it: build_env.py keeps the two apart.
    let shared = repo().join("target/shared-envs");
    std::fs::create_dir_all(&shared).unwrap();
    let lock = std::fs::File::create(shared.join(format!("{key}.lock"))).unwrap();
    // SAFETY: flock takes a descriptor we own for the whole call and touches no memory of ours.
    assert_eq!(
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) },
        0
    );
    let dir = shared.join(&key);
    let env = dir.join("env");
    if !dir.join("complete").exists() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        build_env(&env, options);
        std::fs::write(dir.join("complete"), "").unwrap();
    }
    drop(lock);
    built.push((key, env.clone()));
    env
}

/// sha256 of the paths and contents of everything fixtures are built from.
fn fixture_sources_digest() -> String {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    for root in ["fixtures", "examples/go"] {
        let mut files: Vec<PathBuf> = walkdir::WalkDir::new(repo().join(root))
            .into_iter()
            .map(|entry| entry.unwrap())
            .filter(|entry| entry.file_type().is_file())
            .map(|entry| entry.into_path())
            .filter(|path| !path.components().any(|c| c.as_os_str() == "__pycache__"))
            .collect();
        files.sort();
        for file in files {
            hasher.update(
                file.strip_prefix(repo())
                    .unwrap()
                    .as_os_str()
                    .as_encoded_bytes(),
            );
            hasher.update([0]);
            hasher.update(std::fs::read(&file).unwrap());
        }
    }
    hex::encode(hasher.finalize())
}

/// A small deterministic generator (xorshift) for property tests: the same seed, the same cases.
pub struct Random(pub u64);

impl Random {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// A temporary directory that holds one test's environments and bundles.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        let base = repo().join("target/test-scratch");
        std::fs::create_dir_all(&base).unwrap();
        Scratch {
            dir: tempfile::Builder::new()
                .prefix("t")
                .tempdir_in(base)
                .unwrap(),
        }
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// A fixture environment at `<scratch>/<relative>`.
    pub fn env(&self, relative: &str, options: &[&str]) -> PathBuf {
        let prefix = self.path(relative);
        std::fs::create_dir_all(prefix.parent().unwrap()).unwrap();
        build_env(&prefix, options);
        prefix
    }
}

/// The built `gopack` binary, with progress bars off.
/// The native relocator (`gopack-relocate`) built beside `gopack`, which bundles carry.
pub fn relocator() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_gopack-relocate"))
}

pub fn gopack() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gopack"));
    command.env("GOPACK_NO_PROGRESS", "1");
    command
}

pub fn text(output: &Output) -> String {
    format!(
        "status: {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Clears the command's environment down to what a bare host has: `PATH=/usr/bin:/bin` and a
/// `HOME`, so nothing of the test machine (pyenv, conda, Go variables) leaks in.
pub fn bare_host(command: &mut Command) -> &mut Command {
    command
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", std::env::temp_dir())
}

/// Runs a command and asserts it succeeded; returns its stdout.
pub fn run_ok(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|err| panic!("cannot run {command:?}: {err}"));
    assert!(
        output.status.success(),
        "{command:?} failed\n{}",
        text(&output)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs a command that must fail with `code`; returns its stderr.
pub fn run_fails(command: &mut Command, code: i32) -> String {
    let output = command
        .output()
        .unwrap_or_else(|err| panic!("cannot run {command:?}: {err}"));
    assert_eq!(
        output.status.code(),
        Some(code),
        "{command:?}\n{}",
        text(&output)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `gopack create -p PREFIX -o OUTPUT`, for more arguments and a check of its outcome.
pub fn create_command(prefix: &Path, output: &Path) -> Command {
    let mut command = gopack();
    command
        .arg("create")
        .arg("-p")
        .arg(prefix)
        .arg("-o")
        .arg(output);
    command
}

/// `gopack create -p PREFIX -o OUTPUT ARGS…`, asserting success.
pub fn pack(prefix: &Path, output: &Path, args: &[&str]) -> String {
    run_ok(
        gopack()
            .arg("create")
            .arg("-p")
            .arg(prefix)
            .arg("-o")
            .arg(output)
            .args(args),
    )
}

/// `gopack unpack BUNDLE -d DEST`, for more arguments and a check of its outcome.
pub fn unpack_command(bundle: &Path, dest: &Path) -> Command {
    let mut command = gopack();
    command.arg("unpack").arg(bundle).arg("-d").arg(dest);
    command
}

/// `gopack unpack -q BUNDLE -d DEST`, asserting success.
pub fn unpack(bundle: &Path, dest: &Path) {
    run_ok(unpack_command(bundle, dest).arg("-q"));
}

/// The bundle's manifest, through `gopack inspect --json`.
pub fn manifest(bundle: &Path) -> serde_json::Value {
    let out = run_ok(gopack().arg("inspect").arg("--json").arg(bundle));
    serde_json::from_str(&out).expect("inspect --json prints JSON")
}

/// Extracts a bundle with the system's tar (GNU tar reads zstd).
pub fn extract(bundle: &Path, dest: &Path) {
    std::fs::create_dir_all(dest).unwrap();
    run_ok(
        Command::new("tar")
            .arg("-xf")
            .arg(bundle)
            .arg("-C")
            .arg(dest),
    );
}

/// `dash DEST/bin/gopack-unpack` with only the tools in `posix` on PATH; with `sh_only`, the
/// POSIX-sh engine alone (GOPACK_UNPACK_SH=1), else the native relocator the bundle carries.
pub fn unpack_script(dest: &Path, posix: &Path, sh_only: bool) -> Command {
    let mut command = Command::new(which("dash"));
    command
        .arg(dest.join("bin/gopack-unpack"))
        .env_clear()
        .env("PATH", posix);
    if sh_only {
        command.env("GOPACK_UNPACK_SH", "1");
    }
    command
}

/// A directory holding only the POSIX utilities gopack-unpack may use, as links to `provider`
/// (`None`: the system's own, or busybox applets).
pub fn posix_bin(dir: &Path, busybox: bool) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for tool in [
        "awk", "cat", "chmod", "cp", "dd", "ln", "mv", "readlink", "rm", "touch",
    ] {
        let link = dir.join(tool);
        let _ = std::fs::remove_file(&link);
        if busybox {
            std::os::unix::fs::symlink(which("busybox"), &link).unwrap();
        } else {
            std::os::unix::fs::symlink(which(tool), &link).unwrap();
        }
    }
    dir.to_path_buf()
}

pub fn which(tool: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .chain(
            [
                "/usr/local/go/bin",
                "/usr/local/bin",
                "/usr/bin",
                "/bin",
                "/usr/sbin",
                "/sbin",
            ]
            .map(PathBuf::from),
        )
        .collect();
    for dir in dirs {
        let path = dir.join(tool);
        if path.exists() {
            return path;
        }
    }
    panic!("`{tool}` is not installed; see the README's setup");
}

/// sha256 of a file.
pub fn sha256_file(path: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

/// Every path under `root` with its type, mode, link target and content hash, sorted: two
/// equal snapshots mean two equal trees.
pub fn tree_snapshot(root: &Path) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(root).sort_by_file_name().min_depth(1) {
        let entry = entry.unwrap();
        let rel = entry
            .path()
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let meta = entry.path().symlink_metadata().unwrap();
        let mode = meta.permissions().mode() & 0o7777;
        let line = if meta.file_type().is_symlink() {
            format!(
                "{rel} -> {}",
                std::fs::read_link(entry.path()).unwrap().display()
            )
        } else if meta.is_dir() {
            format!("{rel}/ {mode:o}")
        } else {
            format!("{rel} {mode:o} {}", sha256_file(entry.path()))
        };
        out.push(line);
    }
    out
}

/// Asserts that `dir` holds no temporary file or staging directory of gopack's
/// (`.gopack-partial-*` bundles, `.gopack-unpack-*` staging, `.gopack-old-*`).
pub fn assert_no_leftovers(dir: &Path) {
    let left: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".gopack-"))
        .collect();
    assert!(
        left.is_empty(),
        "left behind in {}: {left:?}",
        dir.display()
    );
}

/// Bytes that zstd cannot compress, from a fixed seed.
pub fn incompressible(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Waits until `found` holds, failing if `child` ends first or it takes minutes.
pub fn wait_for(child: &mut Child, what: &str, mut found: impl FnMut() -> bool) {
    let start = Instant::now();
    while !found() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("gopack ended ({status}) before {what}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub fn entries_starting_with(dir: &Path, start: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(start))
        .collect()
}

pub fn send(child: &Child, signal: libc::c_int) {
    // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
    let sent = unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    assert_eq!(sent, 0, "kill failed");
}

/// Sends `signal` to a running `create` of `bundle` once its partial file exists, then checks
/// that gopack exits with 1, says it was interrupted, and leaves nothing beside the output.
pub fn interrupt_while_writing(mut child: Child, bundle: &Path, signal: libc::c_int) {
    let out = bundle.parent().unwrap();
    wait_for(&mut child, "the partial bundle exists", || {
        !entries_starting_with(out, ".gopack-partial-").is_empty()
    });
    send(&child, signal);
    assert_interrupted(&child.wait_with_output().unwrap());
    assert!(!bundle.exists());
    assert_no_leftovers(out);
}

/// Asserts that gopack stopped on a signal as it should: exit code 1, "interrupted".
pub fn assert_interrupted(output: &Output) {
    assert_eq!(output.status.code(), Some(1), "{}", text(output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("interrupted"),
        "{}",
        text(output)
    );
}

/// The manifest's record of `path`.
pub fn files_named<'a>(
    manifest: &'a serde_json::Value,
    path: &str,
) -> Option<&'a serde_json::Value> {
    manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == path)
}

/// GET over loopback with a plain HTTP/1.0 request; returns (status line, body).
pub fn http_get(address: &str, path: &str) -> (String, String) {
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

/// A running service and its stdout (kept open: it may print when it shuts down).
pub struct Service {
    child: std::process::Child,
    stdout: std::io::BufReader<std::process::ChildStdout>,
}

/// Starts a Go service (`command`, a binary or a wrapper that runs one, with the environment
/// the caller gives it) on 127.0.0.1:0; returns it and the address it printed.
pub fn start_service(command: &mut Command) -> (Service, String) {
    let mut child = command
        .args(["-addr", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    stdout.read_line(&mut line).unwrap();
    let address = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected: {line}"))
        .to_string();
    (Service { child, stdout }, address)
}

/// Stops a service with SIGTERM and requires it to exit cleanly.
pub fn stop(mut service: Service) {
    let pid = service.child.id().to_string();
    run_ok(Command::new("kill").args(["-TERM", &pid]));
    let mut rest = String::new();
    let _ = service.stdout.read_to_string(&mut rest);
    let status = service.child.wait().unwrap();
    assert!(status.success(), "graceful shutdown on SIGTERM: {status:?}");
}
