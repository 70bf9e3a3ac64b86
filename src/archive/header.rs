//! Deterministic tar headers: POSIX ustar, uid/gid 0, empty owner names, the entry's own mtime,
//! and a PAX extended header only where ustar cannot hold a value (paths or link targets that do
//! not fit, sizes of 8 GiB and more, names that are not UTF-8 are kept raw as GNU tar does).
//!
//! The `tar` crate builds and checksums each header ([`tar::Header`]); what is gopack's own is
//! the choice of fields, because `tar::Builder` takes them from the file system (owner, times,
//! GNU long-name headers) where a reproducible bundle needs them fixed, and the bodies are
//! streamed through relocation, which `Builder::append` cannot do.

use std::io::Write;

use tar::{EntryType, Header};

/// The largest size a ustar header holds in octal (8 GiB − 1).
const USTAR_MAX_SIZE: u64 = 0o77777777777;

/// Header data for one member.
pub struct Member<'a> {
    /// Path inside the archive (directories without the trailing `/`).
    pub path: &'a [u8],
    /// Entry type.
    pub entry_type: EntryType,
    /// Permission bits.
    pub mode: u32,
    /// Modification time in seconds.
    pub mtime: u64,
    /// Content size.
    pub size: u64,
    /// Link target for symlinks and hard links.
    pub link: Option<&'a [u8]>,
}

/// Splits a path into ustar's `prefix` (≤ 155 bytes) and `name` (≤ 100 bytes) fields at a `/`.
fn split_ustar(path: &[u8]) -> Option<(&[u8], &[u8])> {
    if path.len() <= 100 {
        return Some((&[], path));
    }
    if path.len() > 256 {
        return None;
    }
    // The name part must be ≤ 100 bytes, so the split slash is at index ≥ len - 101.
    let lowest = path.len().saturating_sub(101);
    let slash = (lowest..path.len().min(156)).find(|&i| path[i] == b'/')?;
    let (prefix, name) = (&path[..slash], &path[slash + 1..]);
    (!name.is_empty() && name.len() <= 100 && prefix.len() <= 155).then_some((prefix, name))
}

fn pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    // "LEN KEY=VALUE\n" where LEN counts the whole record, itself included.
    let body = key.len() + value.len() + 3;
    let mut len = body + 1;
    while len.to_string().len() + body != len {
        len = body + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// Writes the header block(s) for `member` (PAX first where needed, then ustar) to `out`. The
/// caller writes the content and its padding.
///
/// # Errors
/// Write failures.
pub fn write_header(out: &mut impl Write, member: &Member<'_>) -> std::io::Result<()> {
    let mut path = member.path.to_vec();
    if member.entry_type == EntryType::Directory {
        path.push(b'/');
    }
    let mut pax = Vec::new();
    let split = split_ustar(&path);
    if split.is_none() {
        pax_record(&mut pax, "path", &path);
    }
    if let Some(link) = member.link
        && link.len() > 100
    {
        pax_record(&mut pax, "linkpath", link);
    }
    if member.size > USTAR_MAX_SIZE {
        pax_record(&mut pax, "size", member.size.to_string().as_bytes());
    }
    if !pax.is_empty() {
        if std::str::from_utf8(&path).is_err()
            || member.link.is_some_and(|l| std::str::from_utf8(l).is_err())
        {
            let mut with_charset = Vec::new();
            pax_record(&mut with_charset, "hdrcharset", b"BINARY");
            with_charset.extend_from_slice(&pax);
            pax = with_charset;
        }
        let base = path
            .rsplit(|&c| c == b'/')
            .find(|part| !part.is_empty())
            .unwrap_or(b"entry");
        let mut pax_name = b"PaxHeaders/".to_vec();
        pax_name.extend_from_slice(&base[..base.len().min(89)]);
        let mut header = base_header(EntryType::XHeader, 0o644, member.mtime, pax.len() as u64);
        set_name(&mut header, &[], &pax_name);
        header.set_cksum();
        out.write_all(header.as_bytes())?;
        out.write_all(&pax)?;
        write_padding(out, pax.len() as u64)?;
    }
    let mut header = base_header(member.entry_type, member.mode, member.mtime, member.size);
    match split {
        Some((prefix, name)) => set_name(&mut header, prefix, name),
        None => {
            let tail = &path[path.len() - 100..];
            set_name(&mut header, &[], tail);
        }
    }
    if let Some(link) = member.link {
        let field = &mut header.as_old_mut().linkname;
        let len = link.len().min(100);
        field[..len].copy_from_slice(&link[..len]);
    }
    header.set_cksum();
    out.write_all(header.as_bytes())
}

fn base_header(entry_type: EntryType, mode: u32, mtime: u64, size: u64) -> Header {
    let mut header = Header::new_ustar();
    header.set_entry_type(entry_type);
    header.set_mode(mode);
    header.set_mtime(mtime);
    header.set_uid(0);
    header.set_gid(0);
    header.set_size(size);
    header
}

fn set_name(header: &mut Header, prefix: &[u8], name: &[u8]) {
    #[expect(
        clippy::expect_used,
        reason = "every header here is made by Header::new_ustar"
    )]
    let ustar = header.as_ustar_mut().expect("ustar header");
    ustar.name = [0; 100];
    ustar.name[..name.len()].copy_from_slice(name);
    ustar.prefix = [0; 155];
    ustar.prefix[..prefix.len()].copy_from_slice(prefix);
}

/// Writes the NUL padding that rounds content of `size` bytes up to a 512-byte block.
pub fn write_padding(out: &mut impl Write, size: u64) -> std::io::Result<()> {
    let rest = (512 - size % 512) % 512;
    out.write_all(&[0u8; 512][..rest as usize])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_length_counts_itself() {
        let mut out = Vec::new();
        pax_record(&mut out, "path", b"abc");
        assert_eq!(out, b"12 path=abc\n");
        let mut out = Vec::new();
        pax_record(&mut out, "path", &[b'a'; 95]);
        assert_eq!(out.len(), 105);
        assert!(out.starts_with(b"105 "));
    }

    #[test]
    fn ustar_split() {
        let long = [vec![b'd'; 120], b"/".to_vec(), vec![b'f'; 90]].concat();
        let (prefix, name) = split_ustar(&long).unwrap();
        assert_eq!(prefix.len(), 120);
        assert_eq!(name.len(), 90);
        assert!(split_ustar(&[b'x'; 150]).is_none());
    }

    #[test]
    fn long_paths_and_huge_sizes_round_trip_through_tar_rs() {
        let long = [b"dir/".to_vec(), vec![b'n'; 300]].concat();
        let mut archive = Vec::new();
        let member = Member {
            path: &long,
            entry_type: EntryType::Regular,
            mode: 0o644,
            mtime: 7,
            size: 3,
            link: None,
        };
        write_header(&mut archive, &member).unwrap();
        archive.extend_from_slice(b"abc");
        write_padding(&mut archive, 3).unwrap();
        archive.extend_from_slice(&[0u8; 1024]);
        let mut reader = tar::Archive::new(&archive[..]);
        let mut entries = reader.entries().unwrap();
        let entry = entries.next().unwrap().unwrap();
        assert_eq!(&*entry.path_bytes(), &long[..]);
        assert_eq!(entry.header().mtime().unwrap(), 7);
        assert_eq!(entry.header().uid().unwrap(), 0);
    }
}
