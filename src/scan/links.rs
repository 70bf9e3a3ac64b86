//! Symlinks that lead out of the environment. `gopack unpack` (like any careful extractor)
//! refuses a bundle holding one, so `create` refuses them before anything is written, listing
//! every such link, unless `--copy-outside-links` asks to pack the content of each target (a
//! regular file) in place of the link.
//!
//! A link leads out when its own target does, read lexically (absolute, or `..` past the prefix;
//! the rule `unpack` applies to each link), or when resolving it through the other packed links
//! does (`lib/up -> ..` makes `lib/x -> up/../y` leave). Absolute links into the prefix count
//! as the relative links they are packed as.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;

use super::Error as ScanError;
use crate::error::Result;
use crate::progress::{Reporter, Warning};
use crate::scan::{Entry, EntryKind};

/// Paths that gopack fills with its own file; a link there is replaced, never packed, so where
/// it leads does not matter.
const REPLACED_BY_GOPACK: &[&[u8]] = crate::manifest::GENERATED_PATHS;

/// How many links one resolution follows before it is taken for a loop (Linux's limit).
const MAX_HOPS: usize = 40;

/// How a link leads out of the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leaves {
    /// Its own target does (absolute outside the prefix, or `..` past the prefix).
    Directly,
    /// Its target stays inside, but resolving it through other links does not.
    Through,
}

/// Refuses symlinks that lead out of the environment, or with `copy` turns each into a regular
/// file entry for its target's content (read through the link when the file is packed), and
/// returns the bytes so added.
///
/// # Errors
/// [`ScanError::SymlinksOutside`] listing every such link; with `copy`,
/// [`ScanError::OutsideLinksNotCopied`] listing every link whose target is not a regular file.
pub fn check_outside_links(
    prefix: &std::path::Path,
    entries: &mut [Entry],
    copy: bool,
    reporter: &dyn Reporter,
) -> Result<u64> {
    let prefix_bytes = prefix.as_os_str().as_encoded_bytes();
    // Targets as they are packed: absolute links into the prefix become relative.
    let links: HashMap<Vec<u8>, Vec<u8>> = entries
        .iter()
        .filter_map(|entry| match &entry.kind {
            EntryKind::Symlink { target } => Some((
                entry.path.clone(),
                crate::paths::relative_link_target(&entry.path, target, prefix_bytes)
                    .unwrap_or_else(|| target.clone()),
            )),
            _ => None,
        })
        .collect();
    let outside: Vec<(usize, String)> = entries
        .iter()
        .enumerate()
        .filter(|(_, entry)| !REPLACED_BY_GOPACK.contains(&entry.path.as_slice()))
        .filter_map(|(index, entry)| {
            let EntryKind::Symlink { target } = &entry.kind else {
                return None;
            };
            let how = leaves(&entry.path, &links)?;
            let mut line = format!("{} → {}", entry.display(), String::from_utf8_lossy(target));
            if how == Leaves::Through {
                line.push_str(" (through other symlinks)");
            }
            Some((index, line))
        })
        .collect();
    if outside.is_empty() {
        return Ok(0);
    }
    if !copy {
        return Err(ScanError::SymlinksOutside {
            links: outside.into_iter().map(|(_, line)| line).collect(),
        }
        .into());
    }
    let mut refused = Vec::new();
    let mut copied = Vec::new();
    let mut bytes = 0;
    for (index, line) in outside {
        let entry = &mut entries[index];
        // Follows every link on the way, as reading the file through the link will.
        match fs_err::metadata(entry.absolute(prefix)) {
            Ok(metadata) if metadata.is_file() => {
                entry.kind = EntryKind::File;
                entry.mode = metadata.mode() & 0o777;
                entry.mtime = metadata.mtime().max(0) as u64;
                entry.size = metadata.len();
                bytes += metadata.len();
                copied.push(line);
            }
            Ok(metadata) if metadata.is_dir() => {
                refused.push(format!("{line}: a directory (only files are copied)"));
            }
            Ok(_) => refused.push(format!("{line}: not a regular file")),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                refused.push(format!("{line}: the target does not exist"));
            }
            Err(err) => refused.push(format!("{line}: cannot read the target ({err})")),
        }
    }
    if !refused.is_empty() {
        return Err(ScanError::OutsideLinksNotCopied { links: refused }.into());
    }
    reporter.warning(&Warning::OutsideLinksCopied { links: copied });
    Ok(bytes)
}

/// Whether the link at `path` (a key of `links`, which maps every packed link to its packed
/// target) leads out of the environment, and how.
pub fn leaves(path: &[u8], links: &HashMap<Vec<u8>, Vec<u8>>) -> Option<Leaves> {
    let target = links.get(path)?;
    if !lexically_inside(path, target) {
        return Some(Leaves::Directly);
    }
    resolves_outside(path, links).then_some(Leaves::Through)
}

/// The rule `unpack` applies to each link alone: not empty, not absolute, and no `..` that
/// climbs above the root at any point.
fn lexically_inside(path: &[u8], target: &[u8]) -> bool {
    if target.is_empty() || target.starts_with(b"/") {
        return false;
    }
    let mut depth = components(path).count() as i64 - 1;
    for part in components(target) {
        match part {
            b"." => {}
            b".." => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            _ => depth += 1,
        }
    }
    true
}

/// Resolves the link at `path` the way the kernel would in the unpacked tree, following the
/// packed links only: whether the walk ever climbs above the root or meets an absolute target.
/// A component that is no link is walked as a directory (missing or not, as `..` is lexical
/// there too); a loop resolves to nothing and so leads nowhere.
fn resolves_outside(path: &[u8], links: &HashMap<Vec<u8>, Vec<u8>>) -> bool {
    let Some(target) = links.get(path) else {
        return false;
    };
    let mut dir: Vec<&[u8]> = components(path).collect();
    dir.pop();
    // What is left to walk, last component first, so a link's target goes in front cheaply.
    let mut rest: Vec<&[u8]> = components(target).rev().collect();
    let mut hops = 0;
    while let Some(part) = rest.pop() {
        match part {
            b"." => {}
            b".." => {
                if dir.pop().is_none() {
                    return true;
                }
            }
            name => {
                dir.push(name);
                if let Some(next) = links.get(&dir.join(&b'/')) {
                    hops += 1;
                    if hops > MAX_HOPS {
                        return false;
                    }
                    if next.is_empty() || next.starts_with(b"/") {
                        return true;
                    }
                    dir.pop();
                    rest.extend(components(next).rev());
                }
            }
        }
    }
    false
}

/// The non-empty `/`-separated components of a path.
fn components(path: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    path.split(|&c| c == b'/').filter(|part| !part.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links(pairs: &[(&str, &str)]) -> HashMap<Vec<u8>, Vec<u8>> {
        pairs
            .iter()
            .map(|(path, target)| (path.as_bytes().to_vec(), target.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn links_that_stay_inside() {
        let all = links(&[
            ("bin/python3", "python3.11"),
            ("bin/go", "../go/bin/go"),
            ("lib/up", ".."),
            ("lib/self", "."),
            ("lib/deep", "a/b/../../c"),
            ("a/b/c/long", "../../../x"),
            ("lib/missing", "nothing/here"),
            ("lib/d", "sub/sub2"),
        ]);
        for path in all.keys() {
            assert_eq!(
                leaves(path, &all),
                None,
                "{}",
                String::from_utf8_lossy(path)
            );
        }
    }

    #[test]
    fn links_that_leave_directly() {
        let all = links(&[
            ("lib/out", "/etc/hostname"),
            ("lib/rel", "../../outside"),
            ("top", ".."),
            ("lib/dip", "../../env/lib/x"),
            ("lib/gone", "missing/../../.."),
            // Lexically out, although the link `lib/d` would bring it back: unpack checks
            // each link alone, so it is refused.
            ("lib/d", "sub/sub2"),
            ("lib/x", "d/../../.."),
        ]);
        for path in ["lib/out", "lib/rel", "top", "lib/dip", "lib/gone", "lib/x"] {
            assert_eq!(
                leaves(path.as_bytes(), &all),
                Some(Leaves::Directly),
                "{path}"
            );
        }
    }

    #[test]
    fn links_that_leave_through_other_links() {
        let all = links(&[
            ("lib/up", ".."),
            ("lib/chain", "up/../x"),
            ("s", "."),
            ("a", "s/s/s/../../escape"),
            ("lib/abs", "/usr/lib"),
            ("lib/via", "abs/libc.so"),
            ("lib/loop1", "loop2"),
            ("lib/loop2", "loop1"),
        ]);
        for path in ["lib/chain", "a", "lib/via"] {
            assert_eq!(
                leaves(path.as_bytes(), &all),
                Some(Leaves::Through),
                "{path}"
            );
        }
        // A loop resolves to nothing.
        assert_eq!(leaves(b"lib/loop1", &all), None);
    }
}
