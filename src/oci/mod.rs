//! Container images without a daemon: [`write_image`] turns a [`Plan`] made for a destination
//! prefix (`--dest-prefix`, by default `/opt/<env name>`) into an image that needs no unpack
//! step, written as one tar that is at the same time an OCI image layout (`oci-layout`,
//! `index.json`, `blobs/sha256/…`) and a docker archive (`manifest.json` pointing into
//! `blobs/`, as `docker save` writes since Docker 25), or as an OCI layout directory.
//!
//! The image is the base's layers, copied by digest ([`base`]), then three layers of ours
//! (`layer`): the conda environment, the Go binaries no conda package installed (built by
//! `--go` or dropped into the environment), and gopack's metadata (`.gopack/`, the activation
//! and unpack scripts). Redeploying a Go service therefore changes the Go and metadata layers
//! only (the manifest lists the binary's hash), and the environment layer, usually the big one,
//! keeps its digest. Every layer is a deterministic tar (sorted, owners 0/0, the files' own
//! mtimes) compressed while it is hashed, so the same inputs give the same image digest; the
//! config's `created` and history times come from `SOURCE_DATE_EPOCH` or the epoch.
//!
//! The facts this follows: the OCI image spec (`image-layout.md`: `oci-layout` holds
//! `{"imageLayoutVersion":"1.0.0"}`, tags are the `org.opencontainers.image.ref.name`
//! annotation of `index.json`'s descriptors; `config.md`: `rootfs.diff_ids` are digests of the
//! uncompressed layer tars, the manifest lists the compressed blobs), and Docker's
//! `manifest.json` (`[{"Config", "RepoTags", "Layers"}]`, paths relative to the archive).

pub mod base;
mod config;
pub mod inspect;
mod layer;
mod output;
mod reference;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::archive::{self, Format, WriteOptions, Written};
use crate::manifest::MANIFEST_PATH;
use crate::plan::{Body, Plan};
use crate::progress::Reporter;

pub use base::BaseRef;
pub use layer::LayerCompression;
pub use reference::{normalize_tag, rfc3339};

/// `oci-layout`'s content.
const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
/// Media types (OCI image spec `media-types.md`, and Docker's schema 2 equivalents).
pub(crate) mod media {
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    pub const DOCKER_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";
}

/// The annotation that names a layer's role (`environment`, `go`, `metadata`).
pub const LAYER_ROLE: &str = "io.gopack.layer";
/// The annotation and label holding the sha256 of the image's `.gopack/manifest.json`.
pub const MANIFEST_DIGEST: &str = "io.gopack.manifest.digest";
/// The annotation and label holding the prefix the environment was relocated to.
pub const PREFIX: &str = "io.gopack.prefix";

/// What can go wrong with images, beyond I/O and usage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A base image that cannot be read or used.
    #[error("base image `{}`: {message}", path.display())]
    BadBase {
        /// The base image's file or directory.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The base image is for another platform than the environment.
    #[error(
        "base image `{}` is for {base}, but the environment is {env_platform} ({env})",
        path.display()
    )]
    PlatformMismatch {
        /// The base image.
        path: PathBuf,
        /// The base's `os/architecture`.
        base: String,
        /// The environment's `os/architecture`.
        env: String,
        /// The environment's conda platform.
        env_platform: String,
    },
    /// The environment's platform has no container image equivalent.
    #[error("an environment for {platform} cannot be put into a Linux container image")]
    UnsupportedPlatform {
        /// The conda platform.
        platform: String,
    },
    /// A path a container runtime would misread.
    #[error("`{path}` cannot be put into an image layer: {reason}")]
    BadEntry {
        /// The path, relative to the prefix and escaped.
        path: String,
        /// Why.
        reason: String,
    },
    /// An image given to `gopack inspect` that cannot be read.
    #[error("image `{}`: {message}", path.display())]
    BadImage {
        /// The image.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl Error {
    /// A suggestion the user can act on, if there is one.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::PlatformMismatch { .. } => Some(
                "use a base image for the environment's platform (`skopeo copy --override-arch …` saves one), or pack an environment made for the base's"
                    .into(),
            ),
            Error::BadEntry { .. } => Some("leave the path out with `--exclude`".into()),
            _ => None,
        }
    }
}

/// Checked options of an image.
#[derive(Debug, Clone)]
pub struct ImageOptions {
    /// The base image, if any.
    pub base: Option<BaseRef>,
    /// `name:tag` of the image (`RepoTags`, and the tag in `index.json`).
    pub tag: String,
    /// `Entrypoint`, replacing the base's (and then its `Cmd` too, as Docker does).
    pub entrypoint: Option<Vec<String>>,
    /// `Cmd`, replacing the base's.
    pub cmd: Option<Vec<String>>,
    /// Variables set last, over the base's and the environment's.
    pub env: Vec<(String, String)>,
    /// Labels added to the config.
    pub labels: Vec<(String, String)>,
    /// `WorkingDir`.
    pub workdir: Option<String>,
    /// How layers are compressed.
    pub compression: LayerCompression,
    /// Compression level (gzip 1–9, zstd 1–22).
    pub level: i32,
    /// Seconds since the epoch for `created` and history (`SOURCE_DATE_EPOCH`, else 0).
    pub created: u64,
}

/// The image-related command-line values, before they are checked.
#[derive(Debug, Clone, Default)]
pub struct ImageArgs {
    /// `--base`.
    pub base: Option<String>,
    /// `--tag`.
    pub tag: Option<String>,
    /// `--entrypoint`: a JSON array or words separated by white space.
    pub entrypoint: Option<String>,
    /// `--cmd`: a JSON array or words separated by white space.
    pub cmd: Option<String>,
    /// `--env K=V`.
    pub env: Vec<String>,
    /// `--label K=V`.
    pub labels: Vec<String>,
    /// `--workdir`.
    pub workdir: Option<String>,
    /// `--layer-compression`.
    pub compression: Option<String>,
    /// `--compress-level`.
    pub level: Option<i32>,
    /// `SOURCE_DATE_EPOCH`, as found in the process environment.
    pub source_date_epoch: Option<String>,
}

impl ImageArgs {
    /// Whether any option that only images take was given.
    pub fn any(&self) -> bool {
        self.base.is_some()
            || self.tag.is_some()
            || self.entrypoint.is_some()
            || self.cmd.is_some()
            || !self.env.is_empty()
            || !self.labels.is_empty()
            || self.workdir.is_some()
            || self.compression.is_some()
    }

    /// Checks the values; `prefix` names the default tag (`<env name>:latest`).
    ///
    /// # Errors
    /// [`crate::Error::Usage`] naming the option at fault.
    pub fn resolve(self, prefix: &Path) -> crate::Result<ImageOptions> {
        let usage = crate::Error::Usage;
        let base = self.base.as_deref().map(BaseRef::parse).transpose()?;
        let tag = match &self.tag {
            Some(tag) => {
                normalize_tag(tag).map_err(|reason| usage(format!("--tag `{tag}`: {reason}")))?
            }
            None => format!("{}:latest", reference::repository_name(&env_name(prefix))),
        };
        let command = |flag: &str, text: &Option<String>| -> crate::Result<Option<Vec<String>>> {
            text.as_deref()
                .map(|text| {
                    parse_command(text).map_err(|reason| usage(format!("{flag}: {reason}")))
                })
                .transpose()
        };
        let pairs = |flag: &str, values: &[String]| -> crate::Result<Vec<(String, String)>> {
            values
                .iter()
                .map(|value| match value.split_once('=') {
                    Some((key, v)) if !key.is_empty() && !key.contains(char::is_whitespace) => {
                        Ok((key.to_string(), v.to_string()))
                    }
                    _ => Err(usage(format!("{flag} `{value}`: expected KEY=VALUE"))),
                })
                .collect()
        };
        let compression = match self.compression.as_deref() {
            None | Some("gzip") | Some("gz") => LayerCompression::Gzip,
            Some("zstd") | Some("zst") => LayerCompression::Zstd,
            Some("none") => LayerCompression::None,
            Some(other) => {
                return Err(usage(format!(
                    "--layer-compression `{other}`: expected gzip, zstd or none"
                )));
            }
        };
        let level = match (compression, self.level) {
            (LayerCompression::Gzip, Some(level)) if !(1..=9).contains(&level) => {
                return Err(usage(format!(
                    "--compress-level {level}: gzip levels are 1 to 9"
                )));
            }
            (LayerCompression::Zstd, Some(level)) if !(1..=22).contains(&level) => {
                return Err(usage(format!(
                    "--compress-level {level}: zstd levels are 1 to 22"
                )));
            }
            (_, Some(level)) => level,
            (LayerCompression::Zstd, None) => 3,
            (_, None) => 6,
        };
        if let Some(dir) = &self.workdir
            && !dir.starts_with('/')
        {
            return Err(usage(format!("--workdir `{dir}` must be an absolute path")));
        }
        let created = match self.source_date_epoch.as_deref().map(str::trim) {
            None | Some("") => 0,
            Some(text) => text
                .parse::<u64>()
                .ok()
                .filter(|&seconds| seconds <= reference::LAST_SECOND)
                .ok_or_else(|| {
                    usage(format!(
                        "SOURCE_DATE_EPOCH `{text}` is not a number of seconds since 1970 (up to year 9999)"
                    ))
                })?,
        };
        Ok(ImageOptions {
            base,
            tag,
            entrypoint: command("--entrypoint", &self.entrypoint)?,
            cmd: command("--cmd", &self.cmd)?,
            env: pairs("--env", &self.env)?,
            labels: pairs("--label", &self.labels)?,
            workdir: self.workdir,
            compression,
            level,
            created,
        })
    }
}

/// `--entrypoint` and `--cmd`: a JSON array of strings (`["python", "-m", "app"]`), or words
/// separated by white space (no quoting). An empty value clears the setting.
fn parse_command(text: &str) -> std::result::Result<Vec<String>, String> {
    let trimmed = text.trim();
    if trimmed.starts_with('[') {
        serde_json::from_str::<Vec<String>>(trimmed)
            .map_err(|err| format!("not a JSON array of strings: {err}"))
    } else {
        Ok(trimmed.split_whitespace().map(str::to_string).collect())
    }
}

/// The environment's name: its directory's name.
pub fn env_name(prefix: &Path) -> String {
    std::path::absolute(prefix)
        .ok()
        .and_then(|path| {
            path.file_name()
                .map(|name| name.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "env".into())
}

/// Where the environment goes in an image without `--dest-prefix`: `/opt/<env name>`.
pub fn default_dest_prefix(prefix: &Path) -> Vec<u8> {
    let name = env_name(prefix);
    let name = if name.is_empty() || name == "." || name == ".." {
        "env".to_string()
    } else {
        name
    };
    format!("/opt/{name}").into_bytes()
}

/// An image's name and digest, as `create --json` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRef {
    /// `name:tag`.
    pub tag: String,
    /// The manifest's digest, `sha256:…` (what registries and `skopeo inspect` show).
    pub digest: String,
    /// The config's digest (what `docker images` shows as the image ID).
    pub config_digest: String,
}

/// An `os/architecture[/variant]` triple of the OCI spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// `amd64`, `arm64`, …
    pub architecture: String,
    /// `v7` for 32-bit ARM.
    pub variant: Option<String>,
}

impl Platform {
    /// The image platform of a conda platform (`linux-64` → linux/amd64, `linux-aarch64` →
    /// linux/arm64, …); `None` for platforms that have no Linux image.
    pub fn of_conda(platform: &str) -> Option<Platform> {
        let (architecture, variant) = match platform {
            "linux-64" => ("amd64", None),
            "linux-aarch64" => ("arm64", None),
            "linux-ppc64le" => ("ppc64le", None),
            "linux-s390x" => ("s390x", None),
            "linux-armv7l" => ("arm", Some("v7")),
            "linux-32" => ("386", None),
            _ => return None,
        };
        Some(Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: variant.map(str::to_string),
        })
    }

    /// Whether a config's or descriptor's `os` and `architecture` (and `variant`, where both
    /// name one) are this platform's. arm64's `v8` is its only variant.
    pub fn matches(&self, os: &str, architecture: &str, variant: Option<&str>) -> bool {
        os == self.os
            && architecture == self.architecture
            && match (self.variant.as_deref(), variant) {
                (Some(ours), Some(theirs)) => ours == theirs,
                _ => true,
            }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// `sha256:<hex>` of some bytes.
pub(crate) fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A descriptor (OCI `descriptor.md`).
fn descriptor(media_type: &str, digest: &str, size: u64) -> Value {
    json!({ "mediaType": media_type, "digest": digest, "size": size })
}

/// Writes the image for `plan`, which must have been made with a destination prefix
/// ([`crate::plan::PlanOptions::dest_prefix`]): the environment's files already hold it, so
/// the image needs no unpack step. Nothing is left at `output` on error or cancellation.
///
/// # Errors
/// [`Error`] for bad base images and unusable platforms, I/O errors naming the file,
/// [`crate::Error::Interrupted`], and what writing the environment's files reports.
pub fn write_image(
    plan: &Plan,
    output: &Path,
    write: &WriteOptions,
    image: &ImageOptions,
    cancel: &AtomicBool,
    reporter: &dyn Reporter,
) -> crate::Result<(Written, ImageRef)> {
    let platform =
        Platform::of_conda(&plan.platform).ok_or_else(|| Error::UnsupportedPlatform {
            platform: plan.platform.clone(),
        })?;
    let dest = dest_prefix(plan)?;
    archive::check_output(output, write.force)?;
    let base = image
        .base
        .as_ref()
        .map(|reference| base::BaseImage::open(reference, &platform, &plan.platform))
        .transpose()?;
    let layers = layer::split(plan)?;
    reporter.stage("writing image");
    let mtime = image.created;
    let mut out = output::Output::create(write.format, output, mtime)?;

    let mut descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    if let Some(base) = &base {
        for layer in &base.layers {
            let digest = out.stream_blob(|sink| base.copy_layer(layer, sink, cancel))?;
            descriptors.push(descriptor(&layer.media_type, &digest.digest, digest.size));
        }
        diff_ids.extend(base.diff_ids.iter().cloned());
    }
    let arcroot = dest.strip_prefix(b"/").unwrap_or(&dest).to_vec();
    let context = layer::Context {
        plan,
        arcroot: &arcroot,
        image,
        threads: write.threads.max(1) as usize,
        cancel,
        reporter,
        output,
    };
    let mut history = Vec::new();
    let mut members = 0;
    let mut content_bytes = 0;
    for layer in &layers {
        if layer.entries.is_empty() {
            continue;
        }
        let written = out.stream_blob(|sink| layer.write(&context, sink))?;
        members += written.members;
        content_bytes += written.content_bytes;
        let mut layer_descriptor = descriptor(
            image.compression.media_type(),
            &written.digest,
            written.size,
        );
        layer_descriptor["annotations"] = json!({ LAYER_ROLE: layer.role.name() });
        descriptors.push(layer_descriptor);
        diff_ids.push(written.diff_id.clone());
        history.push(json!({
            "created": rfc3339(image.created),
            "created_by": layer.role.created_by(plan, layer),
            "comment": format!("gopack {}", env!("CARGO_PKG_VERSION")),
        }));
    }

    let manifest_digest = plan
        .entries
        .iter()
        .find(|p| p.entry.path == MANIFEST_PATH.as_bytes())
        .and_then(|p| match &p.body {
            Body::Generated(bytes) => Some(digest_of(bytes)),
            Body::External { sha256, .. } => Some(format!("sha256:{}", hex::encode(sha256))),
            _ => None,
        })
        .unwrap_or_default();
    let dest_text = String::from_utf8_lossy(&dest).into_owned();
    let mut annotations = serde_json::Map::new();
    annotations.insert(
        "org.opencontainers.image.created".into(),
        rfc3339(image.created).into(),
    );
    annotations.insert(
        "org.opencontainers.image.title".into(),
        env_name(&plan.prefix).into(),
    );
    annotations.insert(MANIFEST_DIGEST.into(), manifest_digest.into());
    annotations.insert(PREFIX.into(), dest_text.clone().into());
    annotations.insert("io.gopack.platform".into(), plan.platform.clone().into());
    if let Some(base) = &base {
        if let Some(name) = &base.name {
            annotations.insert(
                "org.opencontainers.image.base.name".into(),
                name.clone().into(),
            );
        }
        if let Some(digest) = &base.manifest_digest {
            annotations.insert(
                "org.opencontainers.image.base.digest".into(),
                digest.clone().into(),
            );
        }
    }

    let config = config::build(config::Inputs {
        base: base.as_ref().map(|b| &b.config),
        plan,
        dest: &dest_text,
        image,
        platform: &platform,
        diff_ids: &diff_ids,
        history,
        annotations: &annotations,
    });
    let config_bytes = json_bytes(&config)?;
    let config_digest = digest_of(&config_bytes);
    out.put_blob(&config_digest, &config_bytes)?;

    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": descriptor(media::OCI_CONFIG, &config_digest, config_bytes.len() as u64),
        "layers": descriptors,
        "annotations": annotations,
    });
    let manifest_bytes = json_bytes(&manifest)?;
    let digest = digest_of(&manifest_bytes);
    out.put_blob(&digest, &manifest_bytes)?;

    let (_, tag_only) = reference::split_tag(&image.tag);
    let mut index_entry = descriptor(media::OCI_MANIFEST, &digest, manifest_bytes.len() as u64);
    index_entry["annotations"] = json!({
        "io.containerd.image.name": image.tag,
        "org.opencontainers.image.ref.name": tag_only,
    });
    let mut platform_json = json!({ "architecture": platform.architecture, "os": platform.os });
    if let Some(variant) = &platform.variant {
        platform_json["variant"] = variant.clone().into();
    }
    index_entry["platform"] = platform_json;
    let index = json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "manifests": [index_entry],
    });
    out.put_file("index.json", &json_bytes(&index)?)?;
    if write.format == Format::Oci {
        let blob_path =
            |digest: &str| format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"));
        let layers: Vec<String> = manifest["layers"]
            .as_array()
            .map(|layers| {
                layers
                    .iter()
                    .filter_map(|l| l["digest"].as_str().map(blob_path))
                    .collect()
            })
            .unwrap_or_default();
        let docker = json!([{
            "Config": blob_path(&config_digest),
            "RepoTags": [image.tag],
            "Layers": layers,
        }]);
        out.put_file("manifest.json", &json_bytes(&docker)?)?;
    }
    let size = out.finish(output, write.force, cancel)?;
    Ok((
        Written {
            path: output.to_path_buf(),
            size,
            members,
            content_bytes,
        },
        ImageRef {
            tag: image.tag.clone(),
            digest,
            config_digest,
        },
    ))
}

/// A JSON document of the image as bytes. Serialising a `Value` into memory cannot fail; were
/// it to, the image is not written.
fn json_bytes(value: &Value) -> crate::Result<Vec<u8>> {
    serde_json::to_vec(value)
        .map_err(|err| crate::Error::io("cannot serialise the image's JSON", err.into()))
}

/// The prefix the plan's files were relocated to: `.gopack/prefix`, which `--dest-prefix`
/// writes.
fn dest_prefix(plan: &Plan) -> crate::Result<Vec<u8>> {
    let dest = plan
        .entries
        .iter()
        .find(|p| p.entry.path == b".gopack/prefix")
        .and_then(|p| match &p.body {
            Body::Generated(bytes) => Some(bytes.clone()),
            _ => None,
        })
        .ok_or_else(|| {
            crate::Error::Usage(
                "an image needs the environment relocated while packing: pass --dest-prefix".into(),
            )
        })?;
    if std::str::from_utf8(&dest).is_err() || dest.len() < 2 || !dest.starts_with(b"/") {
        return Err(crate::Error::Usage(format!(
            "--dest-prefix `{}`: an image's prefix must be an absolute UTF-8 path below `/`",
            crate::error::escape_bytes(&dest)
        )));
    }
    Ok(dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_json_arrays_or_words() {
        assert_eq!(
            parse_command(r#"["python", "-c", "print(1)"]"#).unwrap(),
            ["python", "-c", "print(1)"]
        );
        assert_eq!(
            parse_command("  /opt/app/bin/svc  -addr :80 ").unwrap(),
            ["/opt/app/bin/svc", "-addr", ":80"]
        );
        assert!(parse_command("").unwrap().is_empty());
        assert!(parse_command("[1, 2]").is_err());
    }

    #[test]
    fn conda_platforms_map_to_image_platforms() {
        let amd = Platform::of_conda("linux-64").unwrap();
        assert_eq!(amd.to_string(), "linux/amd64");
        assert_eq!(
            Platform::of_conda("linux-aarch64").unwrap().to_string(),
            "linux/arm64"
        );
        assert!(Platform::of_conda("osx-arm64").is_none());
        assert!(amd.matches("linux", "amd64", None));
        assert!(!amd.matches("linux", "arm64", None));
        let arm = Platform::of_conda("linux-armv7l").unwrap();
        assert!(arm.matches("linux", "arm", Some("v7")));
        assert!(!arm.matches("linux", "arm", Some("v6")));
    }

    #[test]
    fn options_are_checked() {
        let prefix = Path::new("/envs/My Env");
        let options = ImageArgs::default().resolve(prefix).unwrap();
        assert_eq!(options.tag, "my-env:latest");
        assert_eq!(options.level, 6);
        assert_eq!(options.created, 0);
        let bad = |args: ImageArgs| match args.resolve(prefix) {
            Err(crate::Error::Usage(message)) => message,
            other => panic!("expected a usage error, got {other:?}"),
        };
        assert!(
            bad(ImageArgs {
                tag: Some("Upper:1".into()),
                ..Default::default()
            })
            .contains("--tag")
        );
        assert!(
            bad(ImageArgs {
                env: vec!["novalue".into()],
                ..Default::default()
            })
            .contains("KEY=VALUE")
        );
        assert!(
            bad(ImageArgs {
                compression: Some("xz".into()),
                ..Default::default()
            })
            .contains("xz")
        );
        assert!(
            bad(ImageArgs {
                level: Some(12),
                ..Default::default()
            })
            .contains("gzip")
        );
        assert!(
            bad(ImageArgs {
                source_date_epoch: Some("yesterday".into()),
                ..Default::default()
            })
            .contains("SOURCE_DATE_EPOCH")
        );
        assert!(
            bad(ImageArgs {
                workdir: Some("rel".into()),
                ..Default::default()
            })
            .contains("absolute")
        );
        let zstd = ImageArgs {
            compression: Some("zstd".into()),
            source_date_epoch: Some("1700000000".into()),
            ..Default::default()
        }
        .resolve(prefix)
        .unwrap();
        assert_eq!((zstd.level, zstd.created), (3, 1_700_000_000));
    }

    #[test]
    fn default_prefix_is_under_opt() {
        assert_eq!(default_dest_prefix(Path::new("/x/envs/app")), b"/opt/app");
    }
}
