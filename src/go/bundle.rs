//! Go binaries into the plan: the services `--go`/`--go-workspace` build for the environment's
//! platform land in `bin/`, with their build info, replacing same-named files of the
//! environment.

use std::sync::atomic::AtomicBool;

use super::build::{self as go_build, GoBuildOptions};
use super::{GoBinary, Origin};
use crate::error::Result;
use crate::plan::{Body, Plan, PlannedEntry};
use crate::progress::{Reporter, Warning};
use crate::relocate::ByteString;
use crate::scan::{Entry, EntryKind};

/// Builds the requested Go services for the environment's platform and puts them in `bin/`,
/// replacing same-named files of the environment (with a warning).
///
/// # Errors
/// A missing toolchain, a failed build, a built binary without build info.
pub fn add_built_binaries(
    plan: &mut Plan,
    options: &GoBuildOptions,
    staging: &std::path::Path,
    cancel: &AtomicBool,
    reporter: &dyn Reporter,
) -> Result<()> {
    reporter.stage("building Go");
    let go = go_build::find_toolchain(&plan.prefix, options.toolchain.as_deref())?;
    let vars = crate::conda::vars::env_vars(&plan.prefix);
    let targets = go_build::targets(
        &plan.prefix,
        &go,
        &plan.platform,
        &vars,
        options,
        staging,
        cancel,
    )?;
    let built = go_build::build_all(&go, &plan.platform, &targets, options, staging, cancel)?;
    let mtime = plan.generated_mtime();
    let finder =
        memchr::memmem::Finder::new(plan.prefix.as_os_str().as_encoded_bytes()).into_owned();
    for binary in built {
        let path = go_build::archive_path(&binary);
        let size = fs_err::metadata(&binary.path)
            .map_err(|source| crate::Error::io("cannot read a built Go binary", source))?
            .len();
        let facts = crate::scan::content::analyse(&binary.path, &path, size, &finder, cancel)?;
        let file = crate::error::open_file(&binary.path)
            .map_err(|source| crate::Error::io("cannot read a built Go binary", source))?;
        let build_info = facts
            .go_buildinfo
            .iter()
            .find_map(|&offset| crate::go::buildinfo::read_at(&file, offset).ok())
            .ok_or_else(|| super::Error::Binary {
                path: binary.path.clone(),
                message: "the built binary has no readable Go build info".into(),
            })?;
        if let Some(existing) = plan.remove_entry(&path) {
            reporter.warning(&Warning::Replaced {
                path: existing.entry.display(),
                by: format!("the Go binary built from `{}`", binary.target.dir.display()),
            });
        }
        plan.go_binaries.push(GoBinary {
            path: ByteString(path.clone()),
            sha256: hex::encode(facts.sha256),
            origin: Origin::Built,
            build_info,
        });
        plan.ensure_dir(b"bin", mtime);
        plan.entries.push(PlannedEntry {
            entry: Entry {
                path,
                kind: EntryKind::File,
                mode: 0o755,
                mtime,
                size,
            },
            body: Body::External {
                source: binary.path.clone(),
                sha256: facts.sha256,
                size,
            },
        });
    }
    plan.go_binaries.sort_by(|a, b| a.path.cmp(&b.path));
    plan.sort_entries();
    Ok(())
}
