#!/usr/bin/env python3
"""Checks gopack's SBOM documents with real validators (used by tests/provenance.rs).

usage: sbom_validate.py cyclonedx|spdx FILE

- cyclonedx: the strict JSON validator of cyclonedx-python-lib, which checks the document
  against the CycloneDX 1.5 JSON schema the library ships (with its SPDX license and JSF
  sub-schemas), formats included.
- spdx: the SPDX project's spdx-tools: parses the JSON document and runs its full SPDX 2.3
  validation (identifiers, references of relationships, checksums, purl locators, ...). No
  package on PyPI ships the SPDX 2.3 JSON schema itself, so the keys gopack writes are also
  checked here against the field names of the SPDX 2.3 JSON format, which the parser would
  otherwise ignore.

Exit codes: 0 valid, 1 invalid (reasons on stderr), 3 a validator is not installed.
"""

import json
import sys

SPDX_KEYS = {
    "document": {
        "spdxVersion", "dataLicense", "SPDXID", "name", "documentNamespace",
        "creationInfo", "packages", "relationships", "externalDocumentRefs", "comment",
        "documentDescribes", "files", "snippets", "annotations", "hasExtractedLicensingInfos",
    },
    "creationInfo": {"created", "creators", "comment", "licenseListVersion"},
    "package": {
        "SPDXID", "name", "versionInfo", "packageFileName", "supplier", "originator",
        "downloadLocation", "filesAnalyzed", "packageVerificationCode", "checksums",
        "homepage", "sourceInfo", "licenseConcluded", "licenseInfoFromFiles",
        "licenseDeclared", "licenseComments", "copyrightText", "summary", "description",
        "comment", "externalRefs", "attributionTexts", "primaryPackagePurpose",
        "releaseDate", "builtDate", "validUntilDate", "hasFiles", "annotations",
    },
    "checksum": {"algorithm", "checksumValue"},
    "externalRef": {"referenceCategory", "referenceType", "referenceLocator", "comment"},
    "relationship": {"spdxElementId", "relationshipType", "relatedSpdxElement", "comment"},
}


def unknown_keys(where, value, allowed):
    return [f"{where}: unknown key `{key}`" for key in value if key not in allowed]


def spdx_key_problems(document):
    problems = unknown_keys("document", document, SPDX_KEYS["document"])
    problems += unknown_keys("creationInfo", document.get("creationInfo", {}),
                             SPDX_KEYS["creationInfo"])
    for package in document.get("packages", []):
        where = f"package {package.get('SPDXID')}"
        problems += unknown_keys(where, package, SPDX_KEYS["package"])
        for checksum in package.get("checksums", []):
            problems += unknown_keys(where + " checksum", checksum, SPDX_KEYS["checksum"])
        for ref in package.get("externalRefs", []):
            problems += unknown_keys(where + " externalRef", ref, SPDX_KEYS["externalRef"])
    for relationship in document.get("relationships", []):
        problems += unknown_keys("relationship", relationship, SPDX_KEYS["relationship"])
    return problems


def validate_cyclonedx(path):
    try:
        from cyclonedx.schema import SchemaVersion
        from cyclonedx.validation.json import JsonStrictValidator
    except ImportError as err:
        print(f"cyclonedx-python-lib is not installed: {err}", file=sys.stderr)
        return 3
    with open(path, encoding="utf-8") as file:
        text = file.read()
    errors = JsonStrictValidator(SchemaVersion.V1_5).validate_str(text, all_errors=True)
    errors = list(errors or [])
    for error in errors:
        # `data` is jsonschema's error: its message and where, without the schema dump.
        detail = getattr(error, "data", None)
        if detail is not None and hasattr(detail, "message"):
            where = "/".join(str(part) for part in detail.absolute_path)
            print(f"CycloneDX 1.5: {detail.message} (at /{where})", file=sys.stderr)
        else:
            print(f"CycloneDX 1.5: {error}", file=sys.stderr)
    return 1 if errors else 0


def validate_spdx(path):
    try:
        from spdx_tools.spdx.parser.error import SPDXParsingError
        from spdx_tools.spdx.parser.parse_anything import parse_file
        from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document
    except ImportError as err:
        print(f"spdx-tools is not installed: {err}", file=sys.stderr)
        return 3
    with open(path, encoding="utf-8") as file:
        problems = spdx_key_problems(json.load(file))
    try:
        document = parse_file(path)
    except SPDXParsingError as err:
        problems += [f"parse: {message}" for message in err.get_messages()]
    else:
        problems += [
            f"{message.context.spdx_id or message.context.element_type}: "
            f"{message.validation_message}"
            for message in validate_full_spdx_document(document, "SPDX-2.3")
        ]
    for problem in problems:
        print(f"SPDX 2.3: {problem}", file=sys.stderr)
    return 1 if problems else 0


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("cyclonedx", "spdx"):
        print(__doc__, file=sys.stderr)
        return 2
    if sys.argv[1] == "cyclonedx":
        return validate_cyclonedx(sys.argv[2])
    return validate_spdx(sys.argv[2])


if __name__ == "__main__":
    sys.exit(main())
