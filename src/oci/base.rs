//! Base images saved on disk, named as skopeo names them: `oci-archive:PATH[:TAG]`,
//! `oci:DIR[:TAG]` and `docker-archive:PATH[:NAME:TAG|@INDEX]`. [`BaseImage::open`] reads the
//! index, manifest and config (each bounded in size and checked against its digest) and checks
//! the platform; [`BaseImage::copy_layer`] copies a layer blob as it is, checking its digest
//! while copying. The files are input from elsewhere: names are only looked up, never joined
//! into paths, except digests checked to be 64 hex digits.
//!
//! Formats followed: the OCI image layout (`index.json`, possibly nested indexes, image
//! manifests), Docker's schema 2 media types, and Docker's `manifest.json` archive, both the
//! legacy form (`<id>/layer.tar`) and Docker 25's, which points into `blobs/sha256/`.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::output::Blob;
use super::{Error, Platform, media};

/// The largest index or manifest read.
const MANIFEST_LIMIT: u64 = 4 << 20;
/// The largest config read.
const CONFIG_LIMIT: u64 = 16 << 20;
/// The most members a base archive may have.
const MEMBER_LIMIT: usize = 100_000;
/// Nested indexes followed at most.
const INDEX_DEPTH: usize = 4;

/// A base image on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseRef {
    /// `oci-archive:PATH[:TAG]`: a tar of an OCI layout.
    OciArchive {
        /// The tar.
        path: PathBuf,
        /// The tag (`org.opencontainers.image.ref.name`), needed when it holds several images.
        tag: Option<String>,
    },
    /// `oci:DIR[:TAG]`: an OCI layout directory.
    OciDir {
        /// The directory.
        path: PathBuf,
        /// The tag.
        tag: Option<String>,
    },
    /// `docker-archive:PATH[:NAME:TAG|@INDEX]`: what `docker save` writes.
    DockerArchive {
        /// The tar.
        path: PathBuf,
        /// One of its `RepoTags`, or `@N` for the N-th image, needed when it holds several.
        reference: Option<String>,
    },
}

impl BaseRef {
    /// Parses `TRANSPORT:PATH[:REFERENCE]`; as in skopeo, the path ends at the first `:`
    /// after the transport.
    ///
    /// # Errors
    /// [`crate::Error::Usage`] for other transports or an empty path.
    pub fn parse(text: &str) -> crate::Result<BaseRef> {
        let usage = |reason: &str| {
            crate::Error::Usage(format!(
                "--base `{text}`: {reason}; expected oci-archive:PATH[:TAG], oci:DIR[:TAG] or docker-archive:PATH[:NAME:TAG]"
            ))
        };
        let (transport, rest) = text.split_once(':').ok_or_else(|| usage("no transport"))?;
        let (path, reference) = match rest.split_once(':') {
            Some((path, reference)) => {
                (path, Some(reference.to_string()).filter(|r| !r.is_empty()))
            }
            None => (rest, None),
        };
        if path.is_empty() {
            return Err(usage("no path"));
        }
        let path = PathBuf::from(path);
        Ok(match transport {
            "oci-archive" => BaseRef::OciArchive {
                path,
                tag: reference,
            },
            "oci" => BaseRef::OciDir {
                path,
                tag: reference,
            },
            "docker-archive" => BaseRef::DockerArchive { path, reference },
            "docker" | "docker-daemon" | "containers-storage" => {
                return Err(usage(
                    "gopack reads saved images only (save one with `skopeo copy`, `docker save` or `podman save`)",
                ));
            }
            _ => return Err(usage("unknown transport")),
        })
    }

    /// The file or directory.
    pub fn path(&self) -> &Path {
        match self {
            BaseRef::OciArchive { path, .. }
            | BaseRef::OciDir { path, .. }
            | BaseRef::DockerArchive { path, .. } => path,
        }
    }
}

/// Where the base's files are.
#[derive(Debug)]
pub(crate) enum Source {
    /// A layout directory.
    Dir(PathBuf),
    /// A plain tar: member name → (offset of the content, size).
    Tar {
        path: PathBuf,
        members: HashMap<String, (u64, u64)>,
    },
}

impl Source {
    /// Indexes a plain tar (compressed ones are refused by name).
    pub(crate) fn open_tar(path: &Path) -> std::result::Result<Source, String> {
        let mut file =
            crate::error::open_file(path).map_err(|err| format!("cannot open it: {err}"))?;
        let mut head = [0u8; 4];
        let read = file
            .read(&mut head)
            .map_err(|err| format!("cannot read it: {err}"))?;
        match &head[..read] {
            [0x1f, 0x8b, ..] => {
                return Err("it is gzip-compressed; decompress it first (`gunzip`)".into());
            }
            [0x28, 0xb5, 0x2f, 0xfd] => {
                return Err("it is zstd-compressed; decompress it first (`zstd -d`)".into());
            }
            _ => {}
        }
        file.seek(SeekFrom::Start(0))
            .map_err(|err| err.to_string())?;
        let mut archive = tar::Archive::new(file);
        let mut members = HashMap::new();
        let entries = archive
            .entries_with_seek()
            .map_err(|err| format!("not a tar archive: {err}"))?;
        for entry in entries {
            let entry = entry.map_err(|err| format!("not a readable tar archive: {err}"))?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let Ok(name) = std::str::from_utf8(&entry.path_bytes()).map(normalize) else {
                continue;
            };
            members.insert(name, (entry.raw_file_position(), entry.size()));
            if members.len() > MEMBER_LIMIT {
                return Err(format!("it has more than {MEMBER_LIMIT} members"));
            }
        }
        Ok(Source::Tar {
            path: path.to_path_buf(),
            members,
        })
    }

    /// Whether `name` (`index.json`, `blobs/sha256/…`) is there.
    pub(crate) fn has(&self, name: &str) -> bool {
        match self {
            Source::Dir(dir) => safe_name(name) && dir.join(name).is_file(),
            Source::Tar { members, .. } => members.contains_key(name),
        }
    }

    /// A reader of `name` and its size.
    pub(crate) fn open(&self, name: &str) -> std::result::Result<(Box<dyn Read>, u64), String> {
        let missing = || format!("`{}` is missing", crate::error::escape_str(name));
        match self {
            Source::Dir(dir) => {
                if !safe_name(name) {
                    return Err(missing());
                }
                let file = crate::error::open_file(dir.join(name)).map_err(|_| missing())?;
                let size = file.metadata().map_err(|err| err.to_string())?.len();
                Ok((Box::new(file), size))
            }
            Source::Tar { path, members } => {
                let &(offset, size) = members.get(name).ok_or_else(missing)?;
                let mut file = crate::error::open_file(path).map_err(|err| err.to_string())?;
                file.seek(SeekFrom::Start(offset))
                    .map_err(|err| err.to_string())?;
                Ok((Box::new(file.take(size)), size))
            }
        }
    }

    /// The whole of a small member, refused above `limit` bytes, checked against `digest`
    /// when one is given.
    pub(crate) fn read_small(
        &self,
        name: &str,
        limit: u64,
        digest: Option<&str>,
    ) -> std::result::Result<Vec<u8>, String> {
        let (reader, size) = self.open(name)?;
        if size > limit {
            return Err(format!(
                "`{}` is {size} bytes; at most {limit} are read",
                crate::error::escape_str(name)
            ));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        reader
            .take(limit)
            .read_to_end(&mut bytes)
            .map_err(|err| err.to_string())?;
        if let Some(digest) = digest
            && super::digest_of(&bytes) != digest
        {
            return Err(format!(
                "`{}` does not match its digest {digest}",
                crate::error::escape_str(name)
            ));
        }
        Ok(bytes)
    }
}

/// A member name without `./` in front.
fn normalize(name: &str) -> String {
    let mut name = name;
    while let Some(rest) = name.strip_prefix("./") {
        name = rest;
    }
    name.trim_start_matches('/').to_string()
}

/// Names read from a layout directory: the ones gopack makes (`index.json`,
/// `blobs/sha256/<64 hex>`), nothing that could leave it.
fn safe_name(name: &str) -> bool {
    name == "index.json"
        || name == "manifest.json"
        || name
            .strip_prefix("blobs/sha256/")
            .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|c| c.is_ascii_hexdigit()))
}

/// Checks `sha256:<64 lowercase hex>`.
pub(crate) fn check_digest(digest: &str) -> std::result::Result<(), String> {
    match digest.strip_prefix("sha256:") {
        Some(hex)
            if hex.len() == 64 && hex.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) =>
        {
            Ok(())
        }
        _ => Err(format!(
            "digest `{}` is not sha256:<64 hex digits> (other algorithms are not supported)",
            crate::error::escape_str(digest)
        )),
    }
}

/// The member holding a blob.
pub(crate) fn blob_name(digest: &str) -> String {
    format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))
}

/// A descriptor's fields that matter here.
#[derive(Debug, Clone)]
pub(crate) struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    pub annotations: serde_json::Map<String, Value>,
    pub platform: Option<(String, String, Option<String>)>,
}

impl Descriptor {
    pub(crate) fn parse(value: &Value, what: &str) -> std::result::Result<Descriptor, String> {
        let text = |key: &str| value.get(key).and_then(Value::as_str);
        let digest = text("digest").ok_or_else(|| format!("{what}: no digest"))?;
        check_digest(digest).map_err(|reason| format!("{what}: {reason}"))?;
        let size = value
            .get("size")
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("{what}: no size"))?;
        let platform = value.get("platform").map(|p| {
            let field = |key: &str| {
                p.get(key)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            (
                field("os"),
                field("architecture"),
                p.get("variant").and_then(Value::as_str).map(str::to_string),
            )
        });
        Ok(Descriptor {
            media_type: text("mediaType").unwrap_or_default().to_string(),
            digest: digest.to_string(),
            size,
            annotations: value
                .get("annotations")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
            platform,
        })
    }

    fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.get(key).and_then(Value::as_str)
    }

    /// The image name its annotations give (containerd's full name, else the OCI tag).
    pub(crate) fn name(&self) -> Option<String> {
        self.annotation("io.containerd.image.name")
            .or_else(|| self.annotation("org.opencontainers.image.ref.name"))
            .map(str::to_string)
    }
}

/// One layer of the base.
#[derive(Debug, Clone)]
pub struct BaseLayer {
    /// The member holding it.
    name: String,
    /// Its digest when the base names it (`sha256:…`); legacy docker archives do not.
    expected: Option<String>,
    /// The media type it gets in the new manifest (the OCI one for Docker's).
    pub media_type: String,
    /// Its size.
    pub size: u64,
}

/// A base image, read and checked.
#[derive(Debug)]
pub struct BaseImage {
    /// Its file or directory.
    pub path: PathBuf,
    /// Its name, when the base gives one.
    pub name: Option<String>,
    /// Its manifest's digest (none for legacy docker archives).
    pub manifest_digest: Option<String>,
    /// Its config.
    pub config: Value,
    /// Its layers, bottom first.
    pub layers: Vec<BaseLayer>,
    /// Its config's `rootfs.diff_ids`.
    pub diff_ids: Vec<String>,
    source: Source,
}

impl BaseImage {
    /// Reads the base image and checks that it is for `platform`.
    ///
    /// # Errors
    /// [`Error::BadBase`] naming the file and what is wrong, [`Error::PlatformMismatch`].
    pub fn open(
        reference: &BaseRef,
        platform: &Platform,
        conda_platform: &str,
    ) -> crate::Result<BaseImage> {
        let path = reference.path().to_path_buf();
        let bad = |message: String| Error::BadBase {
            path: path.clone(),
            message,
        };
        let source = match reference {
            BaseRef::OciDir { path, .. } => {
                if !path.join("oci-layout").is_file() {
                    return Err(
                        bad("not an OCI image layout (it has no `oci-layout` file)".into()).into(),
                    );
                }
                Source::Dir(path.clone())
            }
            BaseRef::OciArchive { path, .. } | BaseRef::DockerArchive { path, .. } => {
                Source::open_tar(path).map_err(bad)?
            }
        };
        let image = match reference {
            BaseRef::DockerArchive { reference, .. } => {
                read_docker(&source, reference.as_deref(), &path).map_err(bad)?
            }
            BaseRef::OciArchive { tag, .. } | BaseRef::OciDir { tag, .. } => {
                read_oci(&source, tag.as_deref(), platform, &path).map_err(bad)?
            }
        };
        let Parsed {
            name,
            manifest_digest,
            config,
            layers,
        } = image;
        let field = |key: &str| config.get(key).and_then(Value::as_str).unwrap_or_default();
        if !platform.matches(
            field("os"),
            field("architecture"),
            config.get("variant").and_then(Value::as_str),
        ) {
            let mut base = format!("{}/{}", field("os"), field("architecture"));
            if let Some(variant) = config.get("variant").and_then(Value::as_str) {
                base.push('/');
                base.push_str(variant);
            }
            return Err(Error::PlatformMismatch {
                path,
                base,
                env: platform.to_string(),
                env_platform: conda_platform.to_string(),
            }
            .into());
        }
        let diff_ids: Vec<String> = config
            .pointer("/rootfs/diff_ids")
            .and_then(Value::as_array)
            .map(|ids| {
                ids.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        if diff_ids.len() != layers.len() {
            return Err(bad(format!(
                "its config lists {} layer diff_ids for {} layers",
                diff_ids.len(),
                layers.len()
            ))
            .into());
        }
        for id in &diff_ids {
            check_digest(id).map_err(|reason| bad(format!("config: {reason}")))?;
        }
        Ok(BaseImage {
            path,
            name,
            manifest_digest,
            config,
            layers,
            diff_ids,
            source,
        })
    }

    /// Copies a layer's blob into `sink`, checking its size and digest; returns its digest.
    ///
    /// # Errors
    /// [`Error::BadBase`] for a missing, short or altered blob; write errors;
    /// [`crate::Error::Interrupted`].
    pub fn copy_layer(
        &self,
        layer: &BaseLayer,
        sink: &mut dyn Write,
        cancel: &AtomicBool,
    ) -> crate::Result<Blob> {
        let bad = |message: String| Error::BadBase {
            path: self.path.clone(),
            message,
        };
        let (mut reader, size) = self.source.open(&layer.name).map_err(bad)?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 1 << 20];
        let mut copied = 0u64;
        loop {
            let read = reader
                .read(&mut buffer)
                .map_err(|err| bad(format!("cannot read `{}`: {err}", layer.name)))?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
            sink.write_all(&buffer[..read])
                .map_err(|source| crate::Error::io("cannot write the image", source))?;
            copied += read as u64;
            if cancel.load(Ordering::Relaxed) {
                return Err(crate::Error::Interrupted);
            }
        }
        let digest = format!("sha256:{}", hex::encode(hasher.finalize()));
        if copied != size || copied != layer.size {
            return Err(bad(format!(
                "layer `{}` is {copied} bytes, not {}",
                layer.name, layer.size
            ))
            .into());
        }
        if let Some(expected) = &layer.expected
            && *expected != digest
        {
            return Err(bad(format!(
                "layer `{}` does not match its digest {expected}",
                layer.name
            ))
            .into());
        }
        Ok(Blob {
            digest,
            size: copied,
            ..Blob::default()
        })
    }
}

struct Parsed {
    name: Option<String>,
    manifest_digest: Option<String>,
    config: Value,
    layers: Vec<BaseLayer>,
}

fn parse_json(bytes: &[u8], what: &str) -> std::result::Result<Value, String> {
    serde_json::from_slice(bytes).map_err(|err| format!("{what} is not valid JSON: {err}"))
}

/// The tags of an index's descriptors, for messages.
fn tags(descriptors: &[Descriptor]) -> String {
    let names: Vec<String> = descriptors
        .iter()
        .filter_map(Descriptor::name)
        .map(|name| crate::error::escape_str(&name))
        .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

fn read_oci(
    source: &Source,
    tag: Option<&str>,
    platform: &Platform,
    path: &Path,
) -> std::result::Result<Parsed, String> {
    if !source.has("index.json") {
        return Err("not an OCI image layout (it has no `index.json`)".into());
    }
    let index = parse_json(
        &source.read_small("index.json", MANIFEST_LIMIT, None)?,
        "index.json",
    )?;
    let descriptors = manifests_of(&index, "index.json")?;
    let mut chosen = match tag {
        Some(tag) => descriptors
            .iter()
            .find(|d| {
                d.annotation("org.opencontainers.image.ref.name") == Some(tag)
                    || d.annotation("io.containerd.image.name") == Some(tag)
            })
            .cloned()
            .ok_or_else(|| {
                format!(
                    "no image tagged `{}` (tags: {})",
                    crate::error::escape_str(tag),
                    tags(&descriptors)
                )
            })?,
        None if descriptors.len() == 1 => descriptors[0].clone(),
        None => {
            return Err(format!(
                "it holds {} images; name one with `{}:TAG` (tags: {})",
                descriptors.len(),
                path.display(),
                tags(&descriptors)
            ));
        }
    };
    let name = chosen.name();
    for _ in 0..INDEX_DEPTH {
        if !matches!(
            chosen.media_type.as_str(),
            media::OCI_INDEX | media::DOCKER_LIST
        ) {
            break;
        }
        let bytes = source.read_small(
            &blob_name(&chosen.digest),
            MANIFEST_LIMIT,
            Some(&chosen.digest),
        )?;
        let nested = manifests_of(&parse_json(&bytes, "an image index")?, "an image index")?;
        chosen = nested
            .iter()
            .find(|d| {
                d.platform.as_ref().is_some_and(|(os, arch, variant)| {
                    platform.matches(os, arch, variant.as_deref())
                })
            })
            .cloned()
            .ok_or_else(|| {
                let offered: Vec<String> = nested
                    .iter()
                    .filter_map(|d| {
                        d.platform
                            .as_ref()
                            .map(|(os, arch, _)| format!("{os}/{arch}"))
                    })
                    .collect();
                format!(
                    "it has no image for {platform} (it has: {})",
                    offered.join(", ")
                )
            })?;
    }
    let bytes = source.read_small(
        &blob_name(&chosen.digest),
        MANIFEST_LIMIT,
        Some(&chosen.digest),
    )?;
    let manifest = parse_json(&bytes, "the image manifest")?;
    let media_type = manifest
        .get("mediaType")
        .and_then(Value::as_str)
        .unwrap_or(chosen.media_type.as_str());
    if !matches!(
        media_type,
        media::OCI_MANIFEST | media::DOCKER_MANIFEST | ""
    ) {
        return Err(format!(
            "its manifest has media type `{}`, not an image manifest",
            crate::error::escape_str(media_type)
        ));
    }
    let config_descriptor = Descriptor::parse(
        manifest.get("config").unwrap_or(&Value::Null),
        "manifest config",
    )?;
    let config = parse_json(
        &source.read_small(
            &blob_name(&config_descriptor.digest),
            CONFIG_LIMIT,
            Some(&config_descriptor.digest),
        )?,
        "the image config",
    )?;
    let mut layers = Vec::new();
    for (index, value) in manifest
        .get("layers")
        .and_then(Value::as_array)
        .ok_or("its manifest lists no layers")?
        .iter()
        .enumerate()
    {
        let layer = Descriptor::parse(value, &format!("layer {index}"))?;
        let media_type = oci_layer_type(&layer.media_type).ok_or_else(|| {
            format!(
                "layer {index} has media type `{}`, which gopack does not copy",
                crate::error::escape_str(&layer.media_type)
            )
        })?;
        layers.push(BaseLayer {
            name: blob_name(&layer.digest),
            expected: Some(layer.digest.clone()),
            media_type: media_type.to_string(),
            size: layer.size,
        });
    }
    Ok(Parsed {
        name,
        manifest_digest: Some(chosen.digest),
        config,
        layers,
    })
}

fn manifests_of(index: &Value, what: &str) -> std::result::Result<Vec<Descriptor>, String> {
    index
        .get("manifests")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("{what} has no `manifests` list"))?
        .iter()
        .enumerate()
        .map(|(i, value)| Descriptor::parse(value, &format!("{what} entry {i}")))
        .collect()
}

/// The OCI media type for a layer media type (Docker's become OCI's, same bytes).
fn oci_layer_type(media_type: &str) -> Option<&'static str> {
    Some(match media_type {
        media::OCI_LAYER | media::DOCKER_LAYER => media::OCI_LAYER,
        media::OCI_LAYER_GZIP | media::DOCKER_LAYER_GZIP => media::OCI_LAYER_GZIP,
        media::OCI_LAYER_ZSTD | media::DOCKER_LAYER_ZSTD => media::OCI_LAYER_ZSTD,
        _ => return None,
    })
}

fn read_docker(
    source: &Source,
    reference: Option<&str>,
    path: &Path,
) -> std::result::Result<Parsed, String> {
    if !source.has("manifest.json") {
        return Err("not a docker archive (it has no `manifest.json`)".into());
    }
    let manifest = parse_json(
        &source.read_small("manifest.json", MANIFEST_LIMIT, None)?,
        "manifest.json",
    )?;
    let images = manifest.as_array().ok_or("manifest.json is not a list")?;
    let repo_tags = |image: &Value| -> Vec<String> {
        image
            .get("RepoTags")
            .and_then(Value::as_array)
            .map(|tags| {
                tags.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let all_tags = || {
        let tags: Vec<String> = images
            .iter()
            .flat_map(repo_tags)
            .map(|t| crate::error::escape_str(&t))
            .collect();
        if tags.is_empty() {
            "none".to_string()
        } else {
            tags.join(", ")
        }
    };
    let image = match reference {
        Some(reference) if reference.starts_with('@') => reference[1..]
            .parse::<usize>()
            .ok()
            .and_then(|index| images.get(index))
            .ok_or_else(|| format!("it has no image {reference} ({} images)", images.len()))?,
        Some(reference) => images
            .iter()
            .find(|image| {
                repo_tags(image)
                    .iter()
                    .any(|tag| tag == reference || *tag == format!("{reference}:latest"))
            })
            .ok_or_else(|| {
                format!(
                    "no image named `{}` (tags: {})",
                    crate::error::escape_str(reference),
                    all_tags()
                )
            })?,
        None if images.len() == 1 => &images[0],
        None => {
            return Err(format!(
                "it holds {} images; name one with `{}:NAME:TAG` or `@INDEX` (tags: {})",
                images.len(),
                path.display(),
                all_tags()
            ));
        }
    };
    let config_name = image
        .get("Config")
        .and_then(Value::as_str)
        .ok_or("manifest.json names no Config")?;
    let config_name = normalize(config_name);
    let config_digest = config_name
        .strip_prefix("blobs/sha256/")
        .map(|hex| format!("sha256:{hex}"));
    let config = parse_json(
        &source.read_small(&config_name, CONFIG_LIMIT, config_digest.as_deref())?,
        "the image config",
    )?;
    let mut layers = Vec::new();
    for value in image
        .get("Layers")
        .and_then(Value::as_array)
        .ok_or("manifest.json lists no Layers")?
    {
        let name = normalize(
            value
                .as_str()
                .ok_or("manifest.json: a layer is not a path")?,
        );
        let expected = name
            .strip_prefix("blobs/sha256/")
            .map(|hex| format!("sha256:{hex}"));
        if let Some(digest) = &expected {
            check_digest(digest)?;
        }
        let (mut reader, size) = source.open(&name)?;
        let mut head = [0u8; 4];
        let read = reader.read(&mut head).map_err(|err| err.to_string())?;
        let media_type = match &head[..read] {
            [0x1f, 0x8b, ..] => media::OCI_LAYER_GZIP,
            [0x28, 0xb5, 0x2f, 0xfd] => media::OCI_LAYER_ZSTD,
            _ => media::OCI_LAYER,
        };
        layers.push(BaseLayer {
            name,
            expected,
            media_type: media_type.to_string(),
            size,
        });
    }
    Ok(Parsed {
        name: repo_tags(image).into_iter().next(),
        manifest_digest: None,
        config,
        layers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_follow_skopeo() {
        assert_eq!(
            BaseRef::parse("oci-archive:/x/base.tar:bookworm").unwrap(),
            BaseRef::OciArchive {
                path: "/x/base.tar".into(),
                tag: Some("bookworm".into())
            }
        );
        assert_eq!(
            BaseRef::parse("oci:layout").unwrap(),
            BaseRef::OciDir {
                path: "layout".into(),
                tag: None
            }
        );
        assert_eq!(
            BaseRef::parse("docker-archive:d.tar:debian:12").unwrap(),
            BaseRef::DockerArchive {
                path: "d.tar".into(),
                reference: Some("debian:12".into())
            }
        );
        for bad in ["debian:12", "docker://debian", "oci:", "nothing"] {
            assert!(
                matches!(BaseRef::parse(bad), Err(crate::Error::Usage(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn digests_and_names_are_checked() {
        assert!(check_digest(&format!("sha256:{}", "a".repeat(64))).is_ok());
        assert!(check_digest(&format!("sha512:{}", "a".repeat(128))).is_err());
        assert!(check_digest("sha256:../../etc/passwd").is_err());
        assert!(safe_name(&format!("blobs/sha256/{}", "0".repeat(64))));
        assert!(!safe_name("blobs/sha256/../../x"));
        assert!(!safe_name("../index.json"));
        assert_eq!(normalize("./blobs/sha256/x"), "blobs/sha256/x");
    }
}
