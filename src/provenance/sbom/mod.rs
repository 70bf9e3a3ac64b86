//! The software bill of materials of a bundle: [`Sbom::read`] takes a bundle or an unpacked
//! environment, [`Sbom::from_manifest`] turns its manifest into a list of components and
//! dependency edges, and [`cyclonedx`] and [`spdx`] write that list as CycloneDX 1.5 JSON or
//! SPDX 2.3 JSON.
//!
//! # Components
//! - every conda package: `pkg:conda/NAME@VERSION?build=…&channel=…&subdir=…`, with the
//!   archive's sha256 and md5 where conda-meta records them, and an edge to each package of the
//!   environment its `depends` names;
//! - every Python distribution no conda record owns: `pkg:pypi/NAME@VERSION`, with the files
//!   its `RECORD` lists and the hashes `RECORD` gives them (CycloneDX only: SPDX requires a SHA-1
//!   of every file, which neither `RECORD` nor the manifest has);
//! - every Go binary, named after its main module, with the binary's sha256, its Go version and
//!   build settings as properties, and an edge to each module it was built with;
//! - every Go module a binary was built with: `pkg:golang/PATH@VERSION`, its `h1:` sum (a hash
//!   of the module's file tree, not of any file, so a property rather than a hash) and its
//!   replacement, if a `replace` directive applied; and the Go standard library of each Go
//!   version (`pkg:golang/stdlib@1.26.8`), which vulnerability databases track as a package.
//!
//! # Determinism
//! The document depends on the bundle only: components and edges are sorted, no clock is read,
//! and the serial number is a UUID made from the manifest's sha256 (version 8, the RFC 9562
//! form for UUIDs made by an application's own rule). CycloneDX gets a timestamp only from
//! `SOURCE_DATE_EPOCH`; SPDX requires one, and without `SOURCE_DATE_EPOCH` gets the
//! manifest's modification time in the bundle (the newest conda-meta record's, which both
//! unpack paths keep), so a bundle and the environment unpacked from it give the same bytes.
//!
//! # Why own serde types
//! `cyclonedx-bom` 0.8 models all of CycloneDX 1.3–1.5 (XML included) with 16 direct
//! dependencies (an XML writer, regex, time, an SPDX license database, …) and has no SPDX
//! writer, so a second model would be needed anyway. gopack writes a small, fixed subset of
//! both formats; the tests check every document against the real CycloneDX 1.5 JSON schema and
//! with the SPDX project's own validator.
//!
//! # Names chosen here
//! Go purls lowercase the module path, as the purl type definition for `golang` says; the
//! component's name keeps the exact path. A main module built from a working tree has version
//! `(devel)`, which is left out of the purl. Properties are namespaced `gopack:`.

pub mod cyclonedx;
pub mod spdx;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::Error as ProvenanceError;
use crate::archive::Error as ArchiveError;
use crate::archive::read::{MANIFEST_LIMIT, MemberKind, open_bundle, read_leading};
use crate::error::{Error, Result};
use crate::manifest::{MANIFEST_PATH, Manifest, normalize_path};

/// The document formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SbomFormat {
    /// CycloneDX 1.5, JSON.
    CycloneDxJson,
    /// SPDX 2.3, JSON.
    SpdxJson,
}

impl SbomFormat {
    /// The format named on the command line: `cyclonedx-json` or `spdx-json`.
    pub fn from_name(name: &str) -> Option<SbomFormat> {
        match name {
            "cyclonedx-json" | "cyclonedx" | "cdx" => Some(SbomFormat::CycloneDxJson),
            "spdx-json" | "spdx" => Some(SbomFormat::SpdxJson),
            _ => None,
        }
    }

    /// The format a file name asks for: SPDX for `*.spdx.json` and `*.spdx`, else CycloneDX.
    pub fn from_path(path: &Path) -> SbomFormat {
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        if name.ends_with(".spdx.json") || name.ends_with(".spdx") {
            SbomFormat::SpdxJson
        } else {
            SbomFormat::CycloneDxJson
        }
    }
}

/// How a document is made.
#[derive(Debug, Clone, Copy, Default)]
pub struct SbomOptions {
    /// `SOURCE_DATE_EPOCH`: the document's creation time, in seconds since 1970.
    pub source_date_epoch: Option<u64>,
}

/// What a component is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A conda package.
    Conda,
    /// A Python distribution no conda record owns.
    Pypi,
    /// A Go binary (named after its main module).
    GoBinary,
    /// A Go module a binary was built with.
    GoModule,
    /// The Go standard library of one Go version.
    GoStdlib,
}

impl Kind {
    /// The name used in summaries.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Conda => "conda",
            Kind::Pypi => "pypi",
            Kind::GoBinary => "go-binary",
            Kind::GoModule => "go-module",
            Kind::GoStdlib => "go-stdlib",
        }
    }
}

/// Hash algorithms the documents name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlg {
    /// MD5 (conda records it beside sha256).
    Md5,
    /// SHA-256.
    Sha256,
    /// SHA-384 (allowed in `RECORD`).
    Sha384,
    /// SHA-512 (allowed in `RECORD`).
    Sha512,
}

impl HashAlg {
    fn hex_len(self) -> usize {
        match self {
            HashAlg::Md5 => 32,
            HashAlg::Sha256 => 64,
            HashAlg::Sha384 => 96,
            HashAlg::Sha512 => 128,
        }
    }
}

/// A digest, lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hash {
    /// The algorithm.
    pub alg: HashAlg,
    /// The digest in lowercase hex.
    pub hex: String,
}

impl Hash {
    /// `text` as a digest of `alg`, if it is one (hex of the right length; a manifest is input
    /// from outside).
    fn checked(alg: HashAlg, text: &str) -> Option<Hash> {
        (text.len() == alg.hex_len() && text.bytes().all(|c| c.is_ascii_hexdigit())).then(|| Hash {
            alg,
            hex: text.to_ascii_lowercase(),
        })
    }
}

/// A file of a component, as a package's own file list gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentFile {
    /// Path relative to the environment's root.
    pub path: String,
    /// Its hash, where the list has one.
    pub hash: Option<Hash>,
}

/// One component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    /// What it is.
    pub kind: Kind,
    /// Its identifier inside the document (unique).
    pub bom_ref: String,
    /// Name.
    pub name: String,
    /// Version, when known.
    pub version: Option<String>,
    /// Package URL.
    pub purl: Option<String>,
    /// Digests of the component's artifact.
    pub hashes: Vec<Hash>,
    /// `gopack:…` facts, in a fixed order.
    pub properties: Vec<(String, String)>,
    /// Files, for pip distributions with a `RECORD`.
    pub files: Vec<ComponentFile>,
}

/// The bundle the document describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// The environment's name (the last component of the source prefix).
    pub name: String,
    /// sha256 of the manifest, hex.
    pub manifest_sha256: String,
    /// The document's serial number, `urn:uuid:…`.
    pub serial: String,
    /// `SOURCE_DATE_EPOCH`, for the CycloneDX timestamp.
    pub source_date_epoch: Option<u64>,
    /// The creation time SPDX requires: `SOURCE_DATE_EPOCH`, else the manifest's time.
    pub created: u64,
    /// Facts about the bundle.
    pub properties: Vec<(String, String)>,
}

/// The bill of materials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sbom {
    /// The bundle.
    pub subject: Subject,
    /// Every component, sorted by kind, then name and version.
    pub components: Vec<Component>,
    /// Edges `from → to` by `bom_ref`, the bundle's own (`BUNDLE_REF`) included.
    pub dependencies: BTreeMap<String, BTreeSet<String>>,
}

/// The `bom_ref` of the bundle itself.
pub const BUNDLE_REF: &str = "bundle";

/// A bundle or environment as read: its manifest, the manifest's bytes and time, and the
/// packed `RECORD` of each pip distribution, by `dist_info`.
struct Loaded {
    manifest: Manifest,
    sha256: [u8; 32],
    mtime: u64,
    records: BTreeMap<String, Vec<u8>>,
}

/// The largest `RECORD` read (64 MiB).
const RECORD_LIMIT: u64 = 64 << 20;

impl Sbom {
    /// Reads a bundle, or an environment unpacked from one (a directory), and makes its SBOM.
    /// Only the manifest is read, plus, when there are pip distributions, their `RECORD` files
    /// (from a bundle, by reading the archive up to the last of them).
    ///
    /// # Errors
    /// [`ArchiveError::NotABundle`] and [`ArchiveError::BadBundle`] for bundles,
    /// [`ProvenanceError::NotUnpacked`] and [`ProvenanceError::RecordChanged`] for directories,
    /// I/O errors.
    pub fn read(path: &Path, options: &SbomOptions) -> Result<Sbom> {
        let loaded = if path.is_dir() {
            load_dir(path)?
        } else {
            load_bundle(path)?
        };
        Ok(Sbom::from_manifest(
            &loaded.manifest,
            loaded.sha256,
            loaded.mtime,
            &loaded.records,
            options,
        ))
    }

    /// The document in `format`, pretty JSON with a trailing newline.
    pub fn render(&self, format: SbomFormat) -> Vec<u8> {
        match format {
            SbomFormat::CycloneDxJson => cyclonedx::render(self),
            SbomFormat::SpdxJson => spdx::render(self),
        }
    }

    /// Components by kind, in the order of [`Kind`].
    pub fn counts(&self) -> Vec<(Kind, usize)> {
        let mut counts: BTreeMap<Kind, usize> = BTreeMap::new();
        for component in &self.components {
            *counts.entry(component.kind).or_default() += 1;
        }
        counts.into_iter().collect()
    }

    /// Dependency edges, the bundle's own "contains" edges left out.
    pub fn edges(&self) -> usize {
        self.dependencies
            .iter()
            .filter(|(from, _)| *from != BUNDLE_REF)
            .map(|(_, to)| to.len())
            .sum()
    }

    /// Builds the SBOM of a manifest. `manifest_sha256` names the document, `manifest_mtime` is
    /// its time in the bundle, `records` the packed `RECORD` of pip distributions by
    /// `dist_info` (those missing get no file list).
    pub fn from_manifest(
        manifest: &Manifest,
        manifest_sha256: [u8; 32],
        manifest_mtime: u64,
        records: &BTreeMap<String, Vec<u8>>,
        options: &SbomOptions,
    ) -> Sbom {
        let mut builder = Builder::default();
        conda_components(manifest, &mut builder);
        pip_components(manifest, records, &mut builder);
        go_components(manifest, &mut builder);
        let Builder {
            mut components,
            dependencies,
            ..
        } = builder;
        components.sort_by(|a, b| {
            (a.kind, &a.name, &a.version, &a.bom_ref)
                .cmp(&(b.kind, &b.name, &b.version, &b.bom_ref))
        });
        let mut dependencies = dependencies;
        let top: BTreeSet<String> = components
            .iter()
            .filter(|c| matches!(c.kind, Kind::Conda | Kind::Pypi | Kind::GoBinary))
            .map(|c| c.bom_ref.clone())
            .collect();
        if !top.is_empty() {
            dependencies.insert(BUNDLE_REF.to_string(), top);
        }
        let prefix = String::from_utf8_lossy(&manifest.source_prefix.0).into_owned();
        let name = prefix
            .rsplit('/')
            .find(|part| !part.is_empty())
            .unwrap_or("environment")
            .to_string();
        let subject = Subject {
            name,
            manifest_sha256: hex::encode(manifest_sha256),
            serial: format!("urn:uuid:{}", uuid_v8(&manifest_sha256)),
            source_date_epoch: options.source_date_epoch,
            created: options.source_date_epoch.unwrap_or(manifest_mtime),
            properties: vec![
                (
                    "gopack:manifest:sha256".into(),
                    hex::encode(manifest_sha256),
                ),
                ("gopack:platform".into(), manifest.platform.clone()),
                ("gopack:source-prefix".into(), prefix),
                (
                    "gopack:written-by".into(),
                    format!(
                        "gopack {} (manifest format {})",
                        manifest.gopack_version, manifest.format_version
                    ),
                ),
            ],
        };
        Sbom {
            subject,
            components,
            dependencies,
        }
    }
}

#[derive(Default)]
struct Builder {
    components: Vec<Component>,
    seen: HashMap<String, usize>,
    dependencies: BTreeMap<String, BTreeSet<String>>,
}

impl Builder {
    /// Adds `component` unless one with its `bom_ref` is there; returns the `bom_ref`.
    fn add(&mut self, component: Component) -> String {
        let bom_ref = component.bom_ref.clone();
        if !self.seen.contains_key(&bom_ref) {
            self.seen.insert(bom_ref.clone(), self.components.len());
            self.components.push(component);
        }
        bom_ref
    }

    fn edge(&mut self, from: &str, to: &str) {
        if from != to {
            self.dependencies
                .entry(from.to_string())
                .or_default()
                .insert(to.to_string());
        }
    }
}

fn property(name: &str, value: impl Into<String>) -> (String, String) {
    (name.to_string(), value.into())
}

fn conda_components(manifest: &Manifest, builder: &mut Builder) {
    let mut by_name: HashMap<String, String> = HashMap::new();
    let mut depends: Vec<(String, Vec<String>)> = Vec::new();
    for package in &manifest.packages {
        let mut qualifiers = vec![("build", package.build.as_str())];
        if let Some(channel) = &package.channel {
            qualifiers.push(("channel", channel));
        }
        if let Some(subdir) = &package.subdir {
            qualifiers.push(("subdir", subdir));
        }
        let purl = purl(
            "conda",
            None,
            &package.name,
            Some(&package.version),
            &qualifiers,
        );
        let mut properties = vec![property("gopack:conda:build", &package.build)];
        if let Some(channel) = &package.channel {
            properties.push(property("gopack:conda:channel", channel));
        }
        if let Some(subdir) = &package.subdir {
            properties.push(property("gopack:conda:subdir", subdir));
        }
        let hashes = [
            (HashAlg::Sha256, &package.sha256),
            (HashAlg::Md5, &package.md5),
        ]
        .into_iter()
        .filter_map(|(alg, text)| Hash::checked(alg, text.as_deref()?))
        .collect();
        let bom_ref = builder.add(Component {
            kind: Kind::Conda,
            bom_ref: purl.clone(),
            name: package.name.clone(),
            version: Some(package.version.clone()),
            purl: Some(purl),
            hashes,
            properties,
            files: Vec::new(),
        });
        by_name.insert(package.name.clone(), bom_ref.clone());
        depends.push((bom_ref, package.depends.clone()));
    }
    for (from, specs) in depends {
        for spec in specs {
            // A dependency is a match spec, `NAME [VERSION [BUILD]]` or `NAME>=1.2`; virtual
            // packages (`__glibc`) and packages the environment lacks have no component.
            let name: String = spec
                .trim()
                .chars()
                .take_while(|c| !c.is_whitespace() && !"<>=!~[;,".contains(*c))
                .collect();
            if let Some(to) = by_name.get(&name) {
                builder.edge(&from, to);
            }
        }
    }
}

fn pip_components(manifest: &Manifest, records: &BTreeMap<String, Vec<u8>>, builder: &mut Builder) {
    for package in &manifest.pip_packages {
        let normal = normalize_pypi(&package.name);
        let version = Some(package.version.as_str()).filter(|v| !v.is_empty());
        let purl = purl("pypi", None, &normal, version, &[]);
        let mut properties = vec![property("gopack:pip:dist-info", &package.dist_info)];
        if let Some(installer) = &package.installer {
            properties.push(property("gopack:pip:installer", installer));
        }
        let files = records
            .get(&package.dist_info)
            .map(|record| record_files(&package.dist_info, record))
            .unwrap_or_default();
        if records.contains_key(&package.dist_info) {
            properties.push(property("gopack:pip:record-files", files.len().to_string()));
        }
        builder.add(Component {
            kind: Kind::Pypi,
            bom_ref: purl.clone(),
            name: package.name.clone(),
            version: version.map(str::to_string),
            purl: Some(purl),
            hashes: Vec::new(),
            properties,
            files,
        });
    }
}

fn go_components(manifest: &Manifest, builder: &mut Builder) {
    for binary in &manifest.go_binaries {
        let info = &binary.build_info;
        let path = binary.path.display();
        let main = info.main_module.as_ref();
        let name = main
            .map(|module| module.path.clone())
            .or_else(|| info.main_package.clone())
            .unwrap_or_else(|| path.clone());
        let version = main
            .map(|module| module.version.clone())
            .filter(|version| !version.is_empty() && version != "(devel)");
        let mut properties = vec![
            property("gopack:path", &path),
            property(
                "gopack:origin",
                match binary.origin {
                    crate::go::Origin::Built => "built",
                    crate::go::Origin::Collected => "collected",
                },
            ),
            property("gopack:go:version", &info.go_version),
        ];
        if let Some(package) = &info.main_package {
            properties.push(property("gopack:go:main-package", package));
        }
        if let Some(module) = main {
            properties.push(property("gopack:go:main-module:version", &module.version));
            if let Some(sum) = &module.sum {
                properties.push(property("gopack:go:main-module:h1", sum));
            }
        }
        for (key, value) in &info.settings {
            properties.push(property(&format!("gopack:go:build:{key}"), value));
        }
        let binary_ref = builder.add(Component {
            kind: Kind::GoBinary,
            bom_ref: format!("go-binary:{path}"),
            name: name.clone(),
            version: version.clone(),
            purl: main.map(|_| golang_purl(&name, version.as_deref())),
            hashes: Hash::checked(HashAlg::Sha256, &binary.sha256)
                .into_iter()
                .collect(),
            properties,
            files: Vec::new(),
        });
        for module in &info.dependencies {
            let purl = golang_purl(&module.path, Some(&module.version));
            let mut properties = Vec::new();
            let mut sum = module.sum.clone();
            if let Some(replace) = &module.replace {
                properties.push(property(
                    "gopack:go:replaced-by",
                    format!("{} {}", replace.path, replace.version)
                        .trim_end()
                        .to_string(),
                ));
                // What was compiled in is the replacement, so its sum is the one that counts.
                sum = replace.sum.clone();
            }
            if let Some(sum) = sum {
                properties.insert(0, property("gopack:go:h1", sum));
            }
            let module_ref = builder.add(Component {
                kind: Kind::GoModule,
                bom_ref: purl.clone(),
                name: module.path.clone(),
                version: Some(module.version.clone()),
                purl: Some(purl),
                hashes: Vec::new(),
                properties,
                files: Vec::new(),
            });
            builder.edge(&binary_ref, &module_ref);
        }
        // `go1.26.8`, or `go1.26.8 X:boringcrypto` with experiments.
        let go_version = info.go_version.split_whitespace().next().unwrap_or("");
        if let Some(number) = go_version.strip_prefix("go") {
            let purl = purl("golang", None, "stdlib", Some(number), &[]);
            let stdlib_ref = builder.add(Component {
                kind: Kind::GoStdlib,
                bom_ref: purl.clone(),
                name: "stdlib".into(),
                version: Some(go_version.to_string()),
                purl: Some(purl),
                hashes: Vec::new(),
                properties: Vec::new(),
                files: Vec::new(),
            });
            builder.edge(&binary_ref, &stdlib_ref);
        }
    }
}

/// A package URL: `pkg:TYPE/[NAMESPACE/]NAME[@VERSION][?KEY=VALUE&…]`, every part
/// percent-encoded, qualifiers sorted by key (the canonical form).
pub fn purl(
    kind: &str,
    namespace: Option<&str>,
    name: &str,
    version: Option<&str>,
    qualifiers: &[(&str, &str)],
) -> String {
    let mut out = format!("pkg:{kind}/");
    if let Some(namespace) = namespace.filter(|n| !n.is_empty()) {
        for segment in namespace.split('/').filter(|s| !s.is_empty()) {
            out.push_str(&percent_encode(segment));
            out.push('/');
        }
    }
    out.push_str(&percent_encode(name));
    if let Some(version) = version.filter(|v| !v.is_empty()) {
        out.push('@');
        out.push_str(&percent_encode(version));
    }
    let mut qualifiers: Vec<&(&str, &str)> =
        qualifiers.iter().filter(|(_, v)| !v.is_empty()).collect();
    qualifiers.sort();
    for (index, (key, value)) in qualifiers.into_iter().enumerate() {
        out.push(if index == 0 { '?' } else { '&' });
        out.push_str(key);
        out.push('=');
        out.push_str(&percent_encode(value));
    }
    out
}

/// `pkg:golang/…` for a module path: the namespace is the path up to its last `/`, both
/// lowercased as the purl type definition for `golang` asks.
pub fn golang_purl(module: &str, version: Option<&str>) -> String {
    let lower = module.to_lowercase();
    let (namespace, name) = match lower.rsplit_once('/') {
        Some((namespace, name)) => (Some(namespace), name),
        None => (None, lower.as_str()),
    };
    let version = version.filter(|v| *v != "(devel)");
    purl("golang", namespace, name, version, &[])
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A distribution name as the `pypi` purl type wants it: lowercase, runs of `-`, `_` and `.`
/// as one `-` (PEP 503).
pub fn normalize_pypi(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut separator = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            separator = true;
            continue;
        }
        if separator && !out.is_empty() {
            out.push('-');
        }
        separator = false;
        out.extend(c.to_lowercase());
    }
    out
}

/// A UUID made from a digest: its first 16 bytes with the version set to 8 (custom) and the
/// RFC 4122 variant, formatted `8-4-4-4-12`.
pub fn uuid_v8(digest: &[u8; 32]) -> String {
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

pub use crate::timestamp::rfc3339;

/// The files a `RECORD` lists, relative to the environment's root, with the hashes it gives.
/// Rows are CSV (`path,ALG=BASE64URL,size`); paths are relative to the directory holding the
/// `.dist-info`; rows that are absolute or lead outside the environment are left out.
pub fn record_files(dist_info: &str, record: &[u8]) -> Vec<ComponentFile> {
    let base = dist_info.rsplit_once('/').map_or("", |(base, _)| base);
    let mut files = Vec::new();
    for line in String::from_utf8_lossy(record).lines() {
        let fields = csv_fields(line);
        let Some(path) = fields
            .first()
            .filter(|p| !p.is_empty() && !p.starts_with('/'))
        else {
            continue;
        };
        let joined = if base.is_empty() {
            path.clone()
        } else {
            format!("{base}/{path}")
        };
        let Some(path) = resolve_dots(&joined) else {
            continue;
        };
        let hash = fields.get(1).and_then(|field| record_hash(field));
        files.push(ComponentFile { path, hash });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files.dedup_by(|a, b| a.path == b.path);
    files
}

/// `a/b/../c` → `a/c`; `None` when `..` leads above the root.
fn resolve_dots(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            part => parts.push(part),
        }
    }
    let joined = parts.join("/");
    normalize_path(joined.as_bytes()).ok()?;
    Some(joined)
}

/// The fields of one CSV line (`"` quotes, `""` inside quotes).
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if field.is_empty() => quoted = true,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// `sha256=BASE64URL` as a [`struct@Hash`].
fn record_hash(field: &str) -> Option<Hash> {
    let (name, encoded) = field.split_once('=')?;
    let alg = match name {
        "sha256" => HashAlg::Sha256,
        "sha384" => HashAlg::Sha384,
        "sha512" => HashAlg::Sha512,
        _ => return None,
    };
    let bytes = base64url_decode(encoded)?;
    Hash::checked(alg, &hex::encode(bytes))
}

/// Decodes unpadded (or padded) base64url, as `RECORD` writes digests.
fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut buffer = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Some(out)
}

fn load_bundle(path: &Path) -> Result<Loaded> {
    let mut reader = open_bundle(path)?;
    let leading = read_leading(&mut reader)?;
    let manifest = leading.manifest;
    let sha256: [u8; 32] = Sha256::digest(&leading.bytes).into();
    let bad = |message: String| ArchiveError::BadBundle {
        path: path.to_path_buf(),
        message,
    };
    // The packed RECORD of each pip distribution, with the sha256 the manifest gives it.
    let listed: HashMap<&[u8], crate::manifest::Sha256> = manifest
        .files
        .iter()
        .filter_map(|file| Some((file.path.0.as_slice(), file.sha256?)))
        .collect();
    let mut wanted: HashMap<Vec<u8>, (String, String)> = HashMap::new();
    for package in &manifest.pip_packages {
        let record = format!("{}/RECORD", package.dist_info);
        if let Some(sha) = listed.get(record.as_bytes()) {
            wanted.insert(
                record.into_bytes(),
                (package.dist_info.clone(), sha.to_string()),
            );
        }
    }
    let mut records = BTreeMap::new();
    while !wanted.is_empty() {
        let Some(member) = reader.next_member()? else {
            break;
        };
        if member.kind != MemberKind::File || member.size > RECORD_LIMIT {
            continue;
        }
        let Ok(name) = normalize_path(&member.path) else {
            continue;
        };
        let Some(relative) = name.strip_prefix(leading.arcroot.as_slice()) else {
            continue;
        };
        let Some((dist_info, sha)) = wanted.remove(relative) else {
            continue;
        };
        let mut content = vec![0u8; member.size as usize];
        let mut filled = 0;
        while filled < content.len() {
            let read = reader.read_content(&mut content[filled..])?;
            if read == 0 {
                break;
            }
            filled += read;
        }
        if hex::encode(Sha256::digest(&content)) != sha {
            return Err(bad(format!(
                "`{}` does not match its sha256 in the manifest",
                String::from_utf8_lossy(relative)
            ))
            .into());
        }
        records.insert(dist_info, content);
    }
    Ok(Loaded {
        manifest,
        sha256,
        mtime: leading.member.mtime,
        records,
    })
}

fn load_dir(root: &Path) -> Result<Loaded> {
    let (manifest, bytes, mtime) = super::verify::read_carried_manifest(root)?;
    let sha256: [u8; 32] = Sha256::digest(&bytes).into();
    let from = manifest.relocation.source_prefix.0.clone();
    let now = super::verify::files_prefix(root, &manifest)?;
    let mut records = BTreeMap::new();
    for package in &manifest.pip_packages {
        let relative = format!("{}/RECORD", package.dist_info);
        let Some(listed) = manifest
            .files
            .iter()
            .find(|file| file.path.0 == relative.as_bytes())
            .and_then(|file| file.sha256)
        else {
            continue;
        };
        let path = root.join(&relative);
        let content = fs_err::read(&path)
            .map_err(|source| Error::io(format!("cannot read `{}`", path.display()), source))?;
        let matches = |bytes: &[u8]| <[u8; 32]>::from(Sha256::digest(bytes)) == listed.0;
        let packed = if matches(&content) {
            content
        } else {
            // A RECORD that held the prefix was relocated with the rest: take it back.
            let record = manifest
                .relocation
                .text
                .iter()
                .find(|record| record.path.0 == relative.as_bytes());
            let back = record.map(|record| {
                crate::relocate::text::replace_all(
                    &content,
                    &record.quoting.escape(&now),
                    &record.quoting.escape(&from),
                )
            });
            match back {
                Some(back) if matches(&back) => back,
                _ => return Err(ProvenanceError::RecordChanged { path }.into()),
            }
        };
        records.insert(package.dist_info.clone(), packed);
    }
    Ok(Loaded {
        manifest,
        sha256,
        mtime,
        records,
    })
}

/// Reads at most [`MANIFEST_LIMIT`] bytes of `DIR/.gopack/manifest.json`.
pub(crate) fn read_manifest_file(root: &Path) -> std::io::Result<(Vec<u8>, u64)> {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let path = root.join(MANIFEST_PATH);
    let file = crate::error::open_file(&path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("it is not a regular file"));
    }
    let mut bytes = Vec::new();
    file.take(MANIFEST_LIMIT + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MANIFEST_LIMIT {
        return Err(std::io::Error::other(format!(
            "it is larger than {} MiB",
            MANIFEST_LIMIT >> 20
        )));
    }
    Ok((bytes, u64::try_from(meta.mtime()).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purls_are_canonical() {
        assert_eq!(
            purl(
                "conda",
                None,
                "numpy",
                Some("1.26.4"),
                &[
                    ("subdir", "linux-64"),
                    ("build", "py311h_0"),
                    ("channel", "conda-forge")
                ]
            ),
            "pkg:conda/numpy@1.26.4?build=py311h_0&channel=conda-forge&subdir=linux-64"
        );
        assert_eq!(
            golang_purl("github.com/BurntSushi/toml", Some("v1.3.2+incompatible")),
            "pkg:golang/github.com/burntsushi/toml@v1.3.2%2Bincompatible"
        );
        assert_eq!(
            golang_purl("example.com/app", Some("(devel)")),
            "pkg:golang/example.com/app"
        );
        assert_eq!(
            purl(
                "pypi",
                None,
                &normalize_pypi("Foo_Bar.baz"),
                Some("1.0"),
                &[]
            ),
            "pkg:pypi/foo-bar-baz@1.0"
        );
    }

    #[test]
    fn uuids_have_version_8_and_the_rfc_variant() {
        let uuid = uuid_v8(&[0xff; 32]);
        assert_eq!(uuid, "ffffffff-ffff-8fff-bfff-ffffffffffff");
        assert_eq!(uuid_v8(&[0; 32]), "00000000-0000-8000-8000-000000000000");
    }

    #[test]
    fn record_rows_become_root_relative_files_with_hex_digests() {
        let record = b"foo/__init__.py,sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU,0\n\
\"foo/a,b.py\",sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU,0\n\
../../../bin/foo,,\n\
../../../../etc/passwd,,\n\
/abs/x,,\n\
foo-1.0.dist-info/RECORD,,\n";
        let files = record_files("lib/python3.11/site-packages/foo-1.0.dist-info", record);
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let paths: Vec<(&str, Option<&str>)> = files
            .iter()
            .map(|f| (f.path.as_str(), f.hash.as_ref().map(|h| h.hex.as_str())))
            .collect();
        assert_eq!(
            paths,
            vec![
                ("bin/foo", None),
                (
                    "lib/python3.11/site-packages/foo-1.0.dist-info/RECORD",
                    None
                ),
                ("lib/python3.11/site-packages/foo/__init__.py", Some(empty)),
                ("lib/python3.11/site-packages/foo/a,b.py", Some(empty)),
            ]
        );
    }

    #[test]
    fn formats_follow_file_names() {
        assert_eq!(
            SbomFormat::from_path(Path::new("x/b.spdx.json")),
            SbomFormat::SpdxJson
        );
        assert_eq!(
            SbomFormat::from_path(Path::new("b.cdx.json")),
            SbomFormat::CycloneDxJson
        );
        assert_eq!(
            SbomFormat::from_name("spdx-json"),
            Some(SbomFormat::SpdxJson)
        );
        assert_eq!(SbomFormat::from_name("xml"), None);
    }
}
