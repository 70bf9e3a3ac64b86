//! Mach-O relocation: load-command paths into the prefix (`LC_RPATH`, `LC_ID_DYLIB`,
//! `LC_LOAD_DYLIB` and the other dylib commands) become `@loader_path`-relative at pack time
//! where they fit in their load command, as ELF search paths become `$ORIGIN`-relative; and
//! every Mach-O file whose bytes change is ad-hoc re-signed ([`super::codesign`]). Universal
//! (fat) files are handled slice by slice: load commands are parsed per slice, and every offset
//! here is a file offset. Parsing is goblin's (fat header, load commands). A file that cannot
//! be parsed, or whose signature [`super::codesign`] cannot re-sign, keeps its load commands at
//! pack time; its C-string slots are still rewritten on the target, without a re-sign (its
//! signature, if any, is then invalid, as it was before gopack handled Mach-O).
//!
//! Re-signing needs the whole relocated bytes of the file (the page hashes cover everything
//! before the signature), so a Mach-O file is held in memory while it is re-signed, at pack
//! time, by `gopack unpack` and by `--dest-prefix`. Mach-O binaries are at most some hundreds of
//! MiB; text and other binaries are still streamed.

// Offsets and sizes here come from files: arithmetic on them is checked.
#![deny(clippy::arithmetic_side_effects)]

use std::os::unix::fs::FileExt;

use goblin::mach::load_command::CommandVariant;

use super::{ByteString, Edit, Fix, Patch};

/// Which load command a path is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadPathKind {
    /// `LC_RPATH`.
    Rpath,
    /// `LC_ID_DYLIB`: the library's own install name.
    Id,
    /// `LC_LOAD_DYLIB`, `LC_LOAD_WEAK_DYLIB`, `LC_REEXPORT_DYLIB`, `LC_LAZY_LOAD_DYLIB`,
    /// `LC_LOAD_UPWARD_DYLIB`.
    Load,
}

/// A path in a load command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadPath {
    /// Which command.
    pub kind: LoadPathKind,
    /// File offset of the string.
    pub offset: u64,
    /// Bytes from the string's start to the end of its load command (the string, its NUL and
    /// the padding).
    pub room: u64,
    /// The path.
    pub value: Vec<u8>,
}

/// A slice of a (possibly universal) Mach-O file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slice {
    /// File offset.
    pub offset: u64,
    /// Length.
    pub size: u64,
}

fn malformed(reason: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("malformed Mach-O file: {reason}"),
    )
}

/// The slices of `data`: the whole file, or each architecture of a universal file.
///
/// # Errors
/// A header goblin cannot parse, or a slice outside the file.
pub fn slices(data: &[u8]) -> std::io::Result<Vec<Slice>> {
    // Not `goblin::mach::Mach::parse`: it parses symbols and segments too, with unchecked
    // arithmetic that panics (in debug builds) on hostile headers. Only the fat header (goblin),
    // the Mach-O header's command count and size, and the load commands (goblin) are read.
    if goblin::mach::peek(data, 0).map_err(malformed)? == goblin::mach::fat::FAT_MAGIC {
        let multi = goblin::mach::MultiArch::new(data).map_err(malformed)?;
        let mut out = Vec::new();
        for arch in multi.iter_arches() {
            let arch = arch.map_err(malformed)?;
            let (offset, size) = (u64::from(arch.offset), u64::from(arch.size));
            if offset
                .checked_add(size)
                .is_none_or(|end| end > data.len() as u64)
            {
                return Err(malformed("an architecture lies outside the file"));
            }
            out.push(Slice { offset, size });
        }
        return Ok(out);
    }
    Ok(vec![Slice {
        offset: 0,
        size: data.len() as u64,
    }])
}

fn slice_of(data: &[u8], slice: Slice) -> std::io::Result<&[u8]> {
    let end = slice.offset.checked_add(slice.size);
    usize::try_from(slice.offset)
        .ok()
        .zip(end.and_then(|end| usize::try_from(end).ok()))
        .and_then(|(start, end)| data.get(start..end))
        .ok_or_else(|| malformed("an architecture lies outside the file"))
}

/// `LC_CODE_SIGNATURE`: offset and size of the signature, relative to its slice.
type SignatureRange = (u32, u32);

/// What goblin says about one slice: its load-command paths and its signature
/// (`LC_CODE_SIGNATURE` offset and size, relative to the slice).
fn parse_slice(
    data: &[u8],
    slice: Slice,
) -> std::io::Result<(Vec<LoadPath>, Option<SignatureRange>)> {
    let bytes = slice_of(data, slice)?;
    let (_, ctx) = goblin::mach::parse_magic_and_ctx(bytes, 0).map_err(malformed)?;
    let ctx = ctx.ok_or_else(|| malformed("no Mach-O magic"))?;
    let header_size = if ctx.container.is_big() { 32 } else { 28 };
    let word = |at: usize| -> std::io::Result<u32> {
        let raw: [u8; 4] = bytes
            .get(at..at.saturating_add(4))
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| malformed("truncated header"))?;
        Ok(if ctx.le.is_little() {
            u32::from_le_bytes(raw)
        } else {
            u32::from_be_bytes(raw)
        })
    };
    let (ncmds, sizeofcmds) = (word(16)? as usize, word(20)? as usize);
    let commands = bytes
        .get(..sizeofcmds.saturating_add(header_size))
        .ok_or_else(|| malformed("load commands beyond the file"))?;
    if ncmds > sizeofcmds / 8 {
        return Err(malformed("too many load commands"));
    }
    let mut offset = header_size;
    let mut load_commands = Vec::with_capacity(ncmds);
    for _ in 0..ncmds {
        let command = goblin::mach::load_command::LoadCommand::parse(commands, &mut offset, ctx.le)
            .map_err(malformed)?;
        if command
            .offset
            .checked_add(8)
            .is_none_or(|least| offset < least)
            || offset > commands.len()
        {
            return Err(malformed("a load command size is out of range"));
        }
        load_commands.push(command);
    }
    let mut paths = Vec::new();
    let mut signature = None;
    for command in &load_commands {
        let (kind, size, string) = match &command.command {
            CommandVariant::Rpath(rpath) => (LoadPathKind::Rpath, rpath.cmdsize, rpath.path),
            CommandVariant::IdDylib(dylib) => (LoadPathKind::Id, dylib.cmdsize, dylib.dylib.name),
            CommandVariant::LoadDylib(dylib)
            | CommandVariant::LoadWeakDylib(dylib)
            | CommandVariant::ReexportDylib(dylib)
            | CommandVariant::LazyLoadDylib(dylib)
            | CommandVariant::LoadUpwardDylib(dylib) => {
                (LoadPathKind::Load, dylib.cmdsize, dylib.dylib.name)
            }
            CommandVariant::CodeSignature(sig) => {
                signature = Some((sig.dataoff, sig.datasize));
                continue;
            }
            _ => continue,
        };
        // A command's offset is inside `commands`; its string offset and size are u32s.
        let outside = || malformed("a load command string lies outside its command");
        let start = command
            .offset
            .checked_add(string as usize)
            .ok_or_else(outside)?;
        let end = command
            .offset
            .checked_add(size as usize)
            .ok_or_else(outside)?;
        if string >= size || end > commands.len() {
            return Err(outside());
        }
        let field = &bytes[start..end];
        let Some(len) = memchr::memchr(0, field) else {
            return Err(malformed("a load command string has no NUL"));
        };
        paths.push(LoadPath {
            kind,
            offset: slice.offset.saturating_add(start as u64),
            room: (end as u64).saturating_sub(start as u64),
            value: field[..len].to_vec(),
        });
    }
    Ok((paths, signature))
}

/// Every load-command path of every slice of `data`.
///
/// # Errors
/// A file goblin cannot parse, or a path outside its command.
pub fn load_paths(data: &[u8]) -> std::io::Result<Vec<LoadPath>> {
    let mut out = Vec::new();
    for slice in slices(data)? {
        out.extend(parse_slice(data, slice)?.0);
    }
    Ok(out)
}

/// `@loader_path/<relative>` for a `path` inside `prefix` seen from `dir` (the directory of the
/// file, relative to the prefix); `None` for a path outside the prefix.
pub fn loader_relative(path: &[u8], prefix: &[u8], dir: &[u8]) -> Option<Vec<u8>> {
    let inside = if path == prefix {
        &b""[..]
    } else {
        path.strip_prefix(prefix)?.strip_prefix(b"/")?
    };
    let relative = crate::paths::relative_path(dir, inside);
    let mut out = b"@loader_path".to_vec();
    if relative != b"." {
        out.push(b'/');
        out.extend_from_slice(&relative);
    }
    Some(out)
}

/// What pack time does to a Mach-O file's load commands.
#[derive(Debug, Default)]
pub struct LoadCommandPlan {
    /// Same-length patches (paths made `@loader_path`-relative, NUL-padded).
    pub patches: Vec<Patch>,
    /// The fixes, for the manifest.
    pub fixes: Vec<Fix>,
    /// File ranges now free of the prefix.
    pub covered: Vec<(u64, u64)>,
}

/// Rewrites every load-command path into `prefix` that fits as `@loader_path/…`; `path` is the
/// file's path relative to the prefix. Paths that do not fit are left for the C-string records.
///
/// # Errors
/// A file goblin cannot parse.
pub fn plan_load_commands(
    data: &[u8],
    prefix: &[u8],
    path: &[u8],
) -> std::io::Result<LoadCommandPlan> {
    let mut plan = LoadCommandPlan::default();
    let dir = crate::paths::dir_of(path);
    for load in load_paths(data)? {
        let Some(new) = loader_relative(&load.value, prefix, dir) else {
            continue;
        };
        if new.len() as u64 >= load.room {
            continue; // no room for it and its NUL
        }
        let mut bytes = new.clone();
        bytes.resize(load.value.len().max(new.len()).saturating_add(1), 0);
        plan.covered.push((
            load.offset,
            load.offset.saturating_add(load.value.len() as u64),
        ));
        plan.patches.push(Patch {
            offset: load.offset,
            bytes,
        });
        let value = ByteString(new);
        let path = ByteString(path.to_vec());
        let fix = match load.kind {
            LoadPathKind::Rpath => Fix::RelativeSearchPath { path, value },
            LoadPathKind::Id | LoadPathKind::Load => Fix::RelativeInstallName { path, value },
        };
        // The slices of a universal file usually hold the same paths: one fix each.
        if !plan.fixes.contains(&fix) {
            plan.fixes.push(fix);
        }
    }
    Ok(plan)
}

/// Applies same-length `patches` to `data` (later patches win; parts outside are dropped).
pub fn apply_patches(data: &mut [u8], patches: &[Patch]) {
    for patch in patches {
        let Ok(start) = usize::try_from(patch.offset) else {
            continue;
        };
        let Some(target) = data.get_mut(start..) else {
            continue;
        };
        let len = patch.bytes.len().min(target.len());
        target[..len].copy_from_slice(&patch.bytes[..len]);
    }
}

/// The patches that re-sign every signed slice of `data` (the bytes after every other edit).
/// Unsigned slices get none; so does a file goblin cannot parse, or a signature
/// [`super::codesign`] cannot handle (the reason is returned beside).
pub fn signature_patches(data: &[u8]) -> (Vec<Patch>, Option<String>) {
    let slices = match slices(data) {
        Ok(slices) => slices,
        Err(err) => return (Vec::new(), Some(err.to_string())),
    };
    let mut patches = Vec::new();
    for slice in slices {
        let signature = match parse_slice(data, slice) {
            Ok((_, signature)) => signature,
            Err(err) => return (Vec::new(), Some(err.to_string())),
        };
        let Some(signature) = signature else {
            continue;
        };
        let bytes = match slice_of(data, slice) {
            Ok(bytes) => bytes,
            Err(err) => return (Vec::new(), Some(err.to_string())),
        };
        match super::codesign::resign_slice(bytes, slice.offset, signature) {
            Ok(new) => patches.extend(new),
            Err(err) => return (Vec::new(), Some(err.to_string())),
        }
    }
    (patches, None)
}

/// `edit` of a Mach-O `file` (of `size` bytes) with the patches that re-sign its result
/// appended. The edited file is read whole into memory. An edit that changes nothing is kept.
///
/// # Errors
/// I/O errors reading `file`.
pub fn signed_edit(file: &std::fs::File, size: u64, edit: Edit) -> std::io::Result<Edit> {
    match edit {
        Edit::Patch(mut patches) => {
            let mut data = vec![0u8; usize::try_from(size).map_err(std::io::Error::other)?];
            file.read_exact_at(&mut data, 0)?;
            apply_patches(&mut data, &patches);
            patches.extend(signature_patches(&data).0);
            Ok(Edit::Patch(patches))
        }
        Edit::Replace(mut data) => {
            let (patches, _) = signature_patches(&data);
            apply_patches(&mut data, &patches);
            Ok(Edit::Replace(data))
        }
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loader_relative_paths() {
        assert_eq!(
            loader_relative(b"/env/lib", b"/env", b"bin").unwrap(),
            b"@loader_path/../lib"
        );
        assert_eq!(
            loader_relative(b"/env/lib/libx.dylib", b"/env", b"lib").unwrap(),
            b"@loader_path/libx.dylib"
        );
        assert_eq!(
            loader_relative(b"/env/lib", b"/env", b"lib").unwrap(),
            b"@loader_path"
        );
        assert!(loader_relative(b"/env2/lib", b"/env", b"lib").is_none());
        assert!(loader_relative(b"@rpath/libx.dylib", b"/env", b"lib").is_none());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut data = vec![0xcf, 0xfa, 0xed, 0xfe, 0x0c, 0, 0, 0x01];
        data.resize(64, 0xff);
        let _ = load_paths(&data);
        let _ = signature_patches(&data);
        let fat = [
            0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0, 3, 0xff, 0xff, 0, 0,
        ];
        assert!(slices(&fat).is_err());
        assert!(signature_patches(&fat).1.is_some());
    }
}
