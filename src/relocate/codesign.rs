//! Ad-hoc re-signing of a Mach-O slice whose bytes changed: the page hashes of every code
//! directory in its embedded signature are recomputed over the new bytes and written back in
//! place, as same-length [`Patch`]es.
//!
//! Why own code rather than the `apple-codesign` crate: that crate signs from scratch (it
//! rebuilds the whole signature, `__LINKEDIT` included) and brings a very large dependency tree
//! (CMS, X.509, remote signing, notarisation) that takes 20–40 minutes to build on the
//! machines gopack is built on. gopack needs far less: its relocations never move a byte
//! (every edit has the length of what it replaces), so the signature keeps its size, its
//! layout, its identifier, flags (`adhoc`, `linker-signed`), code limit, page size, hash type
//! and special slots (Info.plist, requirements, entitlements: the blobs they hash are not
//! touched). Only the code slots, one hash per page of the bytes before the signature, change.
//!
//! What is not handled (the file is then left as it is, and [`resign_slice`] says why): hash
//! types other than SHA-256, truncated SHA-256 and SHA-384 (SHA-1 only code directories);
//! scatter tables. A file with a CMS signature (Developer ID) gets new page hashes too, but its
//! CMS signature no longer matches: only ad-hoc signatures stay valid, which is what conda
//! packages for macOS carry (the linker's or `codesign -s -`).

// Offsets and sizes here come from files: arithmetic on them is checked.
#![deny(clippy::arithmetic_side_effects)]

use sha2::Digest;

use super::Patch;

/// Superblob magic (`CSMAGIC_EMBEDDED_SIGNATURE`).
const EMBEDDED_SIGNATURE: u32 = 0xfade_0cc0;
/// Code directory magic (`CSMAGIC_CODEDIRECTORY`).
const CODE_DIRECTORY: u32 = 0xfade_0c02;

/// Why a signature cannot be re-signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported(pub String);

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unsupported {}

fn unsupported(reason: &str) -> Unsupported {
    Unsupported(reason.to_string())
}

fn be32(data: &[u8], at: usize) -> Result<u32, Unsupported> {
    data.get(at..at.saturating_add(4))
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_be_bytes)
        .ok_or_else(|| unsupported("signature truncated"))
}

fn be64(data: &[u8], at: usize) -> Result<u64, Unsupported> {
    data.get(at..at.saturating_add(8))
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| unsupported("signature truncated"))
}

fn byte(data: &[u8], at: usize) -> Result<u8, Unsupported> {
    data.get(at)
        .copied()
        .ok_or_else(|| unsupported("signature truncated"))
}

fn hash(kind: u8, bytes: &[u8]) -> Result<Vec<u8>, Unsupported> {
    match kind {
        2 => Ok(sha2::Sha256::digest(bytes).to_vec()),
        3 => Ok(sha2::Sha256::digest(bytes)[..20].to_vec()),
        4 => Ok(sha2::Sha384::digest(bytes).to_vec()),
        _ => Err(Unsupported(format!("code directory hash type {kind}"))),
    }
}

fn hash_len(kind: u8) -> Option<usize> {
    match kind {
        2 => Some(32),
        3 => Some(20),
        4 => Some(48),
        _ => None,
    }
}

/// The patches that make the signature at `signature` (file offset and size within `slice`,
/// from `LC_CODE_SIGNATURE`) match the bytes of `slice`. `base` is the slice's offset in the
/// file, added to every patch offset. Hashes that already match give no patch.
///
/// # Errors
/// [`Unsupported`] for a malformed or unsupported signature (nothing is patched).
pub fn resign_slice(
    slice: &[u8],
    base: u64,
    signature: (u32, u32),
) -> Result<Vec<Patch>, Unsupported> {
    let (offset, size) = (signature.0 as usize, signature.1 as usize);
    let blob = offset
        .checked_add(size)
        .and_then(|end| slice.get(offset..end))
        .ok_or_else(|| unsupported("signature outside the file"))?;
    if be32(blob, 0)? != EMBEDDED_SIGNATURE {
        return Err(unsupported("not an embedded signature"));
    }
    let length = be32(blob, 4)? as usize;
    let blob = blob
        .get(..length)
        .ok_or_else(|| unsupported("signature longer than its load command says"))?;
    let count = be32(blob, 8)? as usize;
    if count > blob.len() / 8 {
        return Err(unsupported("signature index too long"));
    }
    let mut patches = Vec::new();
    let mut directories = 0usize;
    // Every offset below comes from the file; each step is checked.
    let out_of_range = || unsupported("an offset out of range");
    for index in 0..count {
        let entry = index
            .checked_mul(8)
            .and_then(|at| at.checked_add(16))
            .ok_or_else(out_of_range)?;
        let at = be32(blob, entry)? as usize;
        if be32(blob, at)? != CODE_DIRECTORY {
            continue;
        }
        directories = directories.saturating_add(1);
        let cd_len = be32(blob, at.checked_add(4).ok_or_else(out_of_range)?)? as usize;
        let cd = at
            .checked_add(cd_len)
            .and_then(|end| blob.get(at..end))
            .ok_or_else(|| unsupported("code directory outside the signature"))?;
        let version = be32(cd, 8)?;
        let hash_offset = be32(cd, 16)? as usize;
        let code_slots = be32(cd, 28)? as usize;
        let mut code_limit = u64::from(be32(cd, 32)?);
        let hash_size = byte(cd, 36)? as usize;
        let hash_type = byte(cd, 37)?;
        let page_shift = byte(cd, 39)?;
        if version >= 0x20100 && be32(cd, 44)? != 0 {
            return Err(unsupported("code directory with a scatter table"));
        }
        if version >= 0x20300 {
            let limit64 = be64(cd, 56)?;
            if limit64 != 0 {
                code_limit = limit64;
            }
        }
        if hash_len(hash_type) != Some(hash_size) {
            return Err(Unsupported(format!(
                "code directory hash type {hash_type} with {hash_size}-byte hashes"
            )));
        }
        if page_shift > 30 {
            return Err(unsupported("code directory page size"));
        }
        let code_limit = usize::try_from(code_limit)
            .ok()
            .filter(|&limit| limit <= slice.len())
            .ok_or_else(|| unsupported("code limit beyond the file"))?;
        let page = if page_shift == 0 {
            code_limit.max(1)
        } else {
            1usize << page_shift
        };
        if code_slots != code_limit.div_ceil(page) {
            return Err(unsupported("code slot count does not match the code limit"));
        }
        code_slots
            .checked_mul(hash_size)
            .and_then(|len| len.checked_add(hash_offset))
            .filter(|&end| end <= cd.len())
            .ok_or_else(|| unsupported("code slots outside the code directory"))?;
        for slot in 0..code_slots {
            let start = slot.checked_mul(page).ok_or_else(out_of_range)?;
            let end = start.saturating_add(page).min(code_limit);
            let page_bytes = slice.get(start..end).ok_or_else(out_of_range)?;
            let new = hash(hash_type, page_bytes)?;
            let at_cd = slot
                .checked_mul(hash_size)
                .and_then(|at| at.checked_add(hash_offset))
                .ok_or_else(out_of_range)?;
            let stored = at_cd
                .checked_add(hash_size)
                .and_then(|end| cd.get(at_cd..end))
                .ok_or_else(out_of_range)?;
            if stored != &new[..] {
                let in_slice = offset
                    .checked_add(at)
                    .and_then(|sum| sum.checked_add(at_cd))
                    .ok_or_else(out_of_range)?;
                patches.push(Patch {
                    offset: base.checked_add(in_slice as u64).ok_or_else(out_of_range)?,
                    bytes: new,
                });
            }
        }
    }
    if directories == 0 {
        return Err(unsupported("signature without a code directory"));
    }
    Ok(patches)
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    /// A slice of `code` bytes followed by a signature with one SHA-256 code directory of
    /// 4 KiB pages, code hashes all zero, two special slots (as for requirements and
    /// entitlements) filled with 0xab.
    fn signed(code: &[u8]) -> (Vec<u8>, (u32, u32)) {
        let slots = code.len().div_ceil(4096);
        let ident = b"x\0";
        let header = 88usize;
        let hash_offset = header + ident.len() + 2 * 32;
        let cd_len = hash_offset + slots * 32;
        let mut cd = Vec::new();
        for word in [
            CODE_DIRECTORY,
            cd_len as u32,
            0x20400,
            0x2_0002,
            hash_offset as u32,
            header as u32,
            2,
            slots as u32,
            code.len() as u32,
        ] {
            cd.extend_from_slice(&word.to_be_bytes());
        }
        cd.extend_from_slice(&[32, 2, 0, 12]);
        cd.resize(header, 0);
        cd.extend_from_slice(ident);
        cd.resize(hash_offset, 0xab);
        cd.resize(cd_len, 0);
        let mut blob = Vec::new();
        for word in [EMBEDDED_SIGNATURE, (20 + cd_len) as u32, 1, 0, 20] {
            blob.extend_from_slice(&word.to_be_bytes());
        }
        blob.extend_from_slice(&cd);
        let mut out = code.to_vec();
        let sig = (out.len() as u32, blob.len() as u32);
        out.extend_from_slice(&blob);
        (out, sig)
    }

    #[test]
    fn page_hashes_are_recomputed_and_then_stable() {
        let code: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let (mut file, sig) = signed(&code);
        let patches = resign_slice(&file, 0, sig).unwrap();
        assert_eq!(patches.len(), 3);
        for patch in &patches {
            let at = patch.offset as usize;
            file[at..at + patch.bytes.len()].copy_from_slice(&patch.bytes);
        }
        assert!(resign_slice(&file, 0, sig).unwrap().is_empty());
        // Only code slots change: header, identifier and special slots are kept.
        let slots_at = sig.0 as usize + 20 + 88 + 2 + 64;
        assert!(patches.iter().all(|p| p.offset as usize >= slots_at));
        assert!(file[slots_at - 64..slots_at].iter().all(|&b| b == 0xab));
        file[5000] ^= 1;
        let again = resign_slice(&file, 100, sig).unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(
            again[0].bytes,
            sha2::Sha256::digest(&file[4096..8192]).to_vec()
        );
    }

    #[test]
    fn hostile_signatures_are_errors() {
        let code = vec![7u8; 5000];
        let (file, sig) = signed(&code);
        assert!(resign_slice(&file, 0, (sig.0, sig.1 + 1)).is_err());
        assert!(resign_slice(&file, 0, (u32::MAX, 8)).is_err());
        for at in 0..(sig.1 as usize) {
            for value in [0u8, 0xff, 0x7f] {
                let mut bad = file.clone();
                bad[sig.0 as usize + at] = value;
                let _ = resign_slice(&bad, 0, sig);
            }
        }
    }
}
