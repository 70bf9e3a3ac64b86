//! `--include`/`--exclude` rules: real globs (`**` crosses directories), applied in order to the
//! path relative to the prefix; a rule that matches a directory applies to everything below it,
//! and the last rule that matches wins.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use globset::{GlobBuilder, GlobMatcher};

use super::Error as ScanError;
use crate::error::Result;

/// Whether a rule keeps or drops what it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    /// `--include`.
    Include,
    /// `--exclude`.
    Exclude,
}

/// An ordered list of include/exclude rules.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    rules: Vec<(RuleKind, GlobMatcher)>,
}

impl Filter {
    /// Adds a rule at the end.
    ///
    /// # Errors
    /// [`ScanError::BadGlob`] when the pattern does not parse.
    pub fn push(&mut self, kind: RuleKind, pattern: &str) -> Result<()> {
        let trimmed = pattern.trim_start_matches("./").trim_end_matches('/');
        let glob = GlobBuilder::new(trimmed)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|source| ScanError::BadGlob {
                pattern: pattern.to_string(),
                source,
            })?;
        self.rules.push((kind, glob.compile_matcher()));
        Ok(())
    }

    /// Whether `path` (relative, `/`-separated) is packed.
    pub fn keeps(&self, path: &[u8]) -> bool {
        if self.rules.is_empty() {
            return true;
        }
        let mut decision = RuleKind::Include;
        for (kind, matcher) in &self.rules {
            if matches_self_or_ancestor(matcher, path) {
                decision = *kind;
            }
        }
        decision == RuleKind::Include
    }
}

fn matches_self_or_ancestor(matcher: &GlobMatcher, path: &[u8]) -> bool {
    let mut current = path;
    loop {
        if matcher.is_match(Path::new(OsStr::from_bytes(current))) {
            return true;
        }
        match current.iter().rposition(|&c| c == b'/') {
            Some(slash) => current = &current[..slash],
            None => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(rules: &[(RuleKind, &str)]) -> Filter {
        let mut filter = Filter::default();
        for (kind, pattern) in rules {
            filter.push(*kind, pattern).unwrap();
        }
        filter
    }

    #[test]
    fn double_star_and_directories() {
        let f = filter(&[(RuleKind::Exclude, "share/doc/**")]);
        assert!(!f.keeps(b"share/doc/x/readme"));
        assert!(f.keeps(b"share/docs"));
        let f = filter(&[(RuleKind::Exclude, "share/doc")]);
        assert!(!f.keeps(b"share/doc/readme"));
        assert!(f.keeps(b"share/other"));
    }

    #[test]
    fn last_matching_rule_wins() {
        let f = filter(&[
            (RuleKind::Exclude, "**/*.pyc"),
            (RuleKind::Include, "lib/keep/*.pyc"),
        ]);
        assert!(!f.keeps(b"lib/a/__pycache__/x.pyc"));
        assert!(f.keeps(b"lib/keep/y.pyc"));
        assert!(f.keeps(b"lib/a/x.py"));
    }

    #[test]
    fn star_does_not_cross_directories() {
        let f = filter(&[(RuleKind::Exclude, "bin/*")]);
        assert!(!f.keeps(b"bin/python"));
        assert!(f.keeps(b"binx/python"));
    }
}
