//! `gopack inspect` on images: [`read_image`] recognises an image (a tar holding `index.json`
//! or Docker's `manifest.json`, or a layout directory), finds its manifest and config, and
//! reads gopack's manifest (`.gopack/manifest.json`) out of the metadata layer, decompressing
//! only that layer. Everything read is bounded and validated as for bundles.

use std::io::Read;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use super::base::{Descriptor, Source, blob_name, check_digest};
use super::{Error, LAYER_ROLE, PREFIX, media};
use crate::archive::read::MANIFEST_LIMIT;
use crate::error::escape_str;
use crate::manifest::Manifest;

/// The largest index, manifest or config read.
const JSON_LIMIT: u64 = 16 << 20;

/// One layer of an image.
#[derive(Debug, Clone, Serialize)]
pub struct LayerSummary {
    /// `sha256:…` of the blob.
    pub digest: String,
    /// The blob's size.
    pub size: u64,
    /// Its media type.
    pub media_type: String,
    /// gopack's role for it (`environment`, `go`, `metadata`), none for base layers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// What `gopack inspect` shows about an image.
#[derive(Debug, Clone, Serialize)]
pub struct ImageSummary {
    /// The image's name (`name:tag`), when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The manifest's digest (none for a docker archive without an OCI index).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The config's digest (the image ID).
    pub config_digest: String,
    /// `os/architecture`.
    pub platform: String,
    /// The config's `created`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Where the environment is inside the image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `Cmd`.
    pub cmd: Vec<String>,
    /// `Env`.
    pub env: Vec<String>,
    /// The layers, bottom first.
    pub layers: Vec<LayerSummary>,
    /// gopack's manifest, read from the metadata layer.
    #[serde(skip)]
    pub manifest: Option<Manifest>,
}

/// Reads `path` as an image; `None` when it is not one (a bundle, or anything else, which the
/// bundle reader then names).
///
/// # Errors
/// [`Error::BadImage`] for an image that cannot be read or was not made by gopack.
pub fn read_image(path: &Path) -> crate::Result<Option<ImageSummary>> {
    let source = if path.is_dir() {
        if !path.join("oci-layout").is_file() {
            return Ok(None);
        }
        Source::Dir(path.to_path_buf())
    } else {
        if !is_plain_tar_without_manifest_first(path) {
            return Ok(None);
        }
        let Ok(source) = Source::open_tar(path) else {
            return Ok(None);
        };
        if !source.has("index.json") && !source.has("manifest.json") {
            return Ok(None);
        }
        source
    };
    let bad = |message: String| Error::BadImage {
        path: path.to_path_buf(),
        message,
    };
    let mut summary = summarize(&source).map_err(bad)?;
    summary.manifest = Some(read_gopack_manifest(&source, &summary).map_err(bad)?);
    Ok(Some(summary))
}

/// A plain tar whose first member is not a bundle's manifest: bundles (which start with it)
/// are left to the bundle reader without reading further.
fn is_plain_tar_without_manifest_first(path: &Path) -> bool {
    let mut head = [0u8; 512];
    let Ok(mut file) = crate::error::open_file(path) else {
        return false;
    };
    if file.read_exact(&mut head).is_err() || &head[257..262] != b"ustar" {
        return false;
    }
    let field = |range: std::ops::Range<usize>| {
        let bytes = &head[range];
        bytes[..bytes.iter().position(|&c| c == 0).unwrap_or(bytes.len())].to_vec()
    };
    let name = field(0..100);
    !(head[156] == b'0' || head[156] == 0)
        || !name.ends_with(crate::manifest::MANIFEST_PATH.as_bytes())
}

fn json(source: &Source, name: &str, digest: Option<&str>) -> Result<Value, String> {
    let bytes = source.read_small(name, JSON_LIMIT, digest)?;
    serde_json::from_slice(&bytes).map_err(|err| format!("`{name}` is not valid JSON: {err}"))
}

/// The strings of a JSON array (others and non-strings left out; nothing when absent).
pub(super) fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn summarize(source: &Source) -> Result<ImageSummary, String> {
    let (tag, digest, config_digest, layers) = if source.has("index.json") {
        let index = json(source, "index.json", None)?;
        let first = index
            .get("manifests")
            .and_then(Value::as_array)
            .and_then(|list| list.first())
            .ok_or("index.json lists no image")?;
        let mut chosen = Descriptor::parse(first, "index.json entry 0")?;
        let tag = chosen.name();
        for _ in 0..4 {
            if !matches!(
                chosen.media_type.as_str(),
                media::OCI_INDEX | media::DOCKER_LIST
            ) {
                break;
            }
            let nested = json(source, &blob_name(&chosen.digest), Some(&chosen.digest))?;
            let first = nested
                .get("manifests")
                .and_then(Value::as_array)
                .and_then(|list| list.first())
                .ok_or("an image index lists no image")?;
            chosen = Descriptor::parse(first, "an image index entry")?;
        }
        let manifest = json(source, &blob_name(&chosen.digest), Some(&chosen.digest))?;
        let config = Descriptor::parse(
            manifest.get("config").unwrap_or(&Value::Null),
            "manifest config",
        )?;
        let mut layers = Vec::new();
        for (i, value) in manifest
            .get("layers")
            .and_then(Value::as_array)
            .ok_or("the manifest lists no layers")?
            .iter()
            .enumerate()
        {
            let layer = Descriptor::parse(value, &format!("layer {i}"))?;
            layers.push(LayerSummary {
                role: layer
                    .annotations
                    .get(LAYER_ROLE)
                    .and_then(Value::as_str)
                    .map(str::to_string),
                digest: layer.digest,
                size: layer.size,
                media_type: layer.media_type,
            });
        }
        (tag, Some(chosen.digest), config.digest, layers)
    } else {
        let manifest = json(source, "manifest.json", None)?;
        let image = manifest
            .as_array()
            .and_then(|list| list.first())
            .ok_or("manifest.json lists no image")?;
        let config = image
            .get("Config")
            .and_then(Value::as_str)
            .ok_or("manifest.json names no Config")?;
        let config_digest = config
            .trim_start_matches("./")
            .strip_prefix("blobs/sha256/")
            .map(|hex| format!("sha256:{hex}"))
            .unwrap_or_default();
        let mut layers = Vec::new();
        for name in strings(image.get("Layers")) {
            let name = name.trim_start_matches("./").to_string();
            let (_, size) = source.open(&name)?;
            layers.push(LayerSummary {
                digest: name
                    .strip_prefix("blobs/sha256/")
                    .map(|hex| format!("sha256:{hex}"))
                    .unwrap_or(name),
                size,
                media_type: String::new(),
                role: None,
            });
        }
        let tag = strings(image.get("RepoTags")).into_iter().next();
        (tag, None, config_digest, layers)
    };
    check_digest(&config_digest)?;
    let config = json(source, &blob_name(&config_digest), Some(&config_digest))?;
    let text = |key: &str| config.get(key).and_then(Value::as_str).unwrap_or_default();
    let run = config.get("config");
    let labels = run.and_then(|run| run.get("Labels"));
    Ok(ImageSummary {
        tag,
        digest,
        platform: format!("{}/{}", text("os"), text("architecture")),
        created: config
            .get("created")
            .and_then(Value::as_str)
            .map(str::to_string),
        prefix: labels
            .and_then(|labels| labels.get(PREFIX))
            .and_then(Value::as_str)
            .map(str::to_string),
        entrypoint: strings(run.and_then(|run| run.get("Entrypoint"))),
        cmd: strings(run.and_then(|run| run.get("Cmd"))),
        env: strings(run.and_then(|run| run.get("Env"))),
        config_digest,
        layers,
        manifest: None,
    })
}

/// gopack's manifest from the layer annotated as metadata (else the last layer).
fn read_gopack_manifest(source: &Source, summary: &ImageSummary) -> Result<Manifest, String> {
    let layer = summary
        .layers
        .iter()
        .rev()
        .find(|layer| layer.role.as_deref() == Some("metadata"))
        .or(summary.layers.last())
        .ok_or("the image has no layers")?;
    let name = if layer.digest.starts_with("sha256:") {
        blob_name(&layer.digest)
    } else {
        layer.digest.clone()
    };
    let (mut reader, _) = source.open(&name)?;
    let mut head = [0u8; 4];
    let read = reader.read(&mut head).map_err(|err| err.to_string())?;
    let reader = std::io::Cursor::new(head[..read].to_vec()).chain(reader);
    let reader: Box<dyn Read> = match &head[..read] {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        [0x28, 0xb5, 0x2f, 0xfd] => {
            Box::new(zstd::stream::read::Decoder::new(reader).map_err(|err| err.to_string())?)
        }
        _ => Box::new(reader),
    };
    let mut archive = tar::Archive::new(reader);
    let entries = archive
        .entries()
        .map_err(|err| format!("its last layer is not a tar: {err}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|err| format!("its last layer cannot be read: {err}"))?;
        let path = entry.path_bytes().into_owned();
        if !entry.header().entry_type().is_file()
            || !path.ends_with(crate::manifest::MANIFEST_PATH.as_bytes())
        {
            continue;
        }
        if entry.size() > MANIFEST_LIMIT {
            return Err(format!(
                "its gopack manifest is {} bytes; at most {MANIFEST_LIMIT} are read",
                entry.size()
            ));
        }
        let mut bytes = Vec::new();
        (&mut entry)
            .take(MANIFEST_LIMIT)
            .read_to_end(&mut bytes)
            .map_err(|err| format!("its gopack manifest cannot be read: {err}"))?;
        return Manifest::from_json(&bytes);
    }
    Err("it holds no gopack manifest (`.gopack/manifest.json`): it was not made by `gopack create --format oci`".into())
}

impl ImageSummary {
    /// The lines `gopack inspect` prints before the environment's manifest, every string from
    /// the image escaped.
    pub fn describe(&self, path: &Path) -> String {
        let e = |text: &str| escape_str(text);
        let list = |items: &[String]| {
            serde_json::to_string(items).map_or_else(|_| String::new(), |text| e(&text))
        };
        let mut out = String::new();
        out.push_str(&format!(
            "image:          {}\n",
            crate::error::escape_bytes(path.as_os_str().as_encoded_bytes())
        ));
        if let Some(tag) = &self.tag {
            out.push_str(&format!("tag:            {}\n", e(tag)));
        }
        if let Some(digest) = &self.digest {
            out.push_str(&format!("digest:         {}\n", e(digest)));
        }
        out.push_str(&format!("config:         {}\n", e(&self.config_digest)));
        out.push_str(&format!("image platform: {}\n", e(&self.platform)));
        if let Some(created) = &self.created {
            out.push_str(&format!("created:        {}\n", e(created)));
        }
        if let Some(prefix) = &self.prefix {
            out.push_str(&format!("prefix:         {}\n", e(prefix)));
        }
        if !self.entrypoint.is_empty() {
            out.push_str(&format!("entrypoint:     {}\n", list(&self.entrypoint)));
        }
        if !self.cmd.is_empty() {
            out.push_str(&format!("cmd:            {}\n", list(&self.cmd)));
        }
        out.push_str(&format!("layers:         {}\n", self.layers.len()));
        for layer in &self.layers {
            out.push_str(&format!(
                "  {} {} bytes {} ({})\n",
                e(&layer.digest),
                layer.size,
                e(layer.media_type.rsplit('.').next().unwrap_or_default()),
                e(layer.role.as_deref().unwrap_or("base"))
            ));
        }
        out
    }
}
