//! The image's own layers: [`split`] sorts the plan's entries into the environment, Go and
//! metadata layers; [`Layer::write`] streams one as a deterministic tar (the bundle's headers,
//! through [`TarStream`]) under the destination prefix, compressing it while both of its
//! digests are taken: the compressed blob's (the manifest lists it) and the tar's (the
//! config's `diff_ids`), in one pass.

use std::collections::HashSet;
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::AtomicBool;

use sha2::{Digest, Sha256};

use super::output::Blob;
use super::{Error, ImageOptions, media};
use crate::archive::TarStream;
use crate::archive::gzip::ParallelGzip;
use crate::conda::CondaEnv;
use crate::error::escape_bytes;
use crate::go::Origin;
use crate::plan::{Plan, PlannedEntry};
use crate::progress::Reporter;
use crate::scan::{EntryKind, archive_order};
use crate::stream::Hashed;

/// How layers are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerCompression {
    /// gzip (the default: every runtime loads it).
    Gzip,
    /// zstd (Docker ≥ 23, containerd ≥ 1.5, podman).
    Zstd,
    /// Plain tar.
    None,
}

impl LayerCompression {
    /// The OCI media type of a layer compressed this way.
    pub fn media_type(self) -> &'static str {
        match self {
            LayerCompression::Gzip => media::OCI_LAYER_GZIP,
            LayerCompression::Zstd => media::OCI_LAYER_ZSTD,
            LayerCompression::None => media::OCI_LAYER,
        }
    }
}

/// What a layer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The conda environment.
    Environment,
    /// Go binaries that no conda package installed.
    Go,
    /// `.gopack/` and gopack's scripts.
    Metadata,
}

impl Role {
    /// The value of the layer's `io.gopack.layer` annotation.
    pub fn name(self) -> &'static str {
        match self {
            Role::Environment => "environment",
            Role::Go => "go",
            Role::Metadata => "metadata",
        }
    }

    /// The layer's history line.
    pub fn created_by(self, plan: &Plan, layer: &Layer<'_>) -> String {
        match self {
            Role::Environment => format!(
                "gopack: conda environment {} ({} conda, {} pip packages)",
                super::env_name(&plan.prefix),
                plan.packages.len(),
                plan.pip_packages.len()
            ),
            Role::Go => {
                let names: Vec<String> = layer
                    .entries
                    .iter()
                    .map(LayerEntry::get)
                    .filter(|p| p.entry.kind == EntryKind::File)
                    .map(|p| p.entry.display())
                    .collect();
                format!("gopack: Go binaries {}", names.join(", "))
            }
            Role::Metadata => "gopack: manifest, activation and unpack scripts".into(),
        }
    }
}

/// An entry of a layer: one of the plan's, or a parent directory the layer repeats.
pub enum LayerEntry<'p> {
    /// An entry of the plan.
    Planned(&'p PlannedEntry),
    /// A directory made for this layer.
    Made(Box<PlannedEntry>),
}

impl LayerEntry<'_> {
    /// The entry.
    pub fn get(&self) -> &PlannedEntry {
        match self {
            LayerEntry::Planned(planned) => planned,
            LayerEntry::Made(planned) => planned,
        }
    }
}

/// One of the image's own layers.
pub struct Layer<'p> {
    /// What it holds.
    pub role: Role,
    /// Its entries, parents first, relative to the prefix.
    pub entries: Vec<LayerEntry<'p>>,
}

/// What [`Layer::write`] needs besides the layer.
pub struct Context<'a> {
    /// The plan the entries come from.
    pub plan: &'a Plan,
    /// The prefix inside the image, without its leading `/`.
    pub arcroot: &'a [u8],
    /// Compression and times.
    pub image: &'a ImageOptions,
    /// Compression workers.
    pub threads: usize,
    /// Ctrl-C.
    pub cancel: &'a AtomicBool,
    /// Progress.
    pub reporter: &'a dyn Reporter,
    /// The image being written (for messages).
    pub output: &'a Path,
}

/// Sorts the plan's entries into the environment, Go and metadata layers, each with the
/// directories above its entries repeated, so every layer unpacks on its own.
///
/// A Go binary goes into the Go layer when gopack built it or no conda package lists it (a
/// toolchain from conda-forge stays with its package in the environment layer: redeploying a
/// service then does not ship the toolchain again), and it is not the first name of a hard
/// link (a tar hard link cannot point into another layer).
///
/// # Errors
/// [`Error::BadEntry`] for names a runtime reads as whiteouts (`.wh.*`, OCI `layer.md`).
pub fn split(plan: &Plan) -> crate::Result<Vec<Layer<'_>>> {
    for planned in &plan.entries {
        let name = planned
            .entry
            .path
            .rsplit(|&c| c == b'/')
            .next()
            .unwrap_or_default();
        if name.starts_with(b".wh.") {
            return Err(Error::BadEntry {
                path: escape_bytes(&planned.entry.path),
                reason: "names starting with `.wh.` are whiteouts in image layers (they delete files of lower layers)".into(),
            }
            .into());
        }
    }
    let managed = if plan
        .go_binaries
        .iter()
        .any(|b| b.origin == Origin::Collected)
    {
        CondaEnv::open(&plan.prefix)?.managed
    } else {
        Default::default()
    };
    let link_targets: HashSet<&[u8]> = plan
        .entries
        .iter()
        .filter_map(|p| match &p.entry.kind {
            EntryKind::HardLink { target } => Some(target.as_slice()),
            _ => None,
        })
        .collect();
    let go: HashSet<&[u8]> = plan
        .go_binaries
        .iter()
        .filter(|binary| {
            binary.origin == Origin::Built
                || !managed.contains_key(String::from_utf8_lossy(&binary.path.0).as_ref())
        })
        .map(|binary| binary.path.0.as_slice())
        .filter(|path| !link_targets.contains(path))
        .collect();
    let metadata = |path: &[u8]| {
        path == b".gopack"
            || path.starts_with(b".gopack/")
            || crate::manifest::GENERATED_PATHS.contains(&path)
    };
    let mut groups: [Vec<&PlannedEntry>; 3] = Default::default();
    for planned in &plan.entries {
        let path = planned.entry.path.as_slice();
        let index = if metadata(path) {
            2
        } else if planned.entry.kind == EntryKind::File && go.contains(path) {
            1
        } else {
            0
        };
        groups[index].push(planned);
    }
    let dir_mtime = gopack_dir_mtime(plan);
    let roles = [Role::Environment, Role::Go, Role::Metadata];
    Ok(roles
        .into_iter()
        .zip(groups)
        .map(|(role, entries)| Layer {
            role,
            entries: with_parents(plan, entries, dir_mtime),
        })
        .collect())
}

/// The entries with every directory above them that they do not hold themselves: the plan's
/// entry for it, or a 0755 directory.
fn with_parents<'p>(
    plan: &'p Plan,
    entries: Vec<&'p PlannedEntry>,
    dir_mtime: u64,
) -> Vec<LayerEntry<'p>> {
    let present: HashSet<&[u8]> = entries.iter().map(|p| p.entry.path.as_slice()).collect();
    let mut missing: HashSet<&[u8]> = HashSet::new();
    for planned in &entries {
        let mut path = planned.entry.path.as_slice();
        while let Some(slash) = path.iter().rposition(|&c| c == b'/') {
            path = &path[..slash];
            if !present.contains(path) {
                missing.insert(path);
            }
        }
    }
    let mut out: Vec<LayerEntry<'p>> = entries.into_iter().map(LayerEntry::Planned).collect();
    for path in missing {
        match plan
            .entries
            .iter()
            .find(|p| p.entry.path == path && p.entry.kind == EntryKind::Dir)
        {
            Some(planned) => out.push(LayerEntry::Planned(planned)),
            None => out.push(LayerEntry::Made(Box::new(directory(path, dir_mtime)))),
        }
    }
    out.sort_by(|a, b| archive_order(&a.get().entry.path, &b.get().entry.path));
    out
}

/// The mtime gopack gives its own entries (`.gopack/`'s), for the directories layers repeat.
fn gopack_dir_mtime(plan: &Plan) -> u64 {
    plan.entries
        .iter()
        .find(|p| p.entry.path == b".gopack")
        .map_or(0, |p| p.entry.mtime)
}

fn directory(path: &[u8], mtime: u64) -> PlannedEntry {
    PlannedEntry::directory(path, mtime)
}

impl Layer<'_> {
    /// Writes the layer, compressed, to `sink`: the directories of the prefix itself, then its
    /// entries under the prefix, then the end-of-archive marker.
    ///
    /// # Errors
    /// Write errors naming the image, and what reading the environment's files reports.
    pub fn write(&self, context: &Context<'_>, sink: &mut dyn Write) -> crate::Result<Blob> {
        let write_error = |source| {
            crate::Error::io(
                format!("cannot write `{}`", context.output.display()),
                source,
            )
        };
        let mut encoder = LayerEncoder::new(
            sink,
            context.image.compression,
            context.image.level,
            context.threads,
        )
        .map_err(write_error)?;
        let dir_mtime = gopack_dir_mtime(context.plan);
        let mut roots = Vec::new();
        let mut path = Vec::new();
        for part in context
            .arcroot
            .split(|&c| c == b'/')
            .filter(|p| !p.is_empty())
        {
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(part);
            roots.push(directory(&path, dir_mtime));
        }
        let outside = TarStream {
            prefix: &context.plan.prefix,
            arcroot: None,
            cancel: context.cancel,
            reporter: context.reporter,
        };
        outside.write_entries(&roots, &mut encoder, &write_error)?;
        let inside = TarStream {
            arcroot: Some(context.arcroot),
            ..outside
        };
        let counts = inside.write_entries(
            self.entries.iter().map(LayerEntry::get),
            &mut encoder,
            &write_error,
        )?;
        // Two zero blocks end a tar archive.
        encoder.write_all(&[0u8; 1024]).map_err(write_error)?;
        let (digest, diff_id, size) = encoder.finish().map_err(write_error)?;
        Ok(Blob {
            digest,
            diff_id,
            size,
            members: counts.members + roots.len() as u64,
            content_bytes: counts.content_bytes,
        })
    }
}

enum Compressor<W: Write> {
    Plain(W),
    Gzip(ParallelGzip<W>),
    Zstd(zstd::Encoder<'static, W>),
}

/// A layer's compressor, taking the digest of the tar going in and of the blob coming out.
pub struct LayerEncoder<W: Write> {
    tar: Sha256,
    compressor: Compressor<Hashed<W>>,
}

impl<W: Write> LayerEncoder<W> {
    /// A compressor writing into `sink`.
    pub fn new(
        sink: W,
        compression: LayerCompression,
        level: i32,
        threads: usize,
    ) -> io::Result<Self> {
        // Counts and hashes what passes through to the sink (the compressed blob).
        let hashed = Hashed::new(sink);
        let compressor = match compression {
            LayerCompression::None => Compressor::Plain(hashed),
            LayerCompression::Gzip => Compressor::Gzip(ParallelGzip::new(
                hashed,
                level.clamp(1, 9) as u32,
                threads,
            )?),
            LayerCompression::Zstd => {
                Compressor::Zstd(crate::archive::zstd_encoder(hashed, level, threads as u32)?)
            }
        };
        Ok(LayerEncoder {
            tar: Sha256::new(),
            compressor,
        })
    }

    /// Ends the stream; returns the blob's digest, the tar's digest (`diff_id`), both
    /// `sha256:…`, and the blob's size.
    pub fn finish(self) -> io::Result<(String, String, u64)> {
        let hashed = match self.compressor {
            Compressor::Plain(hashed) => hashed,
            Compressor::Gzip(encoder) => encoder.finish()?,
            Compressor::Zstd(encoder) => encoder.finish()?,
        };
        let (_, sha256, bytes) = hashed.finish();
        let digest = format!("sha256:{}", hex::encode(sha256));
        let diff_id = format!("sha256:{}", hex::encode(self.tar.finalize()));
        Ok((digest, diff_id, bytes))
    }
}

impl<W: Write> Write for LayerEncoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = match &mut self.compressor {
            Compressor::Plain(w) => w.write(buf)?,
            Compressor::Gzip(w) => w.write(buf)?,
            Compressor::Zstd(w) => w.write(buf)?,
        };
        self.tar.update(&buf[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.compressor {
            Compressor::Plain(w) => w.flush(),
            Compressor::Gzip(w) => w.flush(),
            Compressor::Zstd(w) => w.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn encode(compression: LayerCompression, input: &[u8]) -> (Vec<u8>, String, String, u64) {
        let mut out = Vec::new();
        let mut encoder = LayerEncoder::new(&mut out, compression, 3, 2).unwrap();
        encoder.write_all(input).unwrap();
        let (digest, diff_id, size) = encoder.finish().unwrap();
        (out, digest, diff_id, size)
    }

    #[test]
    fn digests_are_of_the_blob_and_of_the_tar() {
        let input = b"some tar bytes ".repeat(10_000);
        let tar_digest = super::super::digest_of(&input);
        for compression in [
            LayerCompression::None,
            LayerCompression::Gzip,
            LayerCompression::Zstd,
        ] {
            let (blob, digest, diff_id, size) = encode(compression, &input);
            assert_eq!(diff_id, tar_digest, "{compression:?}");
            assert_eq!(digest, super::super::digest_of(&blob), "{compression:?}");
            assert_eq!(size, blob.len() as u64);
            let mut decoded = Vec::new();
            match compression {
                LayerCompression::None => decoded = blob.clone(),
                LayerCompression::Gzip => {
                    flate2::read::GzDecoder::new(&blob[..])
                        .read_to_end(&mut decoded)
                        .unwrap();
                }
                LayerCompression::Zstd => {
                    zstd::stream::read::Decoder::new(&blob[..])
                        .unwrap()
                        .read_to_end(&mut decoded)
                        .unwrap();
                }
            }
            assert_eq!(decoded, input);
        }
        assert_eq!(
            encode(LayerCompression::None, &input).2,
            encode(LayerCompression::None, &input).1
        );
    }
}
