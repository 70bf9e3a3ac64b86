//! `--dest-prefix`: every relocation record applied at pack time for a known target, with the
//! engine the target uses (text streamed through [`super::apply::RewritingReader`] as the
//! bundle is written, slots as patches), so the bundle needs no unpack step there.

use crate::error::Result;
use crate::plan::{Body, Plan};
use crate::relocate::{self, ByteString, Edit, TextRecord};
use crate::scan::Error as ScanError;

/// Applies every relocation record for `dest` while packing, with the engine the target uses:
/// disk files are streamed through it when the bundle is written (their digest is taken by
/// streaming them once now), gopack's own small files are rewritten in memory. Every binary
/// slot is checked first.
pub fn apply_dest_prefix(plan: &mut Plan, dest: &[u8]) -> Result<()> {
    use std::collections::HashMap;
    let from = plan.relocation.source_prefix.0.clone();
    relocate::apply::check_target(dest)?;
    plan.relocation.check_fits(dest)?;
    let mut slots: HashMap<Vec<u8>, Vec<crate::relocate::Patch>> = HashMap::new();
    for record in &plan.relocation.binary {
        slots.insert(record.path.0.clone(), record.patches(dest)?);
    }
    let macho: std::collections::HashSet<Vec<u8>> = plan
        .relocation
        .binary
        .iter()
        .filter(|record| record.macho)
        .map(|record| record.path.0.clone())
        .collect();
    let texts: HashMap<Vec<u8>, TextRecord> = plan
        .relocation
        .text
        .iter()
        .map(|record| (record.path.0.clone(), record.clone()))
        .collect();
    let prefix = plan.prefix.clone();
    for planned in &mut plan.entries {
        let text = texts.get(&planned.entry.path);
        let patches = slots.remove(&planned.entry.path);
        if text.is_none() && patches.is_none() {
            continue;
        }
        let in_memory = |bytes: &[u8]| match text {
            Some(record) => {
                let mut out = Vec::with_capacity(bytes.len());
                let mut rewriter = record.rewriter(&from, dest);
                rewriter.feed(bytes, &mut out);
                rewriter.finish(&mut out);
                out
            }
            None => bytes.to_vec(),
        };
        let (kind, edit) = match &planned.body {
            Body::Generated(bytes) => {
                planned.body = Body::Generated(in_memory(bytes));
                continue;
            }
            Body::Disk { kind, edit, .. } => {
                let edit = match (edit, text, patches) {
                    (Edit::Replace(bytes), _, _) => Edit::Replace(in_memory(bytes)),
                    (Edit::AnonymisedRecord, Some(_), _) => {
                        // Relocated in memory: rendered once more, for this file only.
                        let file = fs_err::File::open(planned.entry.absolute(&prefix)).map_err(
                            |source| crate::Error::io("cannot read a conda-meta record", source),
                        )?;
                        let mut rendered = Vec::new();
                        std::io::Read::read_to_end(
                            &mut relocate::apply::edited_reader(
                                file.file(),
                                planned.entry.size,
                                &Edit::AnonymisedRecord,
                            ),
                            &mut rendered,
                        )
                        .map_err(|source| {
                            crate::Error::io("cannot read a conda-meta record", source)
                        })?;
                        Edit::Replace(in_memory(&rendered))
                    }
                    (_, Some(record), _) => Edit::Relocate(Box::new(super::TextEdit {
                        record: record.clone(),
                        from: from.clone(),
                        to: dest.to_vec(),
                    })),
                    (Edit::Patch(existing), None, Some(new)) => {
                        Edit::Patch(existing.iter().cloned().chain(new).collect())
                    }
                    (_, None, Some(new)) => Edit::Patch(new),
                    (edit, None, None) => edit.clone(),
                };
                (*kind, edit)
            }
            _ => continue,
        };
        let source = planned.entry.absolute(&prefix);
        let unreadable = |err| ScanError::Unreadable {
            path: source.clone(),
            source: err,
        };
        let file = crate::error::open_file(&source).map_err(unreadable)?;
        // Mach-O: re-signed over its relocated bytes, read whole once (super::macho).
        let edit = if macho.contains(&planned.entry.path) {
            relocate::macho::signed_edit(&file, planned.entry.size, edit).map_err(unreadable)?
        } else {
            edit
        };
        let (sha256, size) = crate::stream::digest(relocate::apply::edited_reader(
            &file,
            planned.entry.size,
            &edit,
        ))
        .map_err(unreadable)?;
        planned.body = Body::Disk {
            edit,
            sha256,
            size,
            kind,
        };
    }
    for binary in &mut plan.go_binaries {
        if let Some(planned) = plan.entries.iter().find(|p| p.entry.path == binary.path.0)
            && let Body::Disk { sha256, .. } = &planned.body
        {
            binary.sha256 = hex::encode(sha256);
        }
    }
    drop_stale_bytecode(plan, texts.keys());
    plan.relocation.source_prefix = ByteString(dest.to_vec());
    Ok(())
}

/// Leaves out the `__pycache__` bytecode of Python sources rewritten at pack time: compiled from
/// the old text, it would be loaded whenever the new source has the old one's size.
fn drop_stale_bytecode<'a>(plan: &mut Plan, rewritten: impl Iterator<Item = &'a Vec<u8>>) {
    let mut stale: Vec<Vec<u8>> = Vec::new();
    for source in rewritten {
        let Some(stem) = source.strip_suffix(b".py") else {
            continue;
        };
        let (dir, name) = match stem.iter().rposition(|&c| c == b'/') {
            Some(slash) => (&stem[..=slash], &stem[slash + 1..]),
            None => (&b""[..], stem),
        };
        let mut cache = dir.to_vec();
        cache.extend_from_slice(b"__pycache__/");
        cache.extend_from_slice(name);
        cache.push(b'.');
        stale.push(cache);
    }
    if stale.is_empty() {
        return;
    }
    let doomed: Vec<Vec<u8>> = plan
        .entries
        .iter()
        .map(|p| &p.entry.path)
        .filter(|path| path.ends_with(b".pyc") && stale.iter().any(|s| path.starts_with(s)))
        .cloned()
        .collect();
    for path in doomed {
        plan.remove_entry(&path);
    }
}
