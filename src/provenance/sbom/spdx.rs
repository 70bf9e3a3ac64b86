//! [`Sbom`] as SPDX 2.3 JSON: one package for the bundle, which the document `DESCRIBES` and
//! which `CONTAINS` every conda package, pip distribution and Go binary; one package per
//! component with its purl as a `PACKAGE-MANAGER` reference and its checksums; `DEPENDS_ON`
//! for the edges. SPDX has no properties: a component's `gopack:` facts go into its
//! `comment`, one `name: value` per line. Nothing is known about licenses, so the license
//! and copyright fields say `NOASSERTION`; files are not listed (SPDX requires a SHA-1 of
//! each, which gopack does not have).

use std::collections::HashMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{BUNDLE_REF, Component, HashAlg, Kind, Sbom, rfc3339};

const NOASSERTION: &str = "NOASSERTION";
const BUNDLE_ID: &str = "SPDXRef-Bundle";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Document<'a> {
    spdx_version: &'static str,
    data_license: &'static str,
    #[serde(rename = "SPDXID")]
    spdx_id: &'static str,
    name: String,
    document_namespace: String,
    creation_info: CreationInfo,
    packages: Vec<Package<'a>>,
    relationships: Vec<Relationship>,
}

#[derive(Serialize)]
struct CreationInfo {
    created: String,
    creators: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Package<'a> {
    #[serde(rename = "SPDXID")]
    spdx_id: String,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    version_info: Option<&'a str>,
    download_location: &'static str,
    files_analyzed: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    checksums: Vec<Checksum<'a>>,
    license_concluded: &'static str,
    license_declared: &'static str,
    copyright_text: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    external_refs: Vec<ExternalRef<'a>>,
    primary_package_purpose: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    comment: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Checksum<'a> {
    algorithm: &'static str,
    checksum_value: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExternalRef<'a> {
    reference_category: &'static str,
    reference_type: &'static str,
    reference_locator: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Relationship {
    spdx_element_id: String,
    relationship_type: &'static str,
    related_spdx_element: String,
}

/// An SPDX identifier for a component: its kind and name (only letters, digits, `.` and `-`
/// are allowed) and a digest of its `bom_ref`, so it is unique and stable.
fn spdx_id(component: &Component) -> String {
    let name: String = component
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let digest = hex::encode(Sha256::digest(component.bom_ref.as_bytes()));
    format!(
        "SPDXRef-{}-{}-{}",
        component.kind.label(),
        name,
        &digest[..8]
    )
}

fn comment(properties: &[(String, String)]) -> Option<String> {
    (!properties.is_empty()).then(|| {
        properties
            .iter()
            .map(|(name, value)| format!("{name}: {value}"))
            .collect::<Vec<_>>()
            .join("\n")
    })
}

fn package(component: &Component) -> Package<'_> {
    Package {
        spdx_id: spdx_id(component),
        name: &component.name,
        version_info: component.version.as_deref(),
        download_location: NOASSERTION,
        files_analyzed: false,
        checksums: component
            .hashes
            .iter()
            .map(|hash| Checksum {
                algorithm: match hash.alg {
                    HashAlg::Md5 => "MD5",
                    HashAlg::Sha256 => "SHA256",
                    HashAlg::Sha384 => "SHA384",
                    HashAlg::Sha512 => "SHA512",
                },
                checksum_value: &hash.hex,
            })
            .collect(),
        license_concluded: NOASSERTION,
        license_declared: NOASSERTION,
        copyright_text: NOASSERTION,
        external_refs: component
            .purl
            .iter()
            .map(|purl| ExternalRef {
                reference_category: "PACKAGE-MANAGER",
                reference_type: "purl",
                reference_locator: purl,
            })
            .collect(),
        primary_package_purpose: match component.kind {
            Kind::GoBinary => "APPLICATION",
            Kind::Conda | Kind::Pypi | Kind::GoModule | Kind::GoStdlib => "LIBRARY",
        },
        comment: comment(&component.properties),
    }
}

/// The document, pretty JSON with a trailing newline.
pub fn render(sbom: &Sbom) -> Vec<u8> {
    let subject = &sbom.subject;
    let ids: HashMap<&str, String> = sbom
        .components
        .iter()
        .map(|component| (component.bom_ref.as_str(), spdx_id(component)))
        .chain(std::iter::once((BUNDLE_REF, BUNDLE_ID.to_string())))
        .collect();
    let mut packages = vec![Package {
        spdx_id: BUNDLE_ID.into(),
        name: &subject.name,
        version_info: None,
        download_location: NOASSERTION,
        files_analyzed: false,
        checksums: Vec::new(),
        license_concluded: NOASSERTION,
        license_declared: NOASSERTION,
        copyright_text: NOASSERTION,
        external_refs: Vec::new(),
        primary_package_purpose: "ARCHIVE",
        comment: comment(&subject.properties),
    }];
    packages.extend(sbom.components.iter().map(package));
    let mut relationships = vec![Relationship {
        spdx_element_id: "SPDXRef-DOCUMENT".into(),
        relationship_type: "DESCRIBES",
        related_spdx_element: BUNDLE_ID.into(),
    }];
    for (from, targets) in &sbom.dependencies {
        let Some(from_id) = ids.get(from.as_str()) else {
            continue;
        };
        let relationship_type = if from == BUNDLE_REF {
            "CONTAINS"
        } else {
            "DEPENDS_ON"
        };
        for to in targets {
            if let Some(to_id) = ids.get(to.as_str()) {
                relationships.push(Relationship {
                    spdx_element_id: from_id.clone(),
                    relationship_type,
                    related_spdx_element: to_id.clone(),
                });
            }
        }
    }
    let document = Document {
        spdx_version: "SPDX-2.3",
        data_license: "CC0-1.0",
        spdx_id: "SPDXRef-DOCUMENT",
        name: format!("gopack bundle {}", subject.name),
        document_namespace: subject.serial.clone(),
        creation_info: CreationInfo {
            created: rfc3339(subject.created),
            creators: vec![format!("Tool: gopack-{}", env!("CARGO_PKG_VERSION"))],
        },
        packages,
        relationships,
    };
    #[expect(
        clippy::expect_used,
        reason = "a document of strings serialises into memory"
    )]
    let mut out = serde_json::to_vec_pretty(&document).expect("the document serializes");
    out.push(b'\n');
    out
}
