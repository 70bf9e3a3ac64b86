//! ELF `RPATH`/`RUNPATH`: entries inside the prefix become `$ORIGIN`-relative, written into the
//! dynamic string table in place (NUL-padded, never shifting other data). Only the ELF header,
//! program headers, the dynamic segment and the strings themselves are read, so memory does not
//! grow with the file.

// Offsets and sizes here come from files: arithmetic on them is checked.
#![deny(clippy::arithmetic_side_effects)]

use std::os::unix::fs::FileExt;

use goblin::container::{Container, Ctx};
use goblin::elf::header::Header;
use goblin::elf::program_header::{PT_DYNAMIC, PT_LOAD, ProgramHeader};

const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const DT_STRTAB: u64 = 5;
const DT_SONAME: u64 = 14;
const DT_RPATH: u64 = 15;
const DT_RUNPATH: u64 = 29;

/// A search-path string of the dynamic section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchPath {
    /// File offset of the string.
    pub offset: u64,
    /// The string (without its NUL).
    pub value: Vec<u8>,
    /// Whether it is `DT_RUNPATH` (else `DT_RPATH`).
    pub runpath: bool,
    /// Whether another dynamic entry's string lies inside this one's bytes (tail sharing), in
    /// which case it must not be rewritten.
    pub shared: bool,
}

/// Reads the `RPATH`/`RUNPATH` strings of an ELF file. Returns an empty list for files that are
/// not ELF, have no dynamic section, or are malformed (those are left to the C-string records).
pub fn search_paths(file: &std::fs::File) -> Vec<SearchPath> {
    read_search_paths(file).unwrap_or_default()
}

fn read_at(file: &std::fs::File, offset: u64, len: usize) -> Option<Vec<u8>> {
    let mut buffer = vec![0u8; len];
    file.read_exact_at(&mut buffer, offset).ok()?;
    Some(buffer)
}

fn read_search_paths(file: &std::fs::File) -> Option<Vec<SearchPath>> {
    let ident = read_at(file, 0, 64)?;
    let header = goblin::elf::Elf::parse_header(&ident).ok()?;
    let ctx = context(&header)?;
    let phdr_bytes = usize::from(header.e_phentsize).checked_mul(usize::from(header.e_phnum))?;
    if phdr_bytes == 0 || phdr_bytes > 1 << 20 {
        return None;
    }
    let phdrs_raw = read_at(file, header.e_phoff, phdr_bytes)?;
    let phdrs = ProgramHeader::parse(&phdrs_raw, 0, usize::from(header.e_phnum), ctx).ok()?;
    let dynamic = phdrs.iter().find(|p| p.p_type == PT_DYNAMIC)?;
    if dynamic.p_filesz > 1 << 20 {
        return None;
    }
    let raw = read_at(file, dynamic.p_offset, dynamic.p_filesz as usize)?;
    // A dynamic entry is a tag and a value, each a word.
    let (word, entry_len): (usize, usize) = if ctx.container == Container::Big {
        (8, 16)
    } else {
        (4, 8)
    };
    let little = ctx.le.is_little();
    // `bytes` is always `word` long (chunks_exact below); a short slice reads as zero.
    let read_word = |bytes: &[u8]| -> u64 {
        let mut eight = [0u8; 8];
        let mut four = [0u8; 4];
        match (word, little) {
            (8, _) if bytes.len() == 8 => eight.copy_from_slice(bytes),
            (_, _) if bytes.len() == 4 => four.copy_from_slice(bytes),
            _ => return 0,
        }
        match (word, little) {
            (8, true) => u64::from_le_bytes(eight),
            (8, false) => u64::from_be_bytes(eight),
            (_, true) => u64::from(u32::from_le_bytes(four)),
            (_, false) => u64::from(u32::from_be_bytes(four)),
        }
    };
    let mut strtab_address = None;
    let mut string_entries = Vec::new();
    for pair in raw.chunks_exact(entry_len) {
        let tag = read_word(&pair[..word]);
        let value = read_word(&pair[word..]);
        match tag {
            DT_NULL => break,
            DT_STRTAB => strtab_address = Some(value),
            DT_NEEDED | DT_SONAME | DT_RPATH | DT_RUNPATH => string_entries.push((tag, value)),
            _ => {}
        }
    }
    let strtab_address = strtab_address?;
    let load = phdrs.iter().find(|p| {
        p.p_type == PT_LOAD
            && strtab_address >= p.p_vaddr
            && p.p_vaddr
                .checked_add(p.p_filesz)
                .is_some_and(|end| strtab_address < end)
    })?;
    // Addresses and offsets come from the file: every step is checked.
    let strtab_offset = strtab_address
        .checked_sub(load.p_vaddr)?
        .checked_add(load.p_offset)?;
    let mut paths = Vec::new();
    for &(tag, value) in &string_entries {
        if tag != DT_RPATH && tag != DT_RUNPATH {
            continue;
        }
        let Some(offset) = strtab_offset.checked_add(value) else {
            continue;
        };
        let chunk = read_at(file, offset, 4096).or_else(|| {
            let size = file.metadata().ok()?.len();
            read_at(file, offset, size.checked_sub(offset)? as usize)
        })?;
        let len = memchr::memchr(0, &chunk)?;
        let shared = string_entries.iter().any(|&(_, other)| {
            other > value
                && value
                    .checked_add(len as u64)
                    .is_some_and(|end| other <= end)
        });
        paths.push(SearchPath {
            offset,
            value: chunk[..len].to_vec(),
            runpath: tag == DT_RUNPATH,
            shared,
        });
    }
    Some(paths)
}

fn context(header: &Header) -> Option<Ctx> {
    let container = header.container().ok()?;
    let endian = header.endianness().ok()?;
    Some(Ctx::new(container, endian))
}

/// Rewrites a search path so entries inside `prefix` become `$ORIGIN`-relative for a file in
/// directory `file_dir` (relative to the prefix). Returns `None` when no entry names the prefix.
pub fn relative_search_path(value: &[u8], prefix: &[u8], file_dir: &[u8]) -> Option<Vec<u8>> {
    let mut changed = false;
    let entries: Vec<Vec<u8>> = value
        .split(|&c| c == b':')
        .map(|entry| {
            let inside = if entry == prefix {
                Some(&b""[..])
            } else {
                entry
                    .strip_prefix(prefix)
                    .and_then(|rest| rest.strip_prefix(b"/"))
            };
            match inside {
                Some(target) => {
                    changed = true;
                    let relative = crate::paths::relative_path(file_dir, target);
                    if relative == b"." {
                        b"$ORIGIN".to_vec()
                    } else {
                        [&b"$ORIGIN/"[..], &relative].concat()
                    }
                }
                None => entry.to_vec(),
            }
        })
        .collect();
    changed.then(|| entries.join(&b':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_path_rewrites() {
        assert_eq!(
            relative_search_path(b"/env/lib:/usr/lib", b"/env", b"bin").unwrap(),
            b"$ORIGIN/../lib:/usr/lib"
        );
        assert_eq!(
            relative_search_path(b"/env/lib", b"/env", b"lib").unwrap(),
            b"$ORIGIN"
        );
        assert_eq!(
            relative_search_path(b"/env/lib", b"/env", b"lib/python3.11/lib-dynload").unwrap(),
            b"$ORIGIN/../.."
        );
        assert!(relative_search_path(b"/env2/lib", b"/env", b"bin").is_none());
        assert!(relative_search_path(b"$ORIGIN/../lib", b"/env", b"bin").is_none());
    }
}
