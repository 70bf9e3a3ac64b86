//! Python distributions that no conda record owns (installed by pip, uv, …): found by their
//! `.dist-info` directories in every site-packages, with the name, version and installer their
//! metadata gives.

use super::CondaEnv;
use crate::manifest::PipPackage;

/// `.dist-info` directories that no conda record owns.
pub fn unmanaged_distributions(env: &CondaEnv) -> Vec<PipPackage> {
    let mut found = Vec::new();
    for site in env.site_packages() {
        let Ok(entries) = fs_err::read_dir(env.prefix.join(&site)) else {
            continue;
        };
        let mut names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".dist-info"))
            .collect();
        names.sort();
        for name in names {
            let dist_info = format!("{site}/{name}");
            if env.managed.contains_key(&format!("{dist_info}/METADATA")) {
                continue;
            }
            let dir = env.prefix.join(&dist_info);
            let metadata = fs_err::read_to_string(dir.join("METADATA")).unwrap_or_default();
            let field = |key: &str| {
                metadata
                    .lines()
                    .take_while(|line| !line.is_empty())
                    .find_map(|line| line.strip_prefix(key).map(|v| v.trim().to_string()))
            };
            let installer = fs_err::read_to_string(dir.join("INSTALLER"))
                .ok()
                .map(|text| text.trim().to_string())
                .filter(|text| !text.is_empty());
            found.push(PipPackage {
                name: field("Name:")
                    .unwrap_or_else(|| name.trim_end_matches(".dist-info").to_string()),
                version: field("Version:").unwrap_or_default(),
                installer,
                dist_info,
            });
        }
    }
    found
}
