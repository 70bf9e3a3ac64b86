//! [`Sbom`] as CycloneDX 1.5 JSON: `metadata.component` is the bundle, `components` every
//! package and module (a pip distribution's `RECORD` files nested in it as `file` components),
//! `dependencies` the edges, the bundle's own listing what it holds.

use serde::Serialize;

use super::{BUNDLE_REF, Component, Hash, HashAlg, Kind, Sbom, rfc3339};

const SCHEMA: &str = "http://cyclonedx.org/schema/bom-1.5.schema.json";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Bom<'a> {
    #[serde(rename = "$schema")]
    schema: &'static str,
    bom_format: &'static str,
    spec_version: &'static str,
    serial_number: &'a str,
    version: u32,
    metadata: Metadata<'a>,
    components: Vec<Item<'a>>,
    dependencies: Vec<Dependency<'a>>,
}

#[derive(Serialize)]
struct Metadata<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp: Option<String>,
    tools: Tools<'a>,
    component: Item<'a>,
}

#[derive(Serialize)]
struct Tools<'a> {
    components: Vec<Item<'a>>,
}

#[derive(Serialize)]
struct Item<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(rename = "bom-ref", skip_serializing_if = "Option::is_none")]
    bom_ref: Option<&'a str>,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    hashes: Vec<HashItem<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    purl: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    properties: Vec<Property<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    components: Vec<Item<'a>>,
}

#[derive(Serialize)]
struct HashItem<'a> {
    alg: &'static str,
    content: &'a str,
}

#[derive(Serialize)]
struct Property<'a> {
    name: &'a str,
    value: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Dependency<'a> {
    #[serde(rename = "ref")]
    reference: &'a str,
    depends_on: Vec<&'a str>,
}

fn alg_name(alg: HashAlg) -> &'static str {
    match alg {
        HashAlg::Md5 => "MD5",
        HashAlg::Sha256 => "SHA-256",
        HashAlg::Sha384 => "SHA-384",
        HashAlg::Sha512 => "SHA-512",
    }
}

fn hashes(hashes: &[Hash]) -> Vec<HashItem<'_>> {
    hashes
        .iter()
        .map(|hash| HashItem {
            alg: alg_name(hash.alg),
            content: &hash.hex,
        })
        .collect()
}

fn properties(properties: &[(String, String)]) -> Vec<Property<'_>> {
    properties
        .iter()
        .map(|(name, value)| Property { name, value })
        .collect()
}

fn item(component: &Component) -> Item<'_> {
    Item {
        kind: match component.kind {
            Kind::GoBinary => "application",
            Kind::Conda | Kind::Pypi | Kind::GoModule | Kind::GoStdlib => "library",
        },
        bom_ref: Some(&component.bom_ref),
        name: &component.name,
        version: component.version.as_deref(),
        hashes: hashes(&component.hashes),
        purl: component.purl.as_deref(),
        properties: properties(&component.properties),
        components: component
            .files
            .iter()
            .map(|file| Item {
                kind: "file",
                bom_ref: None,
                name: &file.path,
                version: None,
                hashes: hashes(file.hash.as_slice()),
                purl: None,
                properties: Vec::new(),
                components: Vec::new(),
            })
            .collect(),
    }
}

/// The document, pretty JSON with a trailing newline.
pub fn render(sbom: &Sbom) -> Vec<u8> {
    let subject = &sbom.subject;
    let bom = Bom {
        schema: SCHEMA,
        bom_format: "CycloneDX",
        spec_version: "1.5",
        serial_number: &subject.serial,
        version: 1,
        metadata: Metadata {
            timestamp: subject.source_date_epoch.map(rfc3339),
            tools: Tools {
                components: vec![Item {
                    kind: "application",
                    bom_ref: None,
                    name: "gopack",
                    version: Some(env!("CARGO_PKG_VERSION")),
                    hashes: Vec::new(),
                    purl: None,
                    properties: Vec::new(),
                    components: Vec::new(),
                }],
            },
            component: Item {
                kind: "application",
                bom_ref: Some(BUNDLE_REF),
                name: &subject.name,
                version: None,
                hashes: Vec::new(),
                purl: None,
                properties: properties(&subject.properties),
                components: Vec::new(),
            },
        },
        components: sbom.components.iter().map(item).collect(),
        dependencies: sbom
            .dependencies
            .iter()
            .map(|(from, to)| Dependency {
                reference: from,
                depends_on: to.iter().map(String::as_str).collect(),
            })
            .collect(),
    };
    #[expect(
        clippy::expect_used,
        reason = "a document of strings serialises into memory"
    )]
    let mut out = serde_json::to_vec_pretty(&bom).expect("the document serializes");
    out.push(b'\n');
    out
}
