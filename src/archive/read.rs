//! Reading bundles: the compression is recognised by its magic bytes, and the manifest is the
//! first member, so [`read_manifest`] decompresses only the start of the bundle.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use crate::error::{Error, Result};
use crate::manifest::{MANIFEST_PATH, Manifest};

/// Opens `path` as a decompressed tar stream.
///
/// # Errors
/// [`Error::BadBundle`] when it cannot be opened or its compression is not recognised.
pub fn open_tar(path: &Path) -> Result<Box<dyn Read>> {
    let bad = |message: String| Error::BadBundle {
        path: path.to_path_buf(),
        message,
    };
    let file = File::open(path).map_err(|err| bad(format!("cannot open it: {err}")))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut magic = [0u8; 4];
    let peeked = {
        use std::io::BufRead;
        let buf = reader
            .fill_buf()
            .map_err(|err| bad(format!("cannot read it: {err}")))?;
        let n = buf.len().min(4);
        magic[..n].copy_from_slice(&buf[..n]);
        n
    };
    if peeked >= 4 && magic == [0x28, 0xb5, 0x2f, 0xfd] {
        let decoder =
            zstd::Decoder::with_buffer(reader).map_err(|err| bad(format!("zstd: {err}")))?;
        Ok(Box::new(decoder))
    } else if peeked >= 2 && magic[..2] == [0x1f, 0x8b] {
        Ok(Box::new(flate2::read::GzDecoder::new(reader)))
    } else {
        Ok(Box::new(reader))
    }
}

/// Reads the manifest from the start of a bundle without extracting anything.
///
/// # Errors
/// [`Error::BadBundle`] when the first member is not a readable gopack manifest.
pub fn read_manifest(path: &Path) -> Result<Manifest> {
    let bad = |message: String| Error::BadBundle {
        path: path.to_path_buf(),
        message,
    };
    let mut archive = tar::Archive::new(open_tar(path)?);
    let entries = archive
        .entries()
        .map_err(|err| bad(format!("not a tar archive: {err}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|err| bad(format!("corrupt archive: {err}")))?;
        let name = entry.path_bytes().into_owned();
        if name.ends_with(MANIFEST_PATH.as_bytes()) {
            let mut text = Vec::new();
            entry
                .read_to_end(&mut text)
                .map_err(|err| bad(format!("corrupt archive: {err}")))?;
            return Manifest::from_json(&text).map_err(bad);
        }
        if entry.header().entry_type().is_file() {
            break; // the manifest comes first; a bundle without it is not gopack's
        }
    }
    Err(bad(format!(
        "no `{MANIFEST_PATH}` at its start: it was not written by gopack"
    )))
}
