//! Self-extracting installers (`gopack create -o app.sh --format sh`): one file made of a POSIX
//! sh header ([`HEADER`]) followed by the raw bundle (gzip by default, written in parallel by
//! [`crate::archive::gzip`]; zstd with `--payload zstd`). `sh app.sh -d DEST` checks the file's
//! size and the payload's sha256, streams the payload into `tar -x` in a staging directory,
//! renames it into place and relocates it with the bundle's `bin/gopack-unpack`.
//!
//! The header's third line holds the payload's offset, padded to a fixed width so that the
//! header's length does not depend on it; [`crate::archive::read::installer_payload_offset`] reads it back, so `gopack inspect`
//! and `gopack unpack` read installers too.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::archive::{self, Format, WriteOptions, Written};
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::progress::Reporter;
use crate::scan::Error as ScanError;

/// The header template; `@NAME@` placeholders are filled by [`render_header`].
pub const HEADER: &str = include_str!("header.sh");

/// Width of the offset and size fields (a u64 has at most 20 digits).
const WIDTH: usize = 20;

/// What goes into an installer's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderFields {
    /// Payload size in bytes.
    pub size: u64,
    /// Payload sha256, lowercase hex.
    pub sha256: String,
    /// `gzip` or `zstd`.
    pub payload: &'static str,
    /// The directory inside the archive that holds the environment (`--arcroot`), or empty.
    pub root: String,
    /// The default install directory's name (`./NAME`).
    pub name: String,
}

/// The header for `fields`, with the offset filled in: its own length.
pub fn render_header(fields: &HeaderFields) -> String {
    let fill = |offset: u64| {
        HEADER
            .replace("@OFFSET@", &format!("{offset:<WIDTH$}"))
            .replace("@SIZE@", &format!("{:<WIDTH$}", fields.size))
            .replace("@SHA256@", &format!("{:<64}", fields.sha256))
            .replace("@PAYLOAD@", fields.payload)
            .replace("@ROOT@", &sh_quote(&fields.root))
            .replace("@NAME@", &sh_quote(&fields.name))
            .replace("@VERSION@", env!("CARGO_PKG_VERSION"))
    };
    // The offset field has a fixed width, so the length does not depend on the offset.
    let length = fill(0).len() as u64;
    fill(length)
}

/// Quotes `text` for sh: `'...'`, with each `'` written as `'\''`.
fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// The default install directory's name: the output's file name without `.sh`.
fn default_name(output: &Path) -> String {
    let name = output
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(".sh").unwrap_or(&name);
    let clean: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._+-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    match clean.trim_start_matches('.') {
        "" => "gopack-env".to_string(),
        name => name.to_string(),
    }
}

/// Writes the installer for `plan` at `output`: the bundle is written first into a staging
/// directory beside the output, then the header and the bundle into a temporary file there,
/// renamed into place only when complete. Nothing is left behind on error or cancellation.
///
/// # Errors
/// Everything [`archive::write_bundle`] reports; I/O errors naming the file.
pub fn write_installer(
    plan: &Plan,
    output: &Path,
    options: &WriteOptions,
    cancel: &AtomicBool,
    reporter: &dyn Reporter,
) -> Result<Written> {
    archive::check_output(output, options.force)?;
    let (format, payload) = match options.format {
        Format::ShZstd => (Format::TarZst, "zstd"),
        _ => (Format::TarGz, "gzip"),
    };
    let dir = match output.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let in_dir = |what: &str, source| {
        Error::io(
            format!("cannot create {what} in `{}`", dir.display()),
            source,
        )
    };
    let staging = tempfile::Builder::new()
        .prefix(".gopack-partial-")
        .tempdir_in(&dir)
        .map_err(|source| in_dir("a staging directory", source))?;
    let payload_path = staging.path().join("payload");
    let inner = WriteOptions {
        format,
        force: false,
        ..options.clone()
    };
    let bundle = archive::write_bundle(plan, &payload_path, &inner, cancel, reporter)?;

    let unreadable = |source| ScanError::Unreadable {
        path: payload_path.clone(),
        source,
    };
    let (sha256, _) =
        crate::stream::digest(crate::error::open_file(&payload_path).map_err(unreadable)?)
            .map_err(unreadable)?;
    if cancel.load(Ordering::Relaxed) {
        return Err(Error::Interrupted);
    }
    let root = options
        .arcroot
        .as_deref()
        .map(|root| String::from_utf8_lossy(root).into_owned())
        .unwrap_or_default();
    let header = render_header(&HeaderFields {
        size: bundle.size,
        sha256: hex::encode(sha256),
        payload,
        root,
        name: default_name(output),
    });

    let write_error = |source| Error::io(format!("cannot write `{}`", output.display()), source);
    let temp = tempfile::Builder::new()
        .prefix(".gopack-partial-")
        .tempfile_in(&dir)
        .map_err(|source| in_dir("a temporary file", source))?;
    let mut out = BufWriter::with_capacity(1 << 20, temp.as_file());
    out.write_all(header.as_bytes()).map_err(write_error)?;
    let mut reader = crate::error::open_file(&payload_path).map_err(unreadable)?;
    let copied = std::io::copy(&mut reader, &mut out).map_err(write_error)?;
    if copied != bundle.size {
        return Err(ScanError::ChangedDuringPack { path: payload_path }.into());
    }
    out.flush().map_err(write_error)?;
    drop(out);
    temp.as_file().sync_all().map_err(write_error)?;
    crate::archive::publish(temp, output, 0o755, options.force, cancel, &write_error)?;
    Ok(Written {
        path: output.to_path_buf(),
        size: header.len() as u64 + bundle.size,
        members: bundle.members,
        content_bytes: bundle.content_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::read::{INSTALLER_MAGIC, installer_payload_offset};

    fn fields(size: u64) -> HeaderFields {
        HeaderFields {
            size,
            sha256: "ab".repeat(32),
            payload: "gzip",
            root: "it's".into(),
            name: "app".into(),
        }
    }

    #[test]
    fn header_length_does_not_depend_on_the_numbers() {
        let small = render_header(&fields(1));
        let large = render_header(&fields(u64::MAX));
        assert_eq!(small.len(), large.len());
        assert_eq!(
            installer_payload_offset(small.as_bytes()),
            Some(small.len() as u64)
        );
        assert!(small.contains("gi_root='it'\\''s'\n"));
        assert!(small.ends_with("# The payload follows this line.\n"));
        assert!(!small.contains('@'), "a placeholder is left: {small}");
    }

    #[test]
    fn offset_is_read_only_from_installers() {
        assert_eq!(installer_payload_offset(b"#!/bin/sh\necho hi\n"), None);
        assert_eq!(installer_payload_offset(b"\x1f\x8b\x08"), None);
        let mut head = INSTALLER_MAGIC.to_vec();
        head.extend_from_slice(b"4321                \n");
        assert_eq!(installer_payload_offset(&head), Some(4321));
    }

    #[test]
    fn default_names() {
        assert_eq!(default_name(Path::new("out/app.sh")), "app");
        assert_eq!(default_name(Path::new("my env$.sh")), "my_env_");
        assert_eq!(default_name(Path::new(".sh")), "gopack-env");
    }
}
