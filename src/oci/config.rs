//! The image config (OCI `config.md`): the base's, extended. `PATH` gets the environment's
//! `bin/` in front; `CONDA_PREFIX` and `CONDA_DEFAULT_ENV` name the prefix; the environment's
//! activation variables (`etc/conda/env_vars.d`, `conda-meta/state`) follow, their prefix
//! rewritten as the files' was; with a Go toolchain in the environment, `GOTOOLCHAIN=local`,
//! `GOPROXY=off` and a writable `GOPATH`/`GOCACHE` are set where nothing set them, as
//! `bin/activate` does; `--env` comes last. `--entrypoint` replaces the base's entrypoint and
//! its command (Docker's rule), `--cmd` the command.

use serde_json::{Map, Value, json};

use super::{ImageOptions, Platform, rfc3339};
use crate::plan::Plan;
use crate::scan::EntryKind;

/// The `PATH` of an image whose base sets none (Docker's default).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What the config is made of.
pub struct Inputs<'a> {
    /// The base's config.
    pub base: Option<&'a Value>,
    /// The plan.
    pub plan: &'a Plan,
    /// The prefix inside the image.
    pub dest: &'a str,
    /// The options.
    pub image: &'a ImageOptions,
    /// The platform (used without a base).
    pub platform: &'a Platform,
    /// Every layer's diff_id, base first.
    pub diff_ids: &'a [String],
    /// History entries of the new layers.
    pub history: Vec<Value>,
    /// gopack's annotations, also set as labels.
    pub annotations: &'a Map<String, Value>,
}

/// Sets `name` in a `K=V` list: replaced in place, or appended.
fn set(env: &mut Vec<String>, name: &str, value: &str) {
    let entry = format!("{name}={value}");
    match env.iter_mut().find(|e| e.split('=').next() == Some(name)) {
        Some(existing) => *existing = entry,
        None => env.push(entry),
    }
}

fn get<'e>(env: &'e [String], name: &str) -> Option<&'e str> {
    env.iter().find_map(|e| {
        e.split_once('=')
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| v)
    })
}

/// The config.
pub fn build(inputs: Inputs<'_>) -> Value {
    let Inputs {
        base,
        plan,
        dest,
        image,
        platform,
        diff_ids,
        history,
        annotations,
    } = inputs;
    let mut object = into_object(base.cloned());
    // What described the base's build container does not describe this image.
    for stale in [
        "container",
        "container_config",
        "docker_version",
        "id",
        "parent",
    ] {
        object.remove(stale);
    }
    object.insert("created".into(), rfc3339(image.created).into());
    if base.is_none() {
        object.insert("os".into(), platform.os.clone().into());
        object.insert("architecture".into(), platform.architecture.clone().into());
        if let Some(variant) = &platform.variant {
            object.insert("variant".into(), variant.clone().into());
        }
    }
    let mut run = into_object(object.remove("config"));

    let mut env: Vec<String> = super::inspect::strings(run.get("Env"));
    let bin = format!("{dest}/bin");
    let path = get(&env, "PATH").unwrap_or(DEFAULT_PATH).to_string();
    if path.split(':').next() != Some(bin.as_str()) {
        set(&mut env, "PATH", &format!("{bin}:{path}"));
    }
    set(&mut env, "CONDA_PREFIX", dest);
    set(&mut env, "CONDA_DEFAULT_ENV", dest);
    // The values name the environment where it was packed (the relocation records may
    // already start from the destination).
    let source = plan.prefix.as_os_str().as_encoded_bytes();
    for (name, value) in crate::scripts::env_vars(&plan.prefix) {
        let value = crate::relocate::text::replace_all(value.as_bytes(), source, dest.as_bytes());
        set(&mut env, &name, &String::from_utf8_lossy(&value));
    }
    let has_go = plan.entries.iter().any(|p| {
        p.entry.path == b"bin/go"
            && matches!(p.entry.kind, EntryKind::File | EntryKind::Symlink { .. })
    });
    if has_go {
        for (name, value) in [
            ("GOTOOLCHAIN", "local"),
            ("GOPROXY", "off"),
            ("GOPATH", "/tmp/gopack-go/path"),
            ("GOCACHE", "/tmp/gopack-go/cache"),
        ] {
            if get(&env, name).is_none() {
                set(&mut env, name, value);
            }
        }
    }
    for (name, value) in &image.env {
        set(&mut env, name, value);
    }
    run.insert("Env".into(), env.into());

    if let Some(entrypoint) = &image.entrypoint {
        run.insert("Entrypoint".into(), entrypoint.clone().into());
        if image.cmd.is_none() {
            run.remove("Cmd");
        }
    }
    if let Some(cmd) = &image.cmd {
        run.insert("Cmd".into(), cmd.clone().into());
    }
    for key in ["Entrypoint", "Cmd"] {
        if run
            .get(key)
            .and_then(Value::as_array)
            .is_some_and(|list| list.is_empty())
        {
            run.remove(key);
        }
    }
    if let Some(dir) = &image.workdir {
        run.insert("WorkingDir".into(), dir.clone().into());
    }
    let mut labels = into_object(run.remove("Labels"));
    for (key, value) in annotations {
        labels.insert(key.clone(), value.clone());
    }
    for (key, value) in &image.labels {
        labels.insert(key.clone(), value.clone().into());
    }
    run.insert("Labels".into(), labels.into());
    object.insert("config".into(), run.into());

    object.insert(
        "rootfs".into(),
        json!({ "type": "layers", "diff_ids": diff_ids }),
    );
    let mut all_history: Vec<Value> = object
        .get("history")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    all_history.extend(history);
    object.insert("history".into(), all_history.into());
    object.into()
}

/// `value` when it is a JSON object, else a new empty one: a base's config may hold anything.
fn into_object(value: Option<Value>) -> serde_json::Map<String, Value> {
    match value {
        Some(Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    }
}
