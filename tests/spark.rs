//! Bundles under Spark without any unpack step: `spark-submit --archives app.tar.gz#environment`
//! on a `local-cluster[2,1,1024]` master (two executor processes, the archive really copied and
//! unpacked by Spark), with `PYSPARK_PYTHON=./environment/bin/python`. Tasks import NumPy and
//! pandas from the bundle, report `sys.prefix`/`sys.executable` (inside the unpacked archive; the
//! packing environment has been moved away) and run the bundle's Go health check `-selftest`.
//!
//! pyspark comes from PyPI into `target/spark-venv` (wheel cached under `target/wheels`;
//! `.ci/run` installs it). Skipped with a message only when Java is missing, and never in CI
//! (`CI=true`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::*;

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true")
}

fn have_java() -> bool {
    Command::new("java")
        .arg("-version")
        .output()
        .is_ok_and(|out| out.status.success())
}

/// A Python with pyspark (and `spark-submit` beside it): `target/spark-venv`, made on first use
/// from the cached wheels, or from PyPI when none are cached.
fn spark_venv() -> PathBuf {
    let venv = repo().join("target/spark-venv");
    let python = venv.join("bin/python");
    let ready = || {
        venv.join("bin/spark-submit").exists()
            && Command::new(&python)
                .args(["-c", "import pyspark"])
                .output()
                .is_ok_and(|out| out.status.success())
    };
    if ready() {
        return venv;
    }
    run_ok(Command::new("python3").args(["-m", "venv"]).arg(&venv));
    let wheels = repo().join("target/wheels");
    let cached = std::fs::read_dir(&wheels).is_ok_and(|dir| {
        dir.flatten().any(|e| {
            e.file_name().to_string_lossy().starts_with("pyspark-")
                && e.file_name().to_string_lossy().ends_with(".whl")
        })
    });
    let mut install = Command::new(&python);
    install.args(["-m", "pip", "install", "-q", "--disable-pip-version-check"]);
    if cached {
        install.arg("--no-index").arg("--find-links").arg(&wheels);
    }
    run_ok(install.arg("pyspark"));
    assert!(ready(), "pyspark is not importable from {}", venv.display());
    venv
}

#[test]
fn real_env_spark_runs_numpy_pandas_and_go_from_an_archive_it_unpacked_itself() {
    if !have_java() {
        assert!(
            !in_ci(),
            "java is missing: the Spark test needs Java 17 in CI"
        );
        eprintln!("skipped: Spark needs Java (17) and `java` is not on PATH");
        return;
    }
    let venv = spark_venv();
    let scratch = Scratch::new();
    let env = scratch.env("src/env", &["--go", "--pandas"]);
    let bundle = scratch.path("app.tar.gz");
    pack(&env, &bundle, &["-q", "--go-workspace", "--offline"]);
    // The packing environment is gone: nothing may be read from it.
    let gone = scratch.path("src/gone");
    std::fs::rename(&env, &gone).unwrap();

    let job = scratch.path("job.py");
    std::fs::write(&job, include_str!("spark_job.py")).unwrap();
    let output = Command::new(venv.join("bin/spark-submit"))
        .arg("--master")
        .arg("local-cluster[2,1,1024]")
        .arg("--archives")
        .arg(format!("{}#environment", bundle.display()))
        .arg(&job)
        .env("PYSPARK_PYTHON", "./environment/bin/python")
        .env("PYSPARK_DRIVER_PYTHON", venv.join("bin/python"))
        .env_remove("SPARK_HOME")
        .current_dir(scratch.path(""))
        .output()
        .expect("spark-submit runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|line| line.strip_prefix("GOPACK_SPARK_RESULT "));
    let results: Vec<serde_json::Value> = match (output.status.success(), line) {
        (true, Some(line)) => serde_json::from_str(line).unwrap(),
        _ => panic!("spark-submit failed\n{}", text(&output)),
    };
    assert_eq!(results.len(), 4);
    let mut work_dirs = Vec::new();
    for result in &results {
        let prefix = Path::new(result["prefix"].as_str().unwrap());
        let executable = result["executable"].as_str().unwrap();
        eprintln!(
            "task {}: pid {} sys.prefix={} sys.executable={}",
            result["task"],
            result["pid"],
            prefix.display(),
            executable
        );
        // Inside the archive Spark unpacked in the executor's directory.
        assert!(prefix.ends_with("environment"), "{result}");
        assert_eq!(Path::new(executable), prefix.join("bin/python"), "{result}");
        assert!(
            !prefix.starts_with(scratch.path("src")),
            "the task ran from the packing environment: {result}"
        );
        assert!(
            result["numpy_file"]
                .as_str()
                .unwrap()
                .starts_with(prefix.to_str().unwrap())
        );
        assert_eq!(result["numpy"], "2.1.3");
        assert_eq!(result["pandas"], "2.2.3");
        assert_eq!(result["selftest"], "selftest ok", "{result}");
        assert_eq!(result["selftest_rc"], 0);
        // Nothing was relocated: console scripts still name the packed prefix (documented:
        // use `python -m`, or `--dest-prefix` for a fixed path).
        assert_eq!(
            result["pip_shebang"],
            format!("#!{}/bin/python3.11", env.display())
        );
        work_dirs.push(PathBuf::from(result["cwd"].as_str().unwrap()));
    }
    // local-cluster executors work under pyspark's own `work/`: remove this application's.
    for dir in work_dirs {
        if let Some(app) = dir.parent()
            && app
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("app-"))
        {
            let _ = std::fs::remove_dir_all(app);
        }
    }
}
