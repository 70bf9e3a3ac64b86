//! Image names: [`normalize_tag`] checks a `NAME[:TAG]` by the grammar of Docker's reference
//! package (lowercase path components, an optional registry host with a port, a tag of at most
//! 128 word characters, dots and dashes).

pub use crate::timestamp::{LAST_SECOND, rfc3339};

/// `name:tag` with `:latest` added when no tag is given.
///
/// # Errors
/// A sentence saying what is wrong.
pub fn normalize_tag(text: &str) -> Result<String, String> {
    if text.contains('@') {
        return Err("a digest cannot be given as a tag".into());
    }
    let (name, tag) = split_tag(text);
    if name.is_empty() || name.len() > 255 {
        return Err("the name must have 1 to 255 characters".into());
    }
    let tag_ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !tag_ok {
        return Err(format!(
            "tag `{tag}`: up to 128 letters, digits, `_`, `.` and `-`, not starting with `.` or `-`"
        ));
    }
    let mut components: Vec<&str> = name.split('/').collect();
    if components.len() > 1 {
        let first = components[0];
        if first.contains('.') || first.contains(':') || first == "localhost" {
            let (host, port) = first.split_once(':').unwrap_or((first, ""));
            let host_ok = !host.is_empty()
                && host.split('.').all(|label| {
                    !label.is_empty()
                        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                });
            let port_ok = first.split_once(':').is_none()
                || (!port.is_empty() && port.chars().all(|c| c.is_ascii_digit()));
            if !host_ok || !port_ok {
                return Err(format!(
                    "registry `{first}` is not a host name with an optional port"
                ));
            }
            components.remove(0);
        }
    }
    for component in components {
        if !path_component_ok(component) {
            return Err(format!(
                "`{component}`: names are lowercase letters and digits, separated by `.`, `_`, `__` or dashes"
            ));
        }
    }
    Ok(format!("{name}:{tag}"))
}

fn path_component_ok(component: &str) -> bool {
    let bytes = component.as_bytes();
    if bytes.is_empty() || !is_alnum(bytes[0]) || !is_alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if is_alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !is_alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let ok = matches!(separator, "." | "_" | "__") || separator.bytes().all(|c| c == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// Splits `name:tag` at the last `:` after the last `/` (a registry port is not a tag);
/// `latest` when there is none.
pub fn split_tag(text: &str) -> (&str, &str) {
    let slash = text.rfind('/').map_or(0, |i| i + 1);
    match text[slash..].rfind(':') {
        Some(colon) => (&text[..slash + colon], &text[slash + colon + 1..]),
        None => (text, "latest"),
    }
}

/// A repository name made from an environment's name: lowercase, other characters turned
/// into `-`, `gopack-env` when nothing is left.
pub fn repository_name(env_name: &str) -> String {
    let mut out = String::new();
    for c in env_name.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        "gopack-env".into()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_follow_the_reference_grammar() {
        assert_eq!(normalize_tag("app").unwrap(), "app:latest");
        assert_eq!(normalize_tag("team/app:v1.2").unwrap(), "team/app:v1.2");
        assert_eq!(
            normalize_tag("localhost:5000/a/b").unwrap(),
            "localhost:5000/a/b:latest"
        );
        assert_eq!(
            normalize_tag("registry.example.com/my_app__x:1").unwrap(),
            "registry.example.com/my_app__x:1"
        );
        for bad in [
            "App",
            "app:",
            "app:-x",
            "a//b",
            "a/-b",
            "app@sha256:00",
            "a..b",
            "reg:x/a",
            "",
        ] {
            assert!(normalize_tag(bad).is_err(), "{bad}");
        }
        assert_eq!(
            split_tag("localhost:5000/app"),
            ("localhost:5000/app", "latest")
        );
        assert_eq!(split_tag("app:1"), ("app", "1"));
    }

    #[test]
    fn repository_names_from_env_names() {
        assert_eq!(repository_name("My Env_3"), "my-env-3");
        assert_eq!(repository_name("__"), "gopack-env");
        assert_eq!(repository_name("py311"), "py311");
    }
}
