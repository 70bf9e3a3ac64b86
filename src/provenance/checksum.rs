//! `BUNDLE.sha256`: the bundle's sha256 in the format `sha256sum` writes and `sha256sum -c`
//! reads, so the host that receives a bundle can check it with coreutils alone.
//! [`write_sidecar`] writes it after `gopack create`; [`verify_sidecar`] is what `gopack
//! unpack` runs first.
//!
//! # Format
//! One line, `HEX  NAME`, where `NAME` is the bundle's file name (no directory, so the check
//! runs wherever the two files are copied together). As GNU coreutils does, a name holding a
//! backslash, a newline or a carriage return is written escaped (`\\`, `\n`, `\r`) and the line
//! then starts with a backslash. When reading, `HEX *NAME` (binary mode) is accepted too; the
//! line naming the bundle is used, or the only line when a single one names another file (a
//! bundle renamed after it was made).

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::Error as ProvenanceError;
use crate::error::{Error, Result, escape_bytes};

/// Where the checksum file of `bundle` is: `BUNDLE.sha256`, beside it.
pub fn sidecar_path(bundle: &Path) -> PathBuf {
    let mut name = bundle.as_os_str().to_os_string();
    name.push(".sha256");
    PathBuf::from(name)
}

/// The sha256 of a file, read in 1 MiB blocks.
///
/// # Errors
/// I/O errors naming the file.
pub fn sha256_file(path: &Path) -> Result<[u8; 32]> {
    let fail = |source| Error::io(format!("cannot read `{}`", path.display()), source);
    let mut file = crate::error::open_file(path).map_err(fail)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(fail(err)),
        };
        hasher.update(&buffer[..read]);
    }
    Ok(hasher.finalize().into())
}

/// The `sha256sum` line for a file named `name` with digest `hex`.
pub fn render_line(hex: &str, name: &[u8]) -> Vec<u8> {
    let escaped = name.iter().any(|c| matches!(c, b'\\' | b'\n' | b'\r'));
    let mut line = Vec::with_capacity(hex.len() + name.len() + 4);
    if escaped {
        line.push(b'\\');
    }
    line.extend_from_slice(hex.as_bytes());
    line.extend_from_slice(b"  ");
    for &byte in name {
        match byte {
            b'\\' if escaped => line.extend_from_slice(b"\\\\"),
            b'\n' => line.extend_from_slice(b"\\n"),
            b'\r' => line.extend_from_slice(b"\\r"),
            _ => line.push(byte),
        }
    }
    line.push(b'\n');
    line
}

/// Parses `sha256sum` output: `(lowercase hex, file name)` per line.
///
/// # Errors
/// A sentence naming the first line that is not a sha256 line.
pub fn parse(text: &[u8]) -> std::result::Result<Vec<(String, Vec<u8>)>, String> {
    let mut lines = Vec::new();
    for (number, line) in text.split(|&c| c == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let bad = || {
            format!(
                "line {} is not `SHA256  NAME` (sha256sum format)",
                number + 1
            )
        };
        let (escaped, line) = match line.strip_prefix(b"\\") {
            Some(rest) => (true, rest),
            None => (false, line),
        };
        if line.len() < 66 || !line[..64].iter().all(u8::is_ascii_hexdigit) {
            return Err(bad());
        }
        if line[64] != b' ' || !matches!(line[65], b' ' | b'*') {
            return Err(bad());
        }
        let hex = String::from_utf8_lossy(&line[..64]).to_ascii_lowercase();
        let raw = &line[66..];
        let name = if escaped {
            let mut name = Vec::with_capacity(raw.len());
            let mut bytes = raw.iter();
            while let Some(&byte) = bytes.next() {
                if byte != b'\\' {
                    name.push(byte);
                    continue;
                }
                match bytes.next() {
                    Some(b'\\') => name.push(b'\\'),
                    Some(b'n') => name.push(b'\n'),
                    Some(b'r') => name.push(b'\r'),
                    _ => return Err(bad()),
                }
            }
            name
        } else {
            raw.to_vec()
        };
        lines.push((hex, name));
    }
    if lines.is_empty() {
        return Err("it holds no checksum".into());
    }
    Ok(lines)
}

fn file_name(bundle: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    bundle
        .file_name()
        .map_or_else(Vec::new, |name| name.as_bytes().to_vec())
}

/// Writes `BUNDLE.sha256` for `bundle` (atomically); returns the hex digest.
///
/// # Errors
/// I/O errors naming the file.
pub fn write_sidecar(bundle: &Path) -> Result<String> {
    let hex = hex::encode(sha256_file(bundle)?);
    super::write_atomic(
        &sidecar_path(bundle),
        &render_line(&hex, &file_name(bundle)),
    )?;
    Ok(hex)
}

/// Removes `BUNDLE.sha256` if it exists: after `gopack create --no-checksum` overwrote the
/// bundle, an older checksum file would only make `gopack unpack` refuse the new bundle.
///
/// # Errors
/// I/O errors other than the file not existing.
pub fn remove_stale_sidecar(bundle: &Path) -> Result<()> {
    let sidecar = sidecar_path(bundle);
    match fs_err::remove_file(&sidecar) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(Error::io(
            format!("cannot remove the stale `{}`", sidecar.display()),
            err,
        )),
        _ => Ok(()),
    }
}

/// Checks `bundle` against `BUNDLE.sha256` when that file exists. Returns the verified hex
/// digest, or `None` when there is no checksum file.
///
/// # Errors
/// [`ProvenanceError::ChecksumMismatch`], [`ProvenanceError::BadChecksumFile`], I/O errors.
pub fn verify_sidecar(bundle: &Path) -> Result<Option<String>> {
    let sidecar = sidecar_path(bundle);
    let text = match fs_err::read(&sidecar) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => {
            return Err(Error::io(
                format!("cannot read `{}`", sidecar.display()),
                err,
            ));
        }
    };
    let bad = |reason: String| {
        Error::from(ProvenanceError::BadChecksumFile {
            path: sidecar.clone(),
            reason,
        })
    };
    let lines = parse(&text).map_err(bad)?;
    let name = file_name(bundle);
    let expected = match lines.iter().find(|(_, listed)| *listed == name) {
        Some((hex, _)) => hex.clone(),
        None if lines.len() == 1 => lines[0].0.clone(),
        None => {
            return Err(bad(format!("no line names `{}`", escape_bytes(&name))));
        }
    };
    let actual = hex::encode(sha256_file(bundle)?);
    if actual != expected {
        return Err(ProvenanceError::ChecksumMismatch {
            bundle: bundle.to_path_buf(),
            sidecar,
            expected,
            actual,
        }
        .into());
    }
    Ok(Some(actual))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn lines_are_what_sha256sum_writes() {
        assert_eq!(
            render_line(HEX, b"b.tar.zst"),
            format!("{HEX}  b.tar.zst\n").into_bytes()
        );
        // GNU coreutils escapes these names and marks the line with a leading backslash.
        assert_eq!(
            render_line(HEX, b"a\\b\nc"),
            format!("\\{HEX}  a\\\\b\\nc\n").into_bytes()
        );
    }

    #[test]
    fn parse_reads_back_every_form() {
        for name in [&b"b.tar.zst"[..], b"we ird\\na\nme", b"x\ry"] {
            let parsed = parse(&render_line(HEX, name)).unwrap();
            assert_eq!(parsed, vec![(HEX.to_string(), name.to_vec())]);
        }
        let upper = format!("{} *b.tar\n", HEX.to_uppercase());
        assert_eq!(
            parse(upper.as_bytes()).unwrap(),
            vec![(HEX.to_string(), b"b.tar".to_vec())]
        );
        for bad in [&b""[..], b"abc  x\n", b"\\zz", HEX.as_bytes()] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
