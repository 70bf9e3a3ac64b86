//! Shebang lines of shell and Perl scripts that name an interpreter inside the environment
//! become relocatable launchers: `#!/bin/sh` finds the interpreter relative to the script's own
//! location at run time and execs it, keeping the interpreter's option argument. (Python
//! scripts are not wrapped: their `#!` line is written anew on the target.) The kernel limit on shebang length (127 bytes
//! before Linux 5.1, 255 after, 512 on macOS) and spaces in paths then no longer matter, and the
//! script does not depend on `PATH` (unlike conda-pack's `#!/usr/bin/env python`).

/// A parsed `#!` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shebang<'a> {
    /// The interpreter path.
    pub interpreter: &'a [u8],
    /// Everything after the interpreter, trimmed: the kernel passes it as one argument.
    pub argument: &'a [u8],
    /// Index of the byte after the line (after its `\n`, or the end of the content).
    pub line_end: usize,
}

/// Parses the first line of `content` when it is a shebang.
pub fn parse(content: &[u8]) -> Option<Shebang<'_>> {
    let rest = content.strip_prefix(b"#!")?;
    let newline = memchr::memchr(b'\n', rest);
    let line = &rest[..newline.unwrap_or(rest.len())];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let start = line.iter().position(|c| !matches!(c, b' ' | b'\t'))?;
    let line = &line[start..];
    let end = line
        .iter()
        .position(|c| matches!(c, b' ' | b'\t'))
        .unwrap_or(line.len());
    let interpreter = &line[..end];
    let argument = trim(&line[end..]);
    let line_end = newline.map_or(content.len(), |n| n + 3);
    Some(Shebang {
        interpreter,
        argument,
        line_end,
    })
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &bytes[start..end]
}

/// How an interpreter family is re-entered from a `/bin/sh` launcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Python: the sh lines sit inside a string literal Python ignores.
    Python,
    /// sh-compatible shells: the launcher re-runs the script, which skips the launcher the
    /// second time through an environment variable.
    Shell,
    /// Perl: `perl -x` skips everything before the `#!…perl` line.
    Perl,
}

/// The family of an interpreter, from its file name.
pub fn family(interpreter: &[u8]) -> Option<Family> {
    let name = interpreter
        .rsplit(|&c| c == b'/')
        .next()
        .unwrap_or(interpreter);
    let name = std::str::from_utf8(name).ok()?;
    if let Some(version) = name.strip_prefix("python")
        && version.chars().all(|c| c.is_ascii_digit() || c == '.')
    {
        return Some(Family::Python);
    }
    match name {
        "sh" | "bash" | "dash" | "zsh" | "ksh" | "mksh" | "ash" => Some(Family::Shell),
        "perl" => Some(Family::Perl),
        _ if name.starts_with("perl5") => Some(Family::Perl),
        _ => None,
    }
}

/// Bytes that must not appear in a launcher's relative path or option: they would need quoting
/// in sh and could end Python's string literal early.
fn unsafe_byte(c: u8) -> bool {
    matches!(c, b'\'' | b'"' | b'\\' | b'$' | b'`' | b'\n' | b'\r' | 0)
}

/// sh lines that set `here` to the directory of the script, following symlinks to it where
/// `readlink` exists (it is not in older POSIX, so its absence is tolerated).
const FIND_HERE: &str = "self=$0
while [ -h \"$self\" ] && command -v readlink >/dev/null 2>&1; do
  link=$(readlink \"$self\")
  case $link in /*) self=$link ;; *) self=${self%/*}/$link ;; esac
done
case $self in */*) here=${self%/*} ;; *) here=. ;; esac
";

/// Builds the launcher that replaces `content`'s shebang line. `relative_interpreter` is the
/// interpreter's path relative to the script's directory. Returns `None` when the interpreter
/// family is not known or the path or option holds bytes a launcher cannot carry safely.
pub fn launcher(
    content: &[u8],
    shebang: &Shebang<'_>,
    relative_interpreter: &[u8],
) -> Option<Vec<u8>> {
    let family = family(shebang.interpreter)?;
    if relative_interpreter.iter().copied().any(unsafe_byte)
        || shebang.argument.iter().copied().any(unsafe_byte)
        || relative_interpreter.windows(3).any(|w| w == b"'''")
    {
        return None;
    }
    let interpreter = String::from_utf8_lossy(relative_interpreter);
    let argument = if shebang.argument.is_empty() {
        String::new()
    } else {
        format!(" \"{}\"", String::from_utf8_lossy(shebang.argument))
    };
    let body = &content[shebang.line_end..];
    let mut out = Vec::with_capacity(content.len() + 512);
    out.extend_from_slice(b"#!/bin/sh\n");
    match family {
        // Python scripts keep their bytes: the target rewrites their `#!` line (see
        // `text::ShebangLine`), since any launcher changes what a Python file means.
        Family::Python => return None,
        Family::Shell => {
            out.extend_from_slice(
                b"# gopack launcher: re-runs this script with the environment's shell\n",
            );
            out.extend_from_slice(b"if [ \"${GOPACK_LAUNCHED-}\" != \"$0\" ]; then\n");
            for line in FIND_HERE.lines() {
                out.extend_from_slice(format!("  {line}\n").as_bytes());
            }
            out.extend_from_slice(
                format!(
                    "  GOPACK_LAUNCHED=$0; export GOPACK_LAUNCHED\n  exec \"$here/{interpreter}\"{argument} \"$0\" \"$@\"\nfi\nunset GOPACK_LAUNCHED\n"
                )
                .as_bytes(),
            );
        }
        Family::Perl => {
            out.extend_from_slice(
                b"# gopack launcher: runs the environment's Perl, which skips to the #!perl line\n",
            );
            out.extend_from_slice(FIND_HERE.as_bytes());
            out.extend_from_slice(
                format!("exec \"$here/{interpreter}\" -x \"$0\" \"$@\"\n").as_bytes(),
            );
            out.extend_from_slice(b"#!perl");
            if !shebang.argument.is_empty() {
                out.push(b' ');
                out.extend_from_slice(shebang.argument);
            }
            out.push(b'\n');
        }
    }
    out.extend_from_slice(body);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_interpreter_and_single_option_argument() {
        let shebang = parse(b"#! /p/bin/python3.11 -u -E\r\nprint(1)\n").unwrap();
        assert_eq!(shebang.interpreter, b"/p/bin/python3.11");
        assert_eq!(shebang.argument, b"-u -E");
        assert_eq!(shebang.line_end, 28);
        assert_eq!(parse(b"#!/bin/sh").unwrap().line_end, 9);
        assert!(parse(b"print(1)").is_none());
    }

    #[test]
    fn families() {
        assert_eq!(family(b"/x/bin/python3.11"), Some(Family::Python));
        assert_eq!(family(b"/x/bin/python"), Some(Family::Python));
        assert_eq!(family(b"/x/bin/pythonw"), None);
        assert_eq!(family(b"/x/bin/bash"), Some(Family::Shell));
        assert_eq!(family(b"/x/bin/perl"), Some(Family::Perl));
        assert_eq!(family(b"/x/bin/node"), None);
    }

    #[test]
    fn shell_launcher_keeps_option_and_body_and_python_gets_none() {
        let content = b"#!/p/bin/bash -e\necho hi\n";
        let shebang = parse(content).unwrap();
        let out = String::from_utf8(launcher(content, &shebang, b"bash").unwrap()).unwrap();
        assert!(out.starts_with("#!/bin/sh\n"));
        assert!(
            out.contains("exec \"$here/bash\" \"-e\" \"$0\" \"$@\""),
            "{out}"
        );
        assert!(out.ends_with("unset GOPACK_LAUNCHED\necho hi\n"), "{out}");
        let python = b"#!/p/bin/python3.11\nprint(1)\n";
        assert!(launcher(python, &parse(python).unwrap(), b"python3.11").is_none());
    }

    #[test]
    fn refuses_unsafe_paths() {
        let content = b"#!/p/bin/bash\n";
        let shebang = parse(content).unwrap();
        assert!(launcher(content, &shebang, b"we'ird/bash").is_none());
        assert!(launcher(content, &shebang, b"a$b/bash").is_none());
    }
}
