//! Paths inside an environment, as the bytes the file system holds: a path's directory, one
//! path relative to another, and where an absolute symlink into the prefix points from inside.

/// The directory part of a `/`-separated relative path (empty at the top).
pub fn dir_of(path: &[u8]) -> &[u8] {
    path.iter()
        .rposition(|&c| c == b'/')
        .map_or(&[][..], |slash| &path[..slash])
}

/// `to` relative to the directory `from_dir` (both relative to the same root, `/`-separated).
pub fn relative_path(from_dir: &[u8], to: &[u8]) -> Vec<u8> {
    let split = |p: &[u8]| -> Vec<Vec<u8>> {
        p.split(|&c| c == b'/')
            .filter(|part| !part.is_empty() && *part != b".")
            .map(<[u8]>::to_vec)
            .collect()
    };
    let from = split(from_dir);
    let to = split(to);
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<Vec<u8>> = vec![b"..".to_vec(); from.len() - common];
    parts.extend(to[common..].iter().cloned());
    if parts.is_empty() {
        return b".".to_vec();
    }
    parts.join(&b'/')
}

/// What happens to a symlink: an absolute target inside the prefix becomes the equivalent
/// relative target. Returns the new target, or `None` to keep it.
pub fn relative_link_target(path: &[u8], target: &[u8], prefix: &[u8]) -> Option<Vec<u8>> {
    let inside = if target == prefix {
        &b""[..]
    } else {
        target.strip_prefix(prefix)?.strip_prefix(b"/")?
    };
    Some(relative_path(dir_of(path), inside))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_between_places_in_the_prefix() {
        assert_eq!(relative_path(b"bin", b"bin/python3.11"), b"python3.11");
        assert_eq!(
            relative_path(b"lib/x/y", b"bin/python"),
            b"../../../bin/python"
        );
        assert_eq!(relative_path(b"", b"bin/go"), b"bin/go");
        assert_eq!(relative_path(b"bin", b"go/bin/go"), b"../go/bin/go");
        assert_eq!(relative_path(b"lib", b"lib"), b".");
    }

    #[test]
    fn absolute_symlinks_into_the_prefix_become_relative() {
        assert_eq!(
            relative_link_target(b"lib/libx.so", b"/env/lib/libx.so.1", b"/env").unwrap(),
            b"libx.so.1"
        );
        assert_eq!(
            relative_link_target(b"bin/go", b"/env/go/bin/go", b"/env").unwrap(),
            b"../go/bin/go"
        );
        assert_eq!(relative_link_target(b"a", b"/env", b"/env").unwrap(), b".");
        assert!(relative_link_target(b"bin/x", b"/usr/bin/x", b"/env").is_none());
        assert!(relative_link_target(b"bin/x", b"/env2/bin/x", b"/env").is_none());
        assert!(relative_link_target(b"bin/python3", b"python3.11", b"/env").is_none());
    }
}
