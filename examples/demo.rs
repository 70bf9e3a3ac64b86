//! The demo: builds the bundled demo environment (CPython + NumPy + a C program compiled under a
//! conda-build placeholder + a pip-installed tool) with `fixtures/build_env.py`, packs it with
//! gopack's library, extracts the bundle somewhere else with plain `tar`, relocates it with the
//! bundle's own `bin/gopack-unpack` under `sh`, and runs the relocated Python.
//!
//! Run it with `cargo run --release --example demo [-- --go]` (`--go` adds a Go toolchain).

// Benchmarks and examples use std::fs freely; `.ci/clippy.toml` forbids it in the library.
#![allow(clippy::disallowed_methods, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::AtomicBool;

use gopack::archive::{Format, WriteOptions};
use gopack::create::{CreateOptions, create};
use gopack::progress::{Reporter, Warning};

struct Printer;

impl Reporter for Printer {
    fn stage(&self, name: &str) {
        println!("  {name}…");
    }
    fn warning(&self, warning: &Warning) {
        println!("  warning: {warning}");
    }
}

fn run(command: &mut Command) -> Result<String, String> {
    let output = command
        .output()
        .map_err(|err| format!("cannot run {command:?}: {err}"))?;
    if !output.status.success() {
        return Err(format!(
            "{command:?} failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn demo(with_go: bool) -> Result<(), String> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let work = repo.join("target/demo");
    let env = work.join("env");
    if !env.join("conda-meta").is_dir() || (with_go && !env.join("bin/go").exists()) {
        println!("1. building the demo environment at {}", env.display());
        let _ = std::fs::remove_dir_all(&env);
        std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
        let mut build = Command::new("python3");
        build
            .arg(repo.join("fixtures/build_env.py"))
            .arg(&env)
            .arg("--quiet");
        if with_go {
            build.arg("--go");
        }
        run(&mut build)?;
    } else {
        println!("1. reusing the demo environment at {}", env.display());
    }

    let bundle = work.join("demo.tar.zst");
    println!("2. packing it into {}", bundle.display());
    let options = CreateOptions {
        prefix: env.clone(),
        output: bundle.clone(),
        scan: Default::default(),
        plan: Default::default(),
        write: WriteOptions {
            format: Format::TarZst,
            level: 3,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            arcroot: None,
            force: true,
        },
        // With --go, the env's Go workspace (a health-check and a pprof agent) is built into
        // the bundle's bin/ for the env's platform.
        go: gopack::go::build::GoBuildOptions {
            workspace: with_go,
            offline: true,
            ..Default::default()
        },
        provenance: Default::default(),
        image: None,
    };
    let started = std::time::Instant::now();
    let summary = create(&options, &AtomicBool::new(false), &Printer).map_err(|e| e.to_string())?;
    println!(
        "   {} conda + {} pip packages, {} members, {:.1} MiB in {:.1}s; {} text and {} binary files for the target to relocate, {} fixed at pack time",
        summary.conda_packages,
        summary.pip_packages,
        summary.bundle.members,
        summary.bundle.size as f64 / 1048576.0,
        started.elapsed().as_secs_f64(),
        summary.text_records,
        summary.binary_records,
        summary.fixed
    );

    let target = work.join("somewhere else/with a longer path/app");
    println!("3. extracting with tar into {}", target.display());
    let _ = std::fs::remove_dir_all(work.join("somewhere else"));
    std::fs::create_dir_all(&target).map_err(|e| e.to_string())?;
    run(Command::new("tar")
        .arg("-xf")
        .arg(&bundle)
        .arg("-C")
        .arg(&target))?;
    println!("4. relocating with the bundle's own POSIX script: sh bin/gopack-unpack");
    print!(
        "   {}",
        run(Command::new("sh").arg(target.join("bin/gopack-unpack")))?
    );
    println!("5. running the relocated environment");
    let python = run(Command::new(target.join("bin/python3")).env_clear().arg("-c").arg(
        "import sys, numpy; print(f'   python {sys.version.split()[0]} at {sys.prefix}, numpy {numpy.__version__}')",
    ))?;
    print!("{python}");
    print!(
        "   {}",
        run(Command::new(target.join("bin/hello")).env_clear())?
    );
    show(&target)?;
    if with_go {
        check_healthcheck(&target.join("bin/healthcheck"))?;
    }
    println!(
        "done: the bundle works at a path it was never built for. Inspect it with\n   cargo run --release -- inspect {}",
        bundle.display()
    );
    Ok(())
}

fn show(target: &Path) -> Result<(), String> {
    let script = std::fs::read_to_string(target.join("bin/hello-py")).map_err(|e| e.to_string())?;
    let mut lines = script.lines();
    match lines.next().unwrap_or("") {
        // The path has spaces: a #! line cannot name it, so the script starts as pip writes it.
        "#!/bin/sh" => println!(
            "   bin/hello-py starts in pip's sh form (the new path has spaces): {:?}",
            lines.next().unwrap_or("")
        ),
        first => println!("   bin/hello-py's #! line now names the new location: {first:?}"),
    }
    Ok(())
}

/// Starts the bundled health-check on a free loopback port and asks it `/healthz`.
fn check_healthcheck(binary: &Path) -> Result<(), String> {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut child = Command::new(binary)
        .args(["-addr", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
    let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
    let mut line = String::new();
    stdout.read_line(&mut line).map_err(|e| e.to_string())?;
    let address = line.trim().trim_start_matches("listening on ").to_string();
    let mut stream = std::net::TcpStream::connect(&address).map_err(|e| e.to_string())?;
    write!(stream, "GET /healthz HTTP/1.0\r\n\r\n").map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    let _ = child.kill();
    let _ = child.wait();
    println!(
        "   bin/healthcheck (built by gopack from the env's go.work) answered /healthz on {address}: {}",
        response.rsplit("\r\n").next().unwrap_or("")
    );
    Ok(())
}

fn main() -> ExitCode {
    let with_go = std::env::args().any(|arg| arg == "--go");
    match demo(with_go) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("demo failed: {message}");
            ExitCode::FAILURE
        }
    }
}
