//! Text relocation: the one rule every relocation path applies (`--dest-prefix`, `gopack
//! unpack`, `bin/gopack-unpack`), streamed so no file is held whole.
//!
//! # The rule
//! Occurrences of the old prefix are searched left to right. One is replaced by the new prefix
//! when the byte after it ends the path: the end of the file, or any byte other than an ASCII
//! letter, digit, `_`, `.`, `+` or `-`. So `/opt/env` is replaced in `/opt/env/bin`,
//! `"/opt/env"` and `/opt/env:/x`, but not inside `/opt/env2` or `/opt/env.bak`. After a
//! replacement the search goes on after the occurrence; after an occurrence that is not
//! replaced, at its next byte.
//!
//! Inside shell-quoted data that gopack generated (`bin/activate`, `.gopack/env_vars.sh`), the
//! prefixes are compared and written in their quoted form ([`Quoting`]), so a new prefix holding
//! `'` or `$(…)` stays data.
//!
//! A Python script whose `#!` line names the environment's interpreter gets that line written
//! anew for the new prefix ([`ShebangLine`]), so the script itself is never wrapped.

use memchr::memmem::Finder;
use serde::{Deserialize, Serialize};

use super::bytes::ByteString;

/// Whether `byte` continues a file name, so that a prefix followed by it is another path.
pub fn continues_name(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'+' | b'-')
}

/// How the prefix is written inside a text file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Quoting {
    /// As it is.
    #[default]
    Plain,
    /// Inside a POSIX sh single-quoted string: `'` is written `'\''`.
    Sh,
    /// Inside a fish single-quoted string: `\` and `'` are preceded by `\`.
    Fish,
}

impl Quoting {
    /// `bytes` as they appear in a file quoted this way.
    pub fn escape(self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes.len() + 8);
        for &byte in bytes {
            match (self, byte) {
                (Quoting::Sh, b'\'') => out.extend_from_slice(b"'\\''"),
                (Quoting::Fish, b'\'' | b'\\') => out.extend_from_slice(&[b'\\', byte]),
                _ => out.push(byte),
            }
        }
        out
    }

    /// Whether this is [`Quoting::Plain`] (the manifest leaves it out).
    pub fn is_plain(&self) -> bool {
        *self == Quoting::Plain
    }
}

/// The `#!` line of a Python script naming an interpreter inside the environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShebangLine {
    /// The interpreter, relative to the prefix (`bin/python3.11`).
    pub interpreter: ByteString,
    /// The option argument after it, if any.
    #[serde(default, skip_serializing_if = "ByteString::is_empty")]
    pub argument: ByteString,
}

/// Longest `#!` line every Unix kernel runs (Linux before 5.1 cut it at 127 bytes).
pub const SHEBANG_LIMIT: usize = 127;

impl ShebangLine {
    /// The first line (without its newline) for an environment at `prefix`: `#!PREFIX/INTERP
    /// ARG`, or, when that is too long for the kernel or the path holds a space or tab, the
    /// two-language `/bin/sh` form that pip writes in the same case. `None` when neither works:
    /// the path holds bytes that form can not carry; the plain line is then written anyway.
    pub fn render(&self, prefix: &[u8]) -> (Vec<u8>, bool) {
        let mut interpreter = prefix.to_vec();
        interpreter.push(b'/');
        interpreter.extend_from_slice(&self.interpreter.0);
        let mut plain = b"#!".to_vec();
        plain.extend_from_slice(&interpreter);
        if !self.argument.0.is_empty() {
            plain.push(b' ');
            plain.extend_from_slice(&self.argument.0);
        }
        let blank = |c: &u8| matches!(c, b' ' | b'\t');
        if plain.len() <= SHEBANG_LIMIT && !interpreter.iter().any(blank) {
            return (plain, true);
        }
        let unsafe_byte = |c: &u8| matches!(c, b'\'' | b'"' | b'\\' | b'$' | b'`');
        if interpreter.iter().any(unsafe_byte) || self.argument.0.iter().any(unsafe_byte) {
            return (plain, false);
        }
        // sh runs line 2 (`exec` with the quoted interpreter); Python reads lines 2-3 as one
        // string literal and goes on with the script.
        let mut line = b"#!/bin/sh\n'''exec' \"".to_vec();
        line.extend_from_slice(&interpreter);
        line.extend_from_slice(b"\" ");
        if !self.argument.0.is_empty() {
            line.push(b'"');
            line.extend_from_slice(&self.argument.0);
            line.extend_from_slice(b"\" ");
        }
        line.extend_from_slice(b"\"$0\" \"$@\"\n' '''");
        (line, true)
    }
}

/// The second and third lines of the `/bin/sh` form [`ShebangLine::render`] writes.
const SH_FORM_LINE_2: &[u8] = b"'''exec' ";
const SH_FORM_LINE_3: &[u8] = b"' '''";

/// Where a rewrite with a new first line is in the file's first lines. The old first line is
/// dropped; when it is `#!/bin/sh` and the second line starts as the sh form's does, the second
/// line is dropped too, and the third when it is the sh form's `' '''`: so a script relocated
/// into the sh form and relocated again gets one first line, not two.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Head {
    /// In the old first line; what it started with (a few bytes).
    Line1(Vec<u8>),
    /// After `#!/bin/sh` (its newline held back); the second line's start.
    Line2(Vec<u8>),
    /// In a second line that is the sh form's: dropped up to its newline.
    Line2Dropped,
    /// After it: the third line's start.
    Line3(Vec<u8>),
    /// The first lines are behind.
    Done,
}

/// A streaming text rewrite: feed it the old bytes in chunks, collect the new ones.
pub struct TextRewriter {
    finder: Finder<'static>,
    new: Vec<u8>,
    /// The rendered first line, until it has been written.
    first_line: Option<Vec<u8>>,
    head: Head,
    /// Bytes received but not yet decided (a possible occurrence at the end).
    pending: Vec<u8>,
    /// Bytes replaced so far (occurrences).
    pub replaced: u64,
}

impl TextRewriter {
    /// Replaces `old` with `new` (both already in the file's [`Quoting`]); when `first_line` is
    /// given, the file's first line (or the three lines of the sh form) is replaced by it.
    pub fn new(old: &[u8], new: &[u8], first_line: Option<Vec<u8>>) -> TextRewriter {
        let head = if first_line.is_some() {
            Head::Line1(Vec::new())
        } else {
            Head::Done
        };
        TextRewriter {
            finder: Finder::new(old).into_owned(),
            new: new.to_vec(),
            first_line,
            head,
            pending: Vec::new(),
            replaced: 0,
        }
    }

    /// Takes the next chunk of the old content; appends what is decided to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let body = self.skip_head(input, out);
        self.pending.extend_from_slice(body);
        let consumed = self.scan(out, false);
        self.pending.drain(..consumed);
    }

    /// Ends the content; appends the rest to `out`.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if let Some(line) = self.first_line.take() {
            out.extend_from_slice(&line);
        }
        match std::mem::replace(&mut self.head, Head::Done) {
            Head::Line2(start) => {
                self.pending.push(b'\n');
                self.pending.extend_from_slice(&start);
            }
            Head::Line3(start) if start != SH_FORM_LINE_3 => {
                self.pending.push(b'\n');
                self.pending.extend_from_slice(&start);
            }
            _ => {}
        }
        let consumed = self.scan(out, true);
        self.pending.drain(..consumed);
    }

    /// Consumes what belongs to the old first lines; returns the rest of `input`, after putting
    /// held-back bytes that turned out to be body into `pending`.
    fn skip_head<'a>(&mut self, mut input: &'a [u8], out: &mut Vec<u8>) -> &'a [u8] {
        const SH: &[u8] = b"#!/bin/sh";
        if let Some(line) = self.first_line.take() {
            out.extend_from_slice(&line);
        }
        while !input.is_empty() {
            match &mut self.head {
                Head::Done => break,
                Head::Line1(start) => {
                    let newline = memchr::memchr(b'\n', input);
                    let line = &input[..newline.unwrap_or(input.len())];
                    // Only whether the line is exactly `#!/bin/sh` matters: keep one byte more.
                    let take = line.len().min((SH.len() + 1).saturating_sub(start.len()));
                    start.extend_from_slice(&line[..take]);
                    match newline {
                        Some(newline) if start.as_slice() == SH => {
                            self.head = Head::Line2(Vec::new());
                            input = &input[newline + 1..];
                        }
                        Some(newline) => {
                            self.head = Head::Done;
                            input = &input[newline..]; // its newline is body
                        }
                        None => input = &[],
                    }
                }
                Head::Line2(start) => {
                    let byte = input[0];
                    if SH_FORM_LINE_2.get(start.len()) == Some(&byte) {
                        start.push(byte);
                        input = &input[1..];
                        if start.len() == SH_FORM_LINE_2.len() {
                            self.head = Head::Line2Dropped;
                        }
                    } else {
                        self.pending.push(b'\n');
                        self.pending.extend_from_slice(start);
                        self.head = Head::Done;
                    }
                }
                Head::Line2Dropped => match memchr::memchr(b'\n', input) {
                    Some(newline) => {
                        self.head = Head::Line3(Vec::new());
                        input = &input[newline + 1..];
                    }
                    None => input = &[],
                },
                Head::Line3(start) => {
                    let byte = input[0];
                    if start.as_slice() == SH_FORM_LINE_3 && byte == b'\n' {
                        self.head = Head::Done; // its newline is body
                    } else if SH_FORM_LINE_3.get(start.len()) == Some(&byte) {
                        start.push(byte);
                        input = &input[1..];
                    } else {
                        self.pending.push(b'\n');
                        self.pending.extend_from_slice(start);
                        self.head = Head::Done;
                    }
                }
            }
        }
        input
    }

    /// Decides what can be decided in `pending`; returns how many bytes were consumed.
    fn scan(&mut self, out: &mut Vec<u8>, at_end: bool) -> usize {
        let old_len = self.finder.needle().len();
        let data = &self.pending;
        let mut position = 0;
        while let Some(found) = self.finder.find(&data[position..]) {
            let hit = position + found;
            let after = hit + old_len;
            let replace = match data.get(after) {
                Some(&byte) => !continues_name(byte),
                None if at_end => true,
                None => {
                    // The byte that decides is not here yet.
                    out.extend_from_slice(&data[position..hit]);
                    return hit;
                }
            };
            if replace {
                out.extend_from_slice(&data[position..hit]);
                out.extend_from_slice(&self.new);
                self.replaced += 1;
                position = after;
            } else {
                out.extend_from_slice(&data[position..=hit]);
                position = hit + 1;
            }
        }
        // No occurrence starts before `safe`: a later chunk can only complete one after it.
        let safe = if at_end {
            data.len()
        } else {
            data.len().saturating_sub(old_len - 1).max(position)
        };
        out.extend_from_slice(&data[position..safe]);
        safe
    }
}

/// The whole of `content` rewritten (for small, in-memory content).
pub fn rewrite_all(content: &[u8], old: &[u8], new: &[u8], first_line: Option<Vec<u8>>) -> Vec<u8> {
    let mut rewriter = TextRewriter::new(old, new, first_line);
    let mut out = Vec::with_capacity(content.len() + 64);
    rewriter.feed(content, &mut out);
    rewriter.finish(&mut out);
    out
}

/// Replaces the prefix `old` with `new` in `content` by [the rule](self).
pub fn replace_all(content: &[u8], old: &[u8], new: &[u8]) -> Vec<u8> {
    rewrite_all(content, old, new, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_at_path_boundaries_only() {
        assert_eq!(
            replace_all(b"a=/p/x b=/p", b"/p", b"/long/er"),
            b"a=/long/er/x b=/long/er"
        );
        assert_eq!(replace_all(b"none", b"/p", b"/q"), b"none");
        assert_eq!(
            replace_all(
                b"/opt/env2 /opt/env.bak /opt/env:/opt/env\n",
                b"/opt/env",
                b"/n"
            ),
            b"/opt/env2 /opt/env.bak /n:/n\n"
        );
        // A new prefix that contains the old one is applied once.
        assert_eq!(replace_all(b"/p/x", b"/p", b"/p/p"), b"/p/p/x");
        assert_eq!(
            replace_all(b"/x/env", b"/x/env", b"/x/env-new"),
            b"/x/env-new"
        );
    }

    #[test]
    fn streaming_matches_whole_content_at_every_split() {
        let content = b"x /ab/ab/abc /ab\n/ab2 /ab".to_vec();
        let whole = replace_all(&content, b"/ab", b"/NEW");
        for split in 0..=content.len() {
            for shebang in [None, Some(b"#!L".to_vec())] {
                let mut rewriter = TextRewriter::new(b"/ab", b"/NEW", shebang.clone());
                let mut out = Vec::new();
                rewriter.feed(&content[..split], &mut out);
                rewriter.feed(&content[split..], &mut out);
                rewriter.finish(&mut out);
                let expected = rewrite_all(&content, b"/ab", b"/NEW", shebang.clone());
                assert_eq!(out, expected, "split at {split}");
                if shebang.is_none() {
                    assert_eq!(out, whole);
                }
            }
        }
    }

    #[test]
    fn quoting_escapes_as_the_shells_read_it() {
        assert_eq!(Quoting::Sh.escape(b"/a'b"), b"/a'\\''b");
        assert_eq!(Quoting::Fish.escape(b"/a'b\\c"), b"/a\\'b\\\\c");
        assert_eq!(Quoting::Plain.escape(b"/a'b"), b"/a'b");
    }

    #[test]
    fn shebang_lines_fall_back_for_long_or_spaced_paths() {
        let line = ShebangLine {
            interpreter: ByteString::from("bin/python3.11"),
            argument: ByteString::from("-u"),
        };
        assert_eq!(line.render(b"/opt/env").0, b"#!/opt/env/bin/python3.11 -u");
        let (spaced, ok) = line.render(b"/opt/my env");
        assert!(ok);
        assert_eq!(
            spaced,
            b"#!/bin/sh\n'''exec' \"/opt/my env/bin/python3.11\" \"-u\" \"$0\" \"$@\"\n' '''"
        );
        let long = vec![b'x'; 200];
        assert!(line.render(&long).0.starts_with(b"#!/bin/sh\n"));
        let (plain, ok) = line.render(b"/opt/a b$c");
        assert!(!ok);
        assert_eq!(plain, b"#!/opt/a b$c/bin/python3.11 -u");
    }

    #[test]
    fn a_script_in_the_sh_form_relocated_again_gets_one_first_line() {
        let line = ShebangLine {
            interpreter: ByteString::from("bin/python3.11"),
            argument: ByteString::default(),
        };
        let packed = b"#!/a/bin/python3.11\n\"\"\"Doc.\"\"\"\nprint('/a')\n".to_vec();
        let spaced = rewrite_all(&packed, b"/a", b"/b c", Some(line.render(b"/b c").0));
        assert!(spaced.starts_with(b"#!/bin/sh\n'''exec' \"/b c/bin/python3.11\""));
        let again = rewrite_all(&spaced, b"/b c", b"/d", Some(line.render(b"/d").0));
        assert_eq!(
            again,
            b"#!/d/bin/python3.11\n\"\"\"Doc.\"\"\"\nprint('/d')\n"
        );
        // A script that merely starts with `#!/bin/sh` keeps its second line.
        let other = rewrite_all(
            b"#!/bin/sh\necho '/a'\n",
            b"/a",
            b"/d",
            Some(b"#!X".to_vec()),
        );
        assert_eq!(other, b"#!X\necho '/d'\n");
    }
}
