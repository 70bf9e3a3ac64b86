//! Text relocation: every occurrence of the old prefix is replaced; the length may change.

use memchr::memmem;

/// Replaces every occurrence of `old` in `content` with `new`.
pub fn replace_all(content: &[u8], old: &[u8], new: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len());
    let mut last = 0;
    for hit in memmem::find_iter(content, old) {
        out.extend_from_slice(&content[last..hit]);
        out.extend_from_slice(new);
        last = hit + old.len();
    }
    out.extend_from_slice(&content[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_all_and_changes_length() {
        assert_eq!(
            replace_all(b"a=/p/x b=/p", b"/p", b"/long/er"),
            b"a=/long/er/x b=/long/er"
        );
        assert_eq!(replace_all(b"none", b"/p", b"/q"), b"none");
        // A new prefix that contains the old one is applied once.
        assert_eq!(replace_all(b"/p/x", b"/p", b"/p/p"), b"/p/p/x");
    }
}
