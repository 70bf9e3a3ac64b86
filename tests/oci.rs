//! `gopack create --format oci`: images checked member by member in Rust on small synthetic
//! environments (every digest, both index forms, layer contents, config, determinism, the Go
//! layer, bases made by hand, errors), then once end to end on a real Debian base made with
//! mmdebstrap and umoci: skopeo inspects and copies the image, umoci unpacks it, and Python
//! with NumPy, the C program, a console script, `go env GOROOT` and the Go health check run in
//! a chroot of it; podman loads and runs it.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use serde_json::{Value, json};
use sha2::Digest;

use crate::util::synthetic::{SyntheticEnv, host_goarch};
use crate::util::*;

// ---------------------------------------------------------------------------------------------
// Reading images in the test.

/// An image read whole into memory (synthetic images are small).
struct Image {
    files: BTreeMap<String, Vec<u8>>,
}

impl Image {
    fn read(path: &Path) -> Image {
        let mut files = BTreeMap::new();
        if path.is_dir() {
            for entry in walkdir::WalkDir::new(path).min_depth(1) {
                let entry = entry.unwrap();
                if entry.file_type().is_file() {
                    let name = entry
                        .path()
                        .strip_prefix(path)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned();
                    files.insert(name, std::fs::read(entry.path()).unwrap());
                }
            }
        } else {
            let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
            for entry in archive.entries().unwrap() {
                let mut entry = entry.unwrap();
                let name = entry.path().unwrap().to_string_lossy().into_owned();
                assert_eq!(entry.header().uid().unwrap(), 0, "{name}");
                if entry.header().entry_type().is_file() {
                    let mut bytes = Vec::new();
                    entry.read_to_end(&mut bytes).unwrap();
                    assert!(files.insert(name.clone(), bytes).is_none(), "{name} twice");
                }
            }
        }
        Image { files }
    }

    fn json(&self, name: &str) -> Value {
        serde_json::from_slice(self.files.get(name).unwrap_or_else(|| panic!("no {name}"))).unwrap()
    }

    fn blob(&self, digest: &str) -> &[u8] {
        let name = format!("blobs/sha256/{}", digest.strip_prefix("sha256:").unwrap());
        self.files
            .get(&name)
            .unwrap_or_else(|| panic!("no blob {name}"))
    }

    fn manifest(&self) -> Value {
        let index = self.json("index.json");
        let digest = index["manifests"][0]["digest"]
            .as_str()
            .unwrap()
            .to_string();
        serde_json::from_slice(self.blob(&digest)).unwrap()
    }

    fn config(&self) -> Value {
        let digest = self.manifest()["config"]["digest"]
            .as_str()
            .unwrap()
            .to_string();
        serde_json::from_slice(self.blob(&digest)).unwrap()
    }

    /// (role annotation, digest, uncompressed tar) of each layer.
    fn layers(&self) -> Vec<(String, String, Vec<u8>)> {
        self.manifest()["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|layer| {
                let digest = layer["digest"].as_str().unwrap().to_string();
                let tar = decompress(layer["mediaType"].as_str().unwrap(), self.blob(&digest));
                let role = layer["annotations"]["io.gopack.layer"]
                    .as_str()
                    .unwrap_or("base")
                    .to_string();
                (role, digest, tar)
            })
            .collect()
    }

    fn layer(&self, role: &str) -> Vec<u8> {
        self.layers()
            .into_iter()
            .find(|(r, _, _)| r == role)
            .unwrap_or_else(|| panic!("no {role} layer"))
            .2
    }

    fn layer_digest(&self, role: &str) -> String {
        self.layers()
            .into_iter()
            .find(|(r, _, _)| r == role)
            .unwrap()
            .1
    }
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

fn decompress(media_type: &str, blob: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if media_type.ends_with("+gzip") {
        flate2::read::GzDecoder::new(blob)
            .read_to_end(&mut out)
            .unwrap();
    } else if media_type.ends_with("+zstd") {
        zstd::stream::read::Decoder::new(blob)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
    } else {
        out = blob.to_vec();
    }
    out
}

/// A layer's members: path → (type flag, mode, content).
fn members(tar: &[u8]) -> Members {
    members_in_order(tar).0
}

/// [`members`] of one of gopack's layers, which holds every parent before what it holds.
fn ours(tar: &[u8]) -> Members {
    let (members, order) = members_in_order(tar);
    for (i, path) in order.iter().enumerate() {
        if let Some((parent, _)) = path.trim_end_matches('/').rsplit_once('/') {
            let parent = format!("{parent}/");
            let at = order.iter().position(|p| *p == parent);
            assert!(
                at.is_some_and(|at| at < i),
                "{parent} missing or after {path}"
            );
        }
    }
    members
}

type Members = BTreeMap<String, (u8, u32, Vec<u8>)>;

fn members_in_order(tar: &[u8]) -> (Members, Vec<String>) {
    let mut out = BTreeMap::new();
    let mut order = Vec::new();
    for entry in tar::Archive::new(tar).entries().unwrap() {
        let mut entry = entry.unwrap();
        let header = entry.header().clone();
        assert_eq!((header.uid().unwrap(), header.gid().unwrap()), (0, 0));
        assert_eq!(header.username_bytes().unwrap_or_default(), b"");
        let path = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
        let mut content = Vec::new();
        entry.read_to_end(&mut content).unwrap();
        order.push(path.clone());
        out.insert(
            path,
            (
                header.entry_type().as_byte(),
                header.mode().unwrap(),
                content,
            ),
        );
    }
    (out, order)
}

/// Checks what skopeo would: every blob's name is its digest, the manifest's and
/// `manifest.json`'s references exist with the right sizes, and the config's diff_ids are the
/// digests of the uncompressed layers.
fn check_digests(image: &Image, tag: &str) {
    for (name, bytes) in &image.files {
        if let Some(hex) = name.strip_prefix("blobs/sha256/") {
            assert_eq!(sha256(bytes), format!("sha256:{hex}"), "{name}");
        }
    }
    assert_eq!(
        image.files["oci-layout"],
        br#"{"imageLayoutVersion":"1.0.0"}"#
    );
    let index = image.json("index.json");
    assert_eq!(index["schemaVersion"], 2);
    let entry = &index["manifests"][0];
    let (name, tag_only) = tag.rsplit_once(':').unwrap();
    assert_eq!(
        entry["annotations"]["org.opencontainers.image.ref.name"],
        tag_only
    );
    assert_eq!(
        entry["annotations"]["io.containerd.image.name"],
        format!("{name}:{tag_only}")
    );
    let manifest_bytes = image.blob(entry["digest"].as_str().unwrap());
    assert_eq!(entry["size"], manifest_bytes.len());
    let manifest = image.manifest();
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    for descriptor in
        std::iter::once(&manifest["config"]).chain(manifest["layers"].as_array().unwrap())
    {
        let blob = image.blob(descriptor["digest"].as_str().unwrap());
        assert_eq!(descriptor["size"], blob.len());
    }
    let config = image.config();
    let diff_ids: Vec<String> = image
        .layers()
        .iter()
        .map(|(_, _, tar)| sha256(tar))
        .collect();
    assert_eq!(config["rootfs"]["diff_ids"], json!(diff_ids));
    assert_eq!(config["rootfs"]["type"], "layers");
}

// ---------------------------------------------------------------------------------------------
// Environments.

fn synthetic(scratch: &Scratch) -> PathBuf {
    SyntheticEnv::new(&scratch.path("env"))
        .text("etc/a.txt", "x=@PREFIX@\n")
        .file("bin/tool", b"#!/bin/sh\necho hi from @PREFIX@\n", 0o755)
        .text(
            "etc/conda/env_vars.d/data.json",
            r#"{"MY_DATA": "@PREFIX@/share/data"}"#,
        )
        .symlink("bin/tool-link", "tool")
        .build()
}

fn image_pack(env: &Path, output: &Path, args: &[&str]) -> String {
    pack(env, output, &[&["-q"], args].concat())
}

// ---------------------------------------------------------------------------------------------
// Synthetic environments.

#[test]
fn image_is_an_oci_layout_and_a_docker_archive_with_every_digest_right() {
    let scratch = Scratch::new();
    let env = synthetic(&scratch);
    // `.oci.tar` picks the format by name.
    let output = scratch.path("app.oci.tar");
    image_pack(&env, &output, &["--tag", "team/app:1.0", "--cmd", "tool"]);
    let image = Image::read(&output);
    check_digests(&image, "team/app:1.0");

    let docker = image.json("manifest.json");
    let manifest = image.manifest();
    assert_eq!(docker[0]["RepoTags"], json!(["team/app:1.0"]));
    assert_eq!(
        docker[0]["Config"],
        format!(
            "blobs/sha256/{}",
            manifest["config"]["digest"]
                .as_str()
                .unwrap()
                .trim_start_matches("sha256:")
        )
    );
    let layer_paths: Vec<String> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            format!(
                "blobs/sha256/{}",
                l["digest"].as_str().unwrap().trim_start_matches("sha256:")
            )
        })
        .collect();
    assert_eq!(docker[0]["Layers"], json!(layer_paths));

    // No Go binaries: the environment and metadata layers, gzip.
    let roles: Vec<String> = image
        .layers()
        .into_iter()
        .map(|(role, _, _)| role)
        .collect();
    assert_eq!(roles, ["environment", "metadata"]);
    for layer in manifest["layers"].as_array().unwrap() {
        assert_eq!(
            layer["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
    }

    // The environment under /opt/env (the default), relocated there; gopack's files apart.
    let env_layer = ours(&image.layer("environment"));
    assert!(env_layer.contains_key("opt/"), "{:?}", env_layer.keys());
    assert!(env_layer.contains_key("opt/env/"));
    assert_eq!(env_layer["opt/env/etc/a.txt"].2, b"x=/opt/env\n");
    assert_eq!(env_layer["opt/env/bin/tool"].1, 0o755);
    assert_eq!(
        env_layer["opt/env/bin/tool"].2,
        b"#!/bin/sh\necho hi from /opt/env\n"
    );
    assert_eq!(env_layer["opt/env/bin/tool-link"].0, b'2');
    assert!(
        env_layer
            .keys()
            .all(|path| path == "opt/" || path.starts_with("opt/env/"))
    );
    assert!(
        !env_layer
            .keys()
            .any(|path| path.contains(".gopack") || path.ends_with("bin/activate"))
    );
    let metadata = ours(&image.layer("metadata"));
    for path in [
        "opt/env/.gopack/manifest.json",
        "opt/env/.gopack/prefix",
        "opt/env/bin/activate",
        "opt/env/bin/gopack-unpack",
    ] {
        assert!(
            metadata.contains_key(path),
            "{path} not in {:?}",
            metadata.keys()
        );
    }
    assert_eq!(metadata["opt/env/.gopack/prefix"].2, b"/opt/env");
    assert_eq!(
        manifest["annotations"]["io.gopack.manifest.digest"],
        sha256(&metadata["opt/env/.gopack/manifest.json"].2)
    );

    let config = image.config();
    assert_eq!(config["architecture"], host_goarch());
    assert_eq!(config["os"], "linux");
    assert_eq!(config["created"], "1970-01-01T00:00:00Z");
    assert_eq!(config["history"].as_array().unwrap().len(), 2);
    let env_list = config["config"]["Env"].as_array().unwrap();
    for expected in [
        "PATH=/opt/env/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "CONDA_PREFIX=/opt/env",
        "MY_DATA=/opt/env/share/data",
    ] {
        assert!(
            env_list.contains(&json!(expected)),
            "{expected} not in {env_list:?}"
        );
    }
    assert_eq!(config["config"]["Cmd"], json!(["tool"]));
    assert_eq!(config["config"]["Labels"]["io.gopack.prefix"], "/opt/env");
    assert_no_leftovers(&scratch.path(""));
}

#[test]
fn same_inputs_give_the_same_image_and_source_date_epoch_sets_only_the_times() {
    let scratch = Scratch::new();
    let env = synthetic(&scratch);
    let first = scratch.path("a.tar");
    let second = scratch.path("b.tar");
    image_pack(&env, &first, &["--format", "oci"]);
    image_pack(&env, &second, &["--format", "oci", "-j", "1"]);
    assert_eq!(
        sha256_file(&first),
        sha256_file(&second),
        "two images of the same inputs differ"
    );

    let dated = scratch.path("dated.tar");
    run_ok(
        create_command(&env, &dated)
            .args(["-q", "--format", "oci"])
            .env("SOURCE_DATE_EPOCH", "1700000000"),
    );
    let (plain, dated) = (Image::read(&first), Image::read(&dated));
    assert_eq!(dated.config()["created"], "2023-11-14T22:13:20Z");
    assert_eq!(
        dated.config()["history"][0]["created"],
        "2023-11-14T22:13:20Z"
    );
    assert_eq!(
        plain.layer_digest("environment"),
        dated.layer_digest("environment")
    );
    assert_eq!(
        plain.layer_digest("metadata"),
        dated.layer_digest("metadata")
    );
    assert_ne!(plain.json("index.json"), dated.json("index.json"));

    let stderr = run_fails(
        create_command(&env, &scratch.path("x.tar"))
            .args(["--format", "oci"])
            .env("SOURCE_DATE_EPOCH", "yesterday"),
        2,
    );
    assert!(stderr.contains("SOURCE_DATE_EPOCH"), "{stderr}");
}

#[test]
fn dest_prefix_entrypoint_env_labels_and_a_go_toolchain_shape_the_config() {
    let scratch = Scratch::new();
    let env = SyntheticEnv::new(&scratch.path("my env"))
        .file("go/bin/go", b"#!/bin/sh\necho go\n", 0o755)
        .symlink("bin/go", "../go/bin/go")
        .text("etc/a.txt", "x=@PREFIX@\n")
        .build();
    let output = scratch.path("app.tar");
    image_pack(
        &env,
        &output,
        &[
            "--format",
            "oci",
            "--dest-prefix",
            "/srv/app/",
            "--entrypoint",
            r#"["/srv/app/bin/go", "version"]"#,
            "--env",
            "GOPROXY=https://proxy.example",
            "--env",
            "EXTRA=1",
            "--label",
            "team=data",
            "--workdir",
            "/srv/app",
        ],
    );
    let image = Image::read(&output);
    check_digests(&image, "my-env:latest");
    let config = image.config();
    let run = &config["config"];
    assert_eq!(run["Entrypoint"], json!(["/srv/app/bin/go", "version"]));
    assert!(run.get("Cmd").is_none());
    assert_eq!(run["WorkingDir"], "/srv/app");
    assert_eq!(run["Labels"]["team"], "data");
    let env_list: Vec<&str> = run["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for expected in [
        "CONDA_PREFIX=/srv/app",
        "GOTOOLCHAIN=local",
        "GOPROXY=https://proxy.example",
        "EXTRA=1",
        "GOCACHE=/tmp/gopack-go/cache",
    ] {
        assert!(
            env_list.contains(&expected),
            "{expected} not in {env_list:?}"
        );
    }
    assert_eq!(
        env_list
            .iter()
            .filter(|v| v.starts_with("GOPROXY="))
            .count(),
        1
    );
    let layer = ours(&image.layer("environment"));
    assert_eq!(layer["srv/app/etc/a.txt"].2, b"x=/srv/app\n");
    assert!(layer.contains_key("srv/") && layer.contains_key("srv/app/"));
}

/// Builds `examples/go/healthcheck` from a copy whose greeting is `greeting`.
fn healthcheck_source(dir: &Path, greeting: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let source = repo().join("examples/go/healthcheck");
    std::fs::copy(source.join("go.mod"), dir.join("go.mod")).unwrap();
    let main = std::fs::read_to_string(source.join("main.go")).unwrap();
    assert!(main.contains(r#"fmt.Fprint(w, "ok")"#));
    std::fs::write(
        dir.join("main.go"),
        main.replace(
            r#"fmt.Fprint(w, "ok")"#,
            &format!(r#"fmt.Fprint(w, "{greeting}")"#),
        ),
    )
    .unwrap();
    dir.to_path_buf()
}

#[test]
fn changing_only_a_go_service_changes_only_the_go_and_metadata_layers() {
    let scratch = Scratch::new();
    let env = synthetic(&scratch);
    let go = which("go");
    let base = fabricated_base(&scratch.path("base"), host_goarch());
    let service = healthcheck_source(&scratch.path("svc"), "ok");
    let first = scratch.path("one.tar");
    let second = scratch.path("two.tar");
    let go_args = |output: &Path| {
        run_ok(
            create_command(&env, output)
                .args(["-q", "--format", "oci", "--offline"])
                .arg("--base")
                .arg(format!("oci:{}", base.display()))
                .arg("--go-toolchain")
                .arg(&go)
                .arg("--go")
                .arg(format!("healthcheck={}", service.display())),
        )
    };
    go_args(&first);
    healthcheck_source(&service, "still ok");
    go_args(&second);
    let (one, two) = (Image::read(&first), Image::read(&second));
    check_digests(&one, "env:latest");
    check_digests(&two, "env:latest");
    let roles: Vec<String> = one.layers().into_iter().map(|(role, _, _)| role).collect();
    assert_eq!(roles, ["base", "environment", "go", "metadata"]);
    assert_eq!(one.layer_digest("base"), two.layer_digest("base"));
    assert_eq!(
        one.layer_digest("environment"),
        two.layer_digest("environment")
    );
    assert_ne!(one.layer_digest("go"), two.layer_digest("go"));
    assert_ne!(one.layer_digest("metadata"), two.layer_digest("metadata"));
    // The Go layer holds the service and the directories above it, nothing else.
    let go_layer = ours(&one.layer("go"));
    assert_eq!(
        go_layer.keys().collect::<Vec<_>>(),
        [
            "opt/",
            "opt/env/",
            "opt/env/bin/",
            "opt/env/bin/healthcheck"
        ]
    );
    assert!(!ours(&one.layer("environment")).contains_key("opt/env/bin/healthcheck"));
    let history = one.config()["history"].as_array().unwrap().clone();
    assert!(
        history[2]["created_by"]
            .as_str()
            .unwrap()
            .contains("bin/healthcheck"),
        "{history:?}"
    );
}

#[test]
fn oci_dir_zstd_and_uncompressed_layers() {
    let scratch = Scratch::new();
    let env = synthetic(&scratch);
    let dir = scratch.path("layout");
    image_pack(
        &env,
        &dir,
        &[
            "--format",
            "oci-dir",
            "--layer-compression",
            "zstd",
            "--compress-level",
            "19",
        ],
    );
    let image = Image::read(&dir);
    check_digests(&image, "env:latest");
    assert!(
        !image.files.contains_key("manifest.json"),
        "a layout directory is no docker archive"
    );
    for layer in image.manifest()["layers"].as_array().unwrap() {
        assert_eq!(
            layer["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+zstd"
        );
    }
    use std::os::unix::fs::PermissionsExt;
    let blob_dir = dir.join("blobs/sha256");
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o755
    );
    for entry in std::fs::read_dir(&blob_dir).unwrap() {
        let entry = entry.unwrap();
        assert_eq!(
            entry.metadata().unwrap().permissions().mode() & 0o777,
            0o644
        );
        assert!(!entry.file_name().to_string_lossy().starts_with('.'));
    }
    // An existing output needs -f, which replaces it whole.
    let stderr = run_fails(create_command(&env, &dir).args(["--format", "oci-dir"]), 1);
    assert!(stderr.contains("already exists"), "{stderr}");
    image_pack(
        &env,
        &dir,
        &["--format", "oci-dir", "-f", "--layer-compression", "none"],
    );
    let image = Image::read(&dir);
    check_digests(&image, "env:latest");
    let config = image.config();
    for (i, layer) in image.manifest()["layers"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        assert_eq!(layer["mediaType"], "application/vnd.oci.image.layer.v1.tar");
        assert_eq!(layer["digest"], config["rootfs"]["diff_ids"][i]);
    }
    assert_no_leftovers(&scratch.path(""));
}

#[test]
fn inspect_shows_the_image_and_its_environment() {
    let scratch = Scratch::new();
    let env = synthetic(&scratch);
    let output = scratch.path("app.tar");
    image_pack(&env, &output, &["--format", "oci", "--tag", "app:2"]);
    let image = Image::read(&output);
    let digest = image.json("index.json")["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let text = run_ok(gopack().arg("inspect").arg(&output));
    for expected in [
        "tag:            app:2",
        &format!("digest:         {digest}"),
        "prefix:         /opt/env",
        "(environment)",
        "(metadata)",
        "conda packages: 1",
    ] {
        assert!(text.contains(expected), "{expected} not in\n{text}");
    }
    let json = manifest(&output);
    assert_eq!(json["image"]["digest"], digest.as_str());
    assert_eq!(json["image"]["tag"], "app:2");
    assert_eq!(json["platform"], crate::util::synthetic::host_platform());
    assert!(
        json["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["path"] == "etc/a.txt")
    );
    // The layout directory form too, and `create --json` names the image beside the bundle.
    let dir = scratch.path("dir");
    let summary = image_pack(
        &env,
        &dir,
        &["--format", "oci-dir", "--tag", "app:2", "--json"],
    );
    let summary: Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(summary["image"]["digest"], digest.as_str());
    assert_eq!(summary["image"]["tag"], "app:2");
    assert_eq!(summary["bundle"]["path"], dir.to_str().unwrap());
    assert_eq!(manifest(&dir)["image"]["digest"], digest.as_str());
    // Bundles are still bundles.
    let bundle = scratch.path("b.tar");
    pack(&env, &bundle, &["-q"]);
    assert!(manifest(&bundle).get("image").is_none());
}

// ---------------------------------------------------------------------------------------------
// Bases made by hand.

/// A deterministic gzip layer holding `etc/base-release`.
fn base_layer() -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_path("etc/base-release").unwrap();
    header.set_size(5);
    header.set_mode(0o644);
    header.set_mtime(1);
    header.set_uid(0);
    header.set_gid(0);
    header.set_cksum();
    builder.append(&header, &b"base\n"[..]).unwrap();
    let tar = builder.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

fn base_config(architecture: &str, diff_id: &str) -> Value {
    json!({
        "architecture": architecture,
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/bin:/bin", "LANG=C.UTF-8"],
            "Entrypoint": ["/bin/sh", "-c"],
            "Cmd": ["echo base"],
            "User": "1000",
        },
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
        "history": [{ "created_by": "hand-made base" }],
    })
}

/// An OCI layout directory of a one-layer base for `architecture`, tagged `base`.
fn fabricated_base(dir: &Path, architecture: &str) -> PathBuf {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let digest = sha256(bytes);
        std::fs::write(blobs.join(digest.trim_start_matches("sha256:")), bytes).unwrap();
        (digest, bytes.len())
    };
    let layer = base_layer();
    let diff_id = sha256(&decompress("+gzip", &layer));
    let (layer_digest, layer_size) = put(&layer);
    let (config_digest, config_size) =
        put(&serde_json::to_vec(&base_config(architecture, &diff_id)).unwrap());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": layer_digest, "size": layer_size}],
    });
    let (manifest_digest, manifest_size) = put(&serde_json::to_vec(&manifest).unwrap());
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest_size,
            "annotations": {"org.opencontainers.image.ref.name": "base"},
        }],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    dir.to_path_buf()
}

/// A tar of a directory's files (for oci-archive bases).
fn tar_dir(dir: &Path, output: &Path) {
    let mut builder = tar::Builder::new(std::fs::File::create(output).unwrap());
    builder.append_dir_all(".", dir).unwrap();
    builder.finish().unwrap();
}

/// A legacy docker archive (`docker save` before Docker 25): `<id>/layer.tar` uncompressed.
fn docker_archive(output: &Path, architecture: &str) {
    let layer = decompress("+gzip", &base_layer());
    let diff_id = sha256(&layer);
    let config = serde_json::to_vec(&base_config(architecture, &diff_id)).unwrap();
    let id = sha256(&config).trim_start_matches("sha256:").to_string();
    let manifest = json!([{
        "Config": format!("{id}.json"),
        "RepoTags": ["hand/base:1"],
        "Layers": [format!("{}/layer.tar", &id[..12])],
    }]);
    let mut builder = tar::Builder::new(std::fs::File::create(output).unwrap());
    for (name, bytes) in [
        (format!("{}/layer.tar", &id[..12]), layer),
        (format!("{id}.json"), config),
        (
            "manifest.json".to_string(),
            serde_json::to_vec(&manifest).unwrap(),
        ),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, &bytes[..]).unwrap();
    }
    builder.finish().unwrap();
}

#[test]
fn base_layers_are_copied_by_digest_and_its_config_extended() {
    let scratch = Scratch::new();
    let env = synthetic(&scratch);
    let layout = fabricated_base(&scratch.path("base"), host_goarch());
    let archive = scratch.path("base.tar");
    tar_dir(&layout, &archive);
    let docker = scratch.path("docker.tar");
    docker_archive(&docker, host_goarch());
    let base_layer_digest = sha256(&base_layer());
    let mut digests = Vec::new();
    for (name, base) in [
        ("from-dir.tar", format!("oci:{}:base", layout.display())),
        (
            "from-archive.tar",
            format!("oci-archive:{}", archive.display()),
        ),
        (
            "from-docker.tar",
            format!("docker-archive:{}:hand/base:1", docker.display()),
        ),
    ] {
        let output = scratch.path(name);
        image_pack(
            &env,
            &output,
            &["--format", "oci", "--base", &base, "--cmd", "tool"],
        );
        let image = Image::read(&output);
        check_digests(&image, "env:latest");
        let layers = image.layers();
        assert_eq!(layers.len(), 3, "{name}");
        assert_eq!(layers[0].0, "base");
        assert_eq!(members(&layers[0].2)["etc/base-release"].2, b"base\n");
        let config = image.config();
        let run = &config["config"];
        // The base's entrypoint and user stay; --cmd replaces its command; PATH is extended.
        assert_eq!(run["Entrypoint"], json!(["/bin/sh", "-c"]), "{name}");
        assert_eq!(run["Cmd"], json!(["tool"]));
        assert_eq!(run["User"], "1000");
        let env_list = run["Env"].as_array().unwrap();
        assert!(
            env_list.contains(&json!("PATH=/opt/env/bin:/usr/bin:/bin")),
            "{env_list:?}"
        );
        assert!(env_list.contains(&json!("LANG=C.UTF-8")));
        assert_eq!(config["history"][0]["created_by"], "hand-made base");
        assert_eq!(config["history"].as_array().unwrap().len(), 3);
        digests.push(layers[0].1.clone());
    }
    // The OCI bases' layer is copied as it is; the legacy docker archive's is its plain tar.
    assert_eq!(digests[0], base_layer_digest);
    assert_eq!(digests[1], base_layer_digest);
    assert_eq!(digests[2], sha256(&decompress("+gzip", &base_layer())));
    let image = Image::read(&scratch.path("from-dir.tar"));
    assert_eq!(
        image.manifest()["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    assert_eq!(
        image.manifest()["annotations"]["org.opencontainers.image.base.name"],
        "base"
    );
}

#[test]
fn bad_options_and_bases_fail_cleanly() {
    let scratch = Scratch::new();
    let env = synthetic(&scratch);
    let output = scratch.path("out.tar");
    // Usage errors: exit 2.
    for args in [
        &["--format", "oci", "--tag", "Bad/Name"][..],
        &["--format", "oci", "--base", "debian:12"],
        &["--format", "oci", "--base", "docker://debian:12"],
        &["--format", "oci", "--layer-compression", "xz"],
        &["--format", "oci", "--arcroot", "x"],
        &["--format", "oci", "--env", "NOVALUE"],
        &["--format", "oci", "--entrypoint", "[1]"],
        &["--format", "tar.zst", "--base", "oci:x"],
        &["--format", "oci", "--dest-prefix", "relative"],
    ] {
        let stderr = run_fails(create_command(&env, &output).args(args), 2);
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
    }
    // User errors: exit 1, naming the base.
    // A base for another architecture than this machine's (the environment's).
    let other = if host_goarch() == "arm64" {
        "amd64"
    } else {
        "arm64"
    };
    let arm = fabricated_base(&scratch.path("arm"), other);
    let stderr = run_fails(
        create_command(&env, &output).args([
            "--format",
            "oci",
            "--base",
            &format!("oci:{}", arm.display()),
        ]),
        1,
    );
    assert!(
        stderr.contains(&format!("linux/{other}"))
            && stderr.contains(&format!("linux/{}", host_goarch())),
        "{stderr}"
    );
    assert!(stderr.contains("hint:"), "{stderr}");
    let missing = scratch.path("nothing-here");
    let stderr = run_fails(
        create_command(&env, &output).args([
            "--format",
            "oci",
            "--base",
            &format!("oci-archive:{}", missing.display()),
        ]),
        1,
    );
    assert!(stderr.contains("nothing-here"), "{stderr}");
    // A base whose layer was altered after its manifest was written.
    let tampered = fabricated_base(&scratch.path("tampered"), host_goarch());
    let layer_digest = sha256(&base_layer());
    let layer_file = tampered
        .join("blobs/sha256")
        .join(layer_digest.trim_start_matches("sha256:"));
    let mut bytes = std::fs::read(&layer_file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&layer_file, bytes).unwrap();
    let stderr = run_fails(
        create_command(&env, &output).args([
            "--format",
            "oci",
            "--base",
            &format!("oci:{}", tampered.display()),
        ]),
        1,
    );
    assert!(stderr.contains("does not match its digest"), "{stderr}");
    // Two images in a layout need a tag; an unknown tag lists the known ones.
    let stderr = run_fails(
        create_command(&env, &output).args([
            "--format",
            "oci",
            "--base",
            &format!("oci:{}:nope", arm.display()),
        ]),
        1,
    );
    assert!(stderr.contains("tags: base"), "{stderr}");
    // A compressed archive is named as such.
    let gz = scratch.path("base.tar.gz");
    std::fs::write(&gz, base_layer()).unwrap();
    let stderr = run_fails(
        create_command(&env, &output).args([
            "--format",
            "oci",
            "--base",
            &format!("oci-archive:{}", gz.display()),
        ]),
        1,
    );
    assert!(stderr.contains("gzip-compressed"), "{stderr}");
    // A name a runtime reads as a whiteout.
    let whiteout = SyntheticEnv::new(&scratch.path("wh"))
        .text("etc/.wh.x", "x")
        .build();
    let stderr = run_fails(
        create_command(&whiteout, &output).args(["--format", "oci"]),
        1,
    );
    assert!(
        stderr.contains(".wh.x") && stderr.contains("whiteout"),
        "{stderr}"
    );
    assert!(!output.exists());
    assert_no_leftovers(&scratch.path(""));
}

// ---------------------------------------------------------------------------------------------
// End to end on a real Debian base.

/// Whether every tool is installed: in CI a missing one fails the test (`.ci/run` installs
/// them), elsewhere the test is skipped with a message saying what to install.
fn have_tools(test: &str, tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|tool| find_tool(tool).is_none())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let message = format!(
        "{test}: {} not installed (apt-get install skopeo umoci mmdebstrap podman runc)",
        missing.join(", ")
    );
    if std::env::var_os("CI").is_some() {
        panic!("{message}");
    }
    eprintln!("skipping {message}");
    false
}

fn find_tool(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(
            [
                "/usr/local/go/bin",
                "/usr/bin",
                "/usr/sbin",
                "/bin",
                "/sbin",
            ]
            .map(PathBuf::from),
        )
        .map(|dir| dir.join(tool))
        .find(|path| path.is_file())
}

/// The Debian base, built once and kept under `target/oci-base`: a bookworm minbase root
/// file system (mmdebstrap, from Debian's mirror), made an OCI layout by umoci, and saved by
/// skopeo as an oci-archive and a docker-archive.
struct Base {
    layout: PathBuf,
    archive: PathBuf,
    docker: PathBuf,
}

static BASE: Mutex<()> = Mutex::new(());

fn debian_base() -> Base {
    let _guard = BASE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let dir = repo().join("target/oci-base");
    let base = Base {
        layout: dir.join("layout"),
        archive: dir.join("bookworm.oci.tar"),
        docker: dir.join("bookworm.docker.tar"),
    };
    if dir.join("ready").exists() {
        return base;
    }
    let _ = std::fs::remove_dir_all(&dir);
    let building = repo().join("target/oci-base.building");
    let _ = std::fs::remove_dir_all(&building);
    std::fs::create_dir_all(&building).unwrap();
    let rootfs = building.join("rootfs.tar");
    run_ok(
        Command::new("mmdebstrap")
            .args(["--variant=minbase", "--quiet", "bookworm"])
            .arg(&rootfs),
    );
    let layout = building.join("layout");
    let image = format!("{}:bookworm", layout.display());
    run_ok(
        Command::new("umoci")
            .arg("init")
            .arg("--layout")
            .arg(&layout),
    );
    run_ok(Command::new("umoci").args(["new", "--image", &image]));
    run_ok(
        Command::new("umoci")
            .args(["raw", "add-layer", "--image", &image])
            .arg(&rootfs),
    );
    run_ok(Command::new("umoci").args([
        "config",
        "--image",
        &image,
        "--config.env",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "--config.cmd",
        "/bin/sh",
    ]));
    run_ok(Command::new("umoci").arg("gc").arg("--layout").arg(&layout));
    std::fs::remove_file(&rootfs).unwrap();
    run_ok(Command::new("skopeo").args([
        "copy",
        "--quiet",
        &format!("oci:{image}"),
        &format!(
            "oci-archive:{}:bookworm",
            building.join("bookworm.oci.tar").display()
        ),
    ]));
    run_ok(Command::new("skopeo").args([
        "copy",
        "--quiet",
        &format!("oci:{image}"),
        &format!(
            "docker-archive:{}:debian:bookworm",
            building.join("bookworm.docker.tar").display()
        ),
    ]));
    std::fs::write(building.join("ready"), b"").unwrap();
    std::fs::rename(&building, &dir).unwrap();
    base
}

/// Runs a shell script inside `root` with the image's environment variables, with /proc
/// mounted there as a runtime would (the dynamic loader reads /proc/self/exe to expand
/// `$ORIGIN`) in a mount and PID namespace of its own, so nothing stays mounted.
fn in_chroot(root: &Path, env: &[(String, String)], script: &str) -> Command {
    let mut command = Command::new("unshare");
    command
        .args(["--fork", "--pid", "--kill-child"])
        .arg(format!("--mount-proc={}", root.join("proc").display()))
        .arg("chroot")
        .arg(root)
        .args(["/bin/sh", "-c", script])
        .env_clear()
        .envs(env.iter().cloned());
    command
}

#[test]
fn real_env_base_image_runs_python_c_and_go_in_a_chroot_and_in_podman() {
    if !have_tools(
        "oci end-to-end",
        &["mmdebstrap", "umoci", "skopeo", "chroot", "unshare"],
    ) {
        return;
    }
    // chroot, and umoci's unpack without --rootless, need root.
    if !run_ok(Command::new("id").arg("-u")).trim().eq("0") {
        eprintln!("skipping oci end-to-end: chroot needs root");
        return;
    }
    let base = debian_base();
    let scratch = Scratch::new();
    let env = shared_env(&["--go"]);
    let output = scratch.path("app.tar");
    let started = std::time::Instant::now();
    run_ok(create_command(&env, &output).args([
        "-q",
        "--format",
        "oci",
        "--base",
        &format!("oci-archive:{}:bookworm", base.archive.display()),
        "--dest-prefix",
        "/opt/app",
        "--go-workspace",
        "--offline",
        "--tag",
        "gopack-test/app:1",
        "--cmd",
        r#"["python3", "-c", "import numpy; print('numpy', numpy.__version__)"]"#,
    ]));
    eprintln!(
        "packed the image in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let ours = run_ok(gopack().arg("inspect").arg("--json").arg(&output));
    let ours: Value = serde_json::from_str(&ours).unwrap();
    let digest = ours["image"]["digest"].as_str().unwrap().to_string();

    // skopeo reads it as an OCI archive and as a docker archive, and copying it checks every
    // digest.
    let inspected: Value = serde_json::from_str(&run_ok(
        Command::new("skopeo").args(["inspect", &format!("oci-archive:{}", output.display())]),
    ))
    .unwrap();
    assert_eq!(inspected["Digest"], digest.as_str());
    assert_eq!(inspected["Architecture"], host_goarch());
    assert_eq!(inspected["Layers"].as_array().unwrap().len(), 4);
    let docker: Value = serde_json::from_str(&run_ok(
        Command::new("skopeo").args(["inspect", &format!("docker-archive:{}", output.display())]),
    ))
    .unwrap();
    assert_eq!(docker["Layers"].as_array().unwrap().len(), 4, "{docker}");
    let copy = scratch.path("copy");
    run_ok(Command::new("skopeo").args([
        "copy",
        "--quiet",
        &format!("oci-archive:{}", output.display()),
        &format!("oci:{}:t", copy.display()),
    ]));

    // The other two kinds of base give the same layers of ours.
    for other in [
        format!("oci:{}:bookworm", base.layout.display()),
        format!("docker-archive:{}", base.docker.display()),
    ] {
        let out = scratch.path("other.tar");
        run_ok(create_command(&env, &out).args([
            "-q",
            "-f",
            "--format",
            "oci",
            "--layer-compression",
            "zstd",
            "--base",
            &other,
        ]));
        let other_json: Value =
            serde_json::from_str(&run_ok(gopack().arg("inspect").arg("--json").arg(&out))).unwrap();
        assert_eq!(
            other_json["image"]["layers"].as_array().unwrap().len(),
            3,
            "{other}"
        );
        run_ok(Command::new("skopeo").args(["inspect", &format!("oci-archive:{}", out.display())]));
    }

    // umoci unpacks it; inside, the environment runs from /opt/app.
    let bundle = scratch.path("bundle");
    run_ok(
        Command::new("umoci")
            .args(["unpack", "--image", &format!("{}:t", copy.display())])
            .arg(&bundle),
    );
    let root = bundle.join("rootfs");
    let config: Value = serde_json::from_str(&run_ok(Command::new("skopeo").args([
        "inspect",
        "--config",
        &format!("oci-archive:{}", output.display()),
    ])))
    .unwrap();
    let image_env: Vec<(String, String)> = config["config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| {
            v.as_str()?
                .split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    let out = run_ok(&mut in_chroot(
        &root,
        &image_env,
        "python3 -c 'import numpy, sys; print(numpy.__version__, sys.prefix)'",
    ));
    assert!(out.trim().ends_with(" /opt/app"), "{out}");
    let out = run_ok(&mut in_chroot(&root, &image_env, "hello"));
    assert!(
        out.contains("Greetings from the gopack fixture environment"),
        "{out}"
    );
    run_ok(&mut in_chroot(&root, &image_env, "demo-tool"));
    let out = run_ok(&mut in_chroot(&root, &image_env, "go env GOROOT"));
    assert_eq!(out.trim(), "/opt/app/go");
    let out = run_ok(&mut in_chroot(
        &root,
        &image_env,
        ". /opt/app/bin/activate && echo \"$CONDA_PREFIX\" && gopack-unpack",
    ));
    assert!(out.starts_with("/opt/app\n"), "{out}");

    // The Go health check, started in the chroot, answers on loopback (a chroot shares the
    // network).
    // (A static Go binary needs no /proc: plain chroot, so the signal reaches it.)
    let (service, address) = start_service(
        Command::new(which("chroot"))
            .arg(&root)
            .arg("/opt/app/bin/healthcheck")
            .env_clear()
            .envs(image_env.iter().cloned()),
    );
    assert_eq!(
        http_get(&address, "/healthz"),
        ("HTTP/1.0 200 OK".into(), "ok".into())
    );
    stop(service);

    podman_loads_and_runs(&scratch, &output);
}

/// podman, with storage in the scratch directory. Two settings of this sandbox are worked
/// around, not needed elsewhere: crun refuses the machine's mixed cgroup v1/v2 mounts, so
/// runc runs the container; and without CAP_SYS_RESOURCE podman's default limits (more open
/// files and processes than this machine allows) cannot be set, so lower ones are asked for.
fn podman_loads_and_runs(scratch: &Scratch, image: &Path) {
    if !have_tools("podman load and run", &["podman", "runc"]) {
        return;
    }
    // podman refuses a run root longer than 50 bytes: a short one under /tmp, whatever the
    // checkout's path.
    let runroot = tempfile::Builder::new()
        .prefix("gp-podman")
        .tempdir_in("/tmp")
        .unwrap();
    let podman = || {
        let mut command = Command::new("podman");
        command
            .arg("--root")
            .arg(scratch.path("podman/root"))
            .arg("--runroot")
            .arg(runroot.path())
            .args([
                "--storage-driver",
                "vfs",
                "--runtime",
                "runc",
                "--cgroup-manager",
                "cgroupfs",
            ]);
        command
    };
    let loaded = run_ok(podman().arg("load").arg("--input").arg(image));
    assert!(loaded.contains("gopack-test/app:1"), "{loaded}");
    let out = run_ok(podman().args([
        "run",
        "--rm",
        "--network",
        "none",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=4096:4096",
        "gopack-test/app:1",
    ]));
    assert!(out.starts_with("numpy "), "{out}");
}
