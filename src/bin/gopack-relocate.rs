//! `gopack-relocate`, carried in bundles as `.gopack/relocate`: the native relocator that
//! `bin/gopack-unpack` runs when the host can execute it ([`gopack::relocate::in_place`]).
//!
//! usage: `gopack-relocate --probe` (prints its name: the host can run it) or
//! `gopack-relocate [-q] -- PREFIX`. Exit codes: 0 done, 1 the environment or the records are at
//! fault, 2 wrong usage or an internal error.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;

use gopack::relocate::in_place::{InPlace, relocate_in_place};

fn main() -> ExitCode {
    let mut quiet = false;
    let mut prefix: Option<PathBuf> = None;
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--probe") => {
                println!("gopack-relocate");
                return ExitCode::SUCCESS;
            }
            Some("-q" | "--quiet") => quiet = true,
            Some("--") => {
                prefix = args.next().map(PathBuf::from);
                if args.next().is_some() {
                    return usage();
                }
            }
            _ => return usage(),
        }
    }
    let Some(prefix) = prefix else {
        return usage();
    };
    let mut stderr = std::io::stderr().lock();
    match relocate_in_place(&prefix, &AtomicBool::new(false)) {
        Ok(InPlace::AlreadyThere(to)) => {
            if !quiet {
                println!("gopack-unpack: already relocated to {}", show(&to));
            }
            ExitCode::SUCCESS
        }
        Ok(InPlace::Relocated {
            from,
            to,
            files,
            broken_shebangs,
        }) => {
            if !broken_shebangs.is_empty() {
                let list: String = broken_shebangs
                    .iter()
                    .map(|path| format!("\n  {}", show(&path.0)))
                    .collect();
                let _ = writeln!(
                    stderr,
                    "gopack-unpack: warning: the path {} cannot be written into the first line of these Python scripts; run them as `python SCRIPT`:{list}",
                    show(&to)
                );
            }
            if !quiet {
                println!(
                    "gopack-unpack: relocated {files} file(s) from {} to {} (native relocator)",
                    show(&from),
                    show(&to)
                );
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            let _ = stderr.write_all(err.report("gopack-unpack: ").as_bytes());
            // Before the journal is written nothing has changed; after it, a rerun finishes.
            if prefix.join(gopack::relocate::in_place::JOURNAL).exists() {
                let _ = writeln!(
                    stderr,
                    "gopack-unpack: the relocation is half done; run gopack-unpack again to finish it"
                );
            } else {
                let _ = writeln!(stderr, "gopack-unpack: nothing was changed");
            }
            ExitCode::from(err.kind().exit_code())
        }
    }
}

fn show(bytes: &[u8]) -> String {
    gopack::error::escape_bytes(bytes)
}

fn usage() -> ExitCode {
    let _ = writeln!(
        std::io::stderr(),
        "usage: gopack-relocate --probe | gopack-relocate [-q] -- PREFIX\n(run by bin/gopack-unpack; see its --help)"
    );
    ExitCode::from(2)
}
