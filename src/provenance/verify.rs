//! `gopack verify DIR`: [`verify`] compares an environment unpacked from a bundle (by `gopack
//! unpack`, or by `tar -x` and `bin/gopack-unpack`) with the manifest it carries, or with the
//! bundle's own manifest (`--bundle`), in parallel, and returns a [`Report`] of what is
//! missing, modified, extra, or has other permissions, and whether the environment is where
//! its files say it is.
//!
//! # What is compared
//! Every listed directory, symlink (its target, byte for byte), file and hard link (its mode,
//! and its content: size and sha256). Hard links that are still one file with their target
//! are read once. Anything on disk that the manifest does not list is extra, except the places
//! an environment writes by itself: `__pycache__` directories, and gopack's state in
//! `.gopack/` (`manifest.json`, `prefix`, the `relocating` journal of an interrupted
//! `gopack-unpack`, and `go/`, the `GOPATH` and `GOCACHE` activation sets up). Bytecode in a
//! listed `__pycache__` may be missing (Python writes it again); it is compared when present,
//! unless its source was rewritten by relocation (which removes it, and Python then compiles
//! a new one).
//!
//! # Relocated files
//! The files hold the prefix recorded in `.gopack/prefix` (or, before any relocation, the
//! packed one), call it NOW; the manifest's hashes are of the packed content, which holds the
//! packed prefix, FROM. A file without a relocation record must be the packed bytes. For a
//! relocated file verify takes the bytes on disk back to FROM and checks both directions, so
//! that a correct relocation is never a difference and every other change is one:
//!
//! - binary records: the C strings at the recorded offsets must be exactly the strings
//!   rendered for NOW (NUL-padded); rendered for FROM over the disk bytes instead, the whole
//!   file must have the manifest's size and sha256. Both hold exactly when the file is the
//!   packed file relocated to NOW.
//! - text records: the disk content D is rewritten from NOW to FROM by the text rule, giving
//!   P'; P' must have the manifest's sha256, and P' rewritten from FROM to NOW must give D
//!   again, byte for byte. Then D is exactly the relocation of the packed content, P'.
//!   The converse has one gap: a packed file that already held NOW (at a path boundary) for
//!   reasons of its own does not come back from D, and is reported as modified although it
//!   is not. That needs a file that named the destination before it was unpacked there.
//! - Python scripts whose `#!` line is written anew (`TextRecord::shebang`): the first line on
//!   disk must be the one rendered for NOW, the rest is checked as above, and the packed first
//!   line, which relocation does not keep, is taken to be `#!FROM/INTERPRETER[ ARGUMENT]` in
//!   the usual spellings (one blank or none after `#!`, a space or a tab before the argument,
//!   a `\r` at the end) or the form gopack renders for FROM; a packed line spelled otherwise
//!   is reported as modified.
//!
//! So a clean report means every listed file holds exactly the packed bytes, relocated to NOW
//! (up to sha256 collisions). Mach-O files re-signed by `gopack-unpack` on macOS differ from
//! that in their signature and are reported as modified.
//!
//! # Modes
//! Both unpack paths give a file its packed permission bits, minus the umask for users other
//! than root (as GNU tar does); setuid, setgid and sticky bits are never restored. A mode is
//! therefore accepted when it is the packed one or the packed one under this process's umask;
//! an environment unpacked under one umask and verified under another reports the
//! difference.
//!
//! # Where the environment is
//! When NOW is not the directory's path, the environment was moved without relocating (or,
//! with no `.gopack/prefix`, never relocated after `tar -x`): that is reported, and the files
//! are still compared against NOW. A `.gopack/relocating` journal means a `gopack-unpack` run
//! was stopped and must be run again.

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::Error as ProvenanceError;
use crate::archive::read::{open_bundle, read_leading};
use crate::error::{Error, Result, escape_bytes};
use crate::manifest::{FileRecord, MANIFEST_PATH, Manifest, PathKind};
use crate::relocate::apply::PatchedReader;
use crate::relocate::text::TextRewriter;
use crate::relocate::{BinaryRecord, ByteString, ShebangLine, TextRecord};
use crate::stream::{CHUNK, digest};

/// Checked options of `gopack verify`.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// The unpacked environment.
    pub dir: PathBuf,
    /// Compare with this bundle's manifest instead of the one the environment carries (which
    /// could have been changed together with the files).
    pub bundle: Option<PathBuf>,
}

/// What [`verify`] found. Paths are relative to the environment's root.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// The environment.
    pub root: ByteString,
    /// The prefix its files hold (`.gopack/prefix`, else the packed one).
    pub prefix: ByteString,
    /// Whether nothing was found.
    pub clean: bool,
    /// What was compared.
    pub checked: Checked,
    /// Listed entries that are not there.
    pub missing: Vec<ByteString>,
    /// Listed entries whose content, type or link target differ.
    pub modified: Vec<Modified>,
    /// Entries the manifest does not list, outside the places an environment writes by itself.
    pub extra: Vec<ByteString>,
    /// Listed entries whose permission bits differ.
    pub permissions: Vec<ModeChange>,
    /// Problems with where the environment is (moved without relocating, relocation stopped).
    pub location: Vec<String>,
}

/// Counts of what was compared.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Checked {
    /// Manifest entries looked at.
    pub entries: u64,
    /// Files whose content was hashed.
    pub files_hashed: u64,
    /// Bytes read and hashed.
    pub bytes: u64,
}

/// A listed entry that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Modified {
    /// The entry.
    pub path: ByteString,
    /// How it differs.
    pub what: String,
}

/// A listed entry with other permission bits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModeChange {
    /// The entry.
    pub path: ByteString,
    /// The packed mode, octal.
    pub expected: String,
    /// The mode on disk, octal.
    pub actual: String,
}

impl Report {
    /// How many differences were found.
    pub fn problems(&self) -> usize {
        self.missing.len()
            + self.modified.len()
            + self.extra.len()
            + self.permissions.len()
            + self.location.len()
    }
}

/// Reads and validates `DIR/.gopack/manifest.json`; returns it with its bytes and mtime.
///
/// # Errors
/// [`ProvenanceError::NotUnpacked`] when it is missing, too large or not a valid manifest.
pub(crate) fn read_carried_manifest(root: &Path) -> Result<(Manifest, Vec<u8>, u64)> {
    let not_unpacked = |reason: String| {
        Error::from(ProvenanceError::NotUnpacked {
            path: root.to_path_buf(),
            reason,
        })
    };
    let (bytes, mtime) = super::sbom::read_manifest_file(root)
        .map_err(|err| not_unpacked(format!("cannot read `{MANIFEST_PATH}`: {err}")))?;
    let manifest = Manifest::from_json(&bytes)
        .map_err(|reason| not_unpacked(format!("`{MANIFEST_PATH}`: {reason}")))?;
    Ok((manifest, bytes, mtime))
}

/// The prefix the files of the environment at `root` hold: the one `.gopack/prefix` records
/// (both unpack paths write it), else the packed one.
///
/// # Errors
/// I/O errors reading `.gopack/prefix`.
pub(crate) fn files_prefix(root: &Path, manifest: &Manifest) -> Result<Vec<u8>> {
    crate::relocate::apply::current_prefix(root, &manifest.relocation.source_prefix.0)
}

/// Whether `path` is a place an environment writes by itself (not reported as extra).
fn is_state(path: &[u8]) -> bool {
    path.split(|&c| c == b'/')
        .any(|part| part == b"__pycache__")
        || matches!(
            path,
            b".gopack/manifest.json" | b".gopack/prefix" | b".gopack/relocating" | b".gopack/go"
        )
        || path.starts_with(b".gopack/go/")
}

/// For `dir/__pycache__/name.TAG.pyc`, the source `dir/name.py`.
fn bytecode_source(path: &[u8]) -> Option<Vec<u8>> {
    let (dir, name) = match path.iter().rposition(|&c| c == b'/') {
        Some(slash) => (&path[..slash], &path[slash + 1..]),
        None => return None,
    };
    let parent = match dir.strip_suffix(b"__pycache__")? {
        b"" => &b""[..],
        parent => parent.strip_suffix(b"/")?,
    };
    if !name.ends_with(b".pyc") {
        return None;
    }
    let stem = &name[..name.iter().position(|&c| c == b'.')?];
    let mut source = parent.to_vec();
    if !source.is_empty() {
        source.push(b'/');
    }
    source.extend_from_slice(stem);
    source.extend_from_slice(b".py");
    Some(source)
}

/// What relocation did to a file.
#[derive(Clone, Copy)]
enum Change<'a> {
    Text(&'a TextRecord),
    Binary(&'a BinaryRecord),
}

/// Everything the per-entry checks share.
struct Context<'a> {
    root: &'a Path,
    from: &'a [u8],
    now: &'a [u8],
    umask: u32,
    listed: HashMap<&'a [u8], &'a FileRecord>,
    changes: HashMap<&'a [u8], Change<'a>>,
}

/// One difference of one entry.
enum Problem {
    Missing,
    Modified(String),
    Mode { expected: u32, actual: u32 },
}

/// What checking one entry found and cost.
#[derive(Default)]
struct Outcome {
    problems: Vec<Problem>,
    hashed: bool,
    bytes: u64,
}

impl Outcome {
    fn with(problem: Problem) -> Outcome {
        Outcome {
            problems: vec![problem],
            ..Outcome::default()
        }
    }
}

/// Checks the environment at `options.dir` against its manifest.
///
/// # Errors
/// [`ProvenanceError::NotUnpacked`] when the directory carries no readable manifest; with
/// `--bundle`, what reading the bundle and its checksum file reports; [`Error::Interrupted`];
/// I/O errors walking the tree. Differences are not errors: they are in the [`Report`].
pub fn verify(options: &VerifyOptions, cancel: &AtomicBool) -> Result<Report> {
    let root = std::path::absolute(&options.dir).map_err(|source| {
        Error::io(
            format!("cannot resolve `{}`", options.dir.display()),
            source,
        )
    })?;
    if !root.is_dir() {
        return Err(ProvenanceError::NotUnpacked {
            path: root,
            reason: "it is not a directory".into(),
        }
        .into());
    }
    let (carried, carried_bytes, _) = read_carried_manifest(&root)?;
    let mut report = Report {
        root: ByteString(root.as_os_str().as_bytes().to_vec()),
        ..Report::default()
    };
    let manifest = match &options.bundle {
        None => carried,
        Some(bundle) => {
            super::checksum::verify_sidecar(bundle)?;
            let mut reader = open_bundle(bundle)?;
            let leading = read_leading(&mut reader)?;
            if leading.bytes != carried_bytes {
                report.modified.push(Modified {
                    path: ByteString::from(MANIFEST_PATH),
                    what: "it is not the bundle's manifest".into(),
                });
            }
            leading.manifest
        }
    };
    let from = manifest.relocation.source_prefix.0.as_slice();
    let now = files_prefix(&root, &manifest)?;
    report.prefix = ByteString(now.clone());
    check_location(&root, &now, from, &mut report);

    let mut changes: HashMap<&[u8], Change<'_>> = HashMap::new();
    for record in &manifest.relocation.binary {
        changes.insert(&record.path.0, Change::Binary(record));
    }
    for record in &manifest.relocation.text {
        changes.insert(&record.path.0, Change::Text(record));
    }
    let context = Context {
        root: &root,
        from,
        now: &now,
        umask: umask(),
        listed: manifest
            .files
            .iter()
            .map(|record| (record.path.0.as_slice(), record))
            .collect(),
        changes,
    };
    let (outcomes, extra) = rayon::join(
        || {
            manifest
                .files
                .par_iter()
                .map(|record| {
                    if cancel.load(Ordering::Relaxed) {
                        return Err(Error::Interrupted);
                    }
                    Ok((record, check_entry(&context, record)))
                })
                .collect::<Result<Vec<_>>>()
        },
        || find_extra(&root, &context.listed, cancel),
    );
    for (record, outcome) in outcomes? {
        report.checked.entries += 1;
        report.checked.bytes += outcome.bytes;
        report.checked.files_hashed += u64::from(outcome.hashed);
        for problem in outcome.problems {
            let path = record.path.clone();
            match problem {
                Problem::Missing => report.missing.push(path),
                Problem::Modified(what) => report.modified.push(Modified { path, what }),
                Problem::Mode { expected, actual } => report.permissions.push(ModeChange {
                    path,
                    expected: format!("{expected:04o}"),
                    actual: format!("{actual:04o}"),
                }),
            }
        }
    }
    report.extra = extra?;
    report.modified.sort_by(|a, b| a.path.cmp(&b.path));
    report.clean = report.problems() == 0;
    Ok(report)
}

fn check_location(root: &Path, now: &[u8], from: &[u8], report: &mut Report) {
    if root.join(".gopack/relocating").exists() {
        report.location.push(
            "a relocation was stopped before it finished (`.gopack/relocating` is there); run `bin/gopack-unpack` to finish it".into(),
        );
    }
    let here = root.as_os_str().as_bytes();
    let canonical = fs_err::canonicalize(root).ok();
    let canonical = canonical.as_ref().map(|path| path.as_os_str().as_bytes());
    if now == here || Some(now) == canonical {
        return;
    }
    if root.join(".gopack/prefix").exists() || now != from {
        report.location.push(format!(
            "the environment was moved without relocating: its files hold `{}`, but it is at `{}`; run `bin/gopack-unpack`",
            escape_bytes(now),
            escape_bytes(here)
        ));
    } else {
        report.location.push(format!(
            "the environment was not relocated after it was extracted: its files hold `{}`, but it is at `{}`; run `bin/gopack-unpack`",
            escape_bytes(now),
            escape_bytes(here)
        ));
    }
}

fn umask() -> u32 {
    // SAFETY: umask has no preconditions and cannot fail; the value read is put back at once,
    // and verify creates no file in between.
    let old = unsafe { libc::umask(0o022) };
    // SAFETY: as above; this restores the value read.
    unsafe { libc::umask(old) };
    // `mode_t` is `u32` on Linux, `u16` on macOS.
    #[allow(clippy::useless_conversion)]
    let old = u32::from(old);
    old & 0o777
}

fn check_entry(context: &Context<'_>, record: &FileRecord) -> Outcome {
    let relative = record.path.0.as_slice();
    if relative == b".gopack/prefix" {
        return Outcome::default(); // state: rewritten by every relocation
    }
    let bytecode_of = bytecode_source(relative);
    if let Some(source) = &bytecode_of
        && matches!(
            context.changes.get(source.as_slice()),
            Some(Change::Text(_))
        )
        && context.from != context.now
    {
        return Outcome::default(); // removed by relocation; Python writes a new one
    }
    let path = context.root.join(std::ffi::OsStr::from_bytes(relative));
    let meta = match fs_err::symlink_metadata(&path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return if bytecode_of.is_some() {
                Outcome::default()
            } else {
                Outcome::with(Problem::Missing)
            };
        }
        Err(err) => return Outcome::with(Problem::Modified(format!("cannot read it: {err}"))),
    };
    let kind_now = describe(&meta);
    let wrong_type = |wanted: &str| {
        Outcome::with(Problem::Modified(format!(
            "it is {kind_now} now, not {wanted}"
        )))
    };
    match record.kind {
        PathKind::Dir if !meta.is_dir() => wrong_type("a directory"),
        PathKind::Dir => Outcome {
            problems: mode_problem(context, record, &meta).into_iter().collect(),
            ..Outcome::default()
        },
        PathKind::Symlink if !meta.file_type().is_symlink() => wrong_type("a symlink"),
        PathKind::Symlink => {
            let target = record.target.as_ref().map_or(&[][..], |t| t.0.as_slice());
            match fs_err::read_link(&path) {
                Ok(now) if now.as_os_str().as_bytes() == target => Outcome::default(),
                Ok(now) => Outcome::with(Problem::Modified(format!(
                    "it links to `{}`, not `{}`",
                    escape_bytes(now.as_os_str().as_bytes()),
                    escape_bytes(target)
                ))),
                Err(err) => Outcome::with(Problem::Modified(format!("cannot read it: {err}"))),
            }
        }
        PathKind::File | PathKind::Hardlink if !meta.is_file() => wrong_type("a regular file"),
        PathKind::File => check_file(context, record, relative, &path, &meta),
        PathKind::Hardlink => {
            // Its content is its target's, relocated by the target's record.
            let target = record.target.as_ref().map_or(&[][..], |t| t.0.as_slice());
            let Some(first) = context.listed.get(target) else {
                return Outcome::with(Problem::Modified("its target is not listed".into()));
            };
            let same_file =
                fs_err::symlink_metadata(context.root.join(std::ffi::OsStr::from_bytes(target)))
                    .is_ok_and(|other| other.dev() == meta.dev() && other.ino() == meta.ino());
            if same_file {
                // Read once, as its target; one file has one mode.
                Outcome {
                    problems: mode_problem(context, record, &meta).into_iter().collect(),
                    ..Outcome::default()
                }
            } else {
                let mut outcome = check_file(context, first, target, &path, &meta);
                outcome
                    .problems
                    .retain(|p| !matches!(p, Problem::Mode { .. }));
                outcome
                    .problems
                    .extend(mode_problem(context, record, &meta));
                outcome
            }
        }
    }
}

fn describe(meta: &Metadata) -> &'static str {
    let kind = meta.file_type();
    if kind.is_symlink() {
        "a symlink"
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_file() {
        "a regular file"
    } else {
        "a special file"
    }
}

fn mode_problem(context: &Context<'_>, record: &FileRecord, meta: &Metadata) -> Option<Problem> {
    let expected = record.mode & 0o777;
    let actual = meta.mode() & 0o7777;
    (actual != expected && actual != expected & !context.umask)
        .then_some(Problem::Mode { expected, actual })
}

/// Checks a regular file at `path` against `record` (whose relocation record is looked up by
/// `relative`, the record's own path).
fn check_file(
    context: &Context<'_>,
    record: &FileRecord,
    relative: &[u8],
    path: &Path,
    meta: &Metadata,
) -> Outcome {
    let mut outcome = Outcome {
        problems: mode_problem(context, record, meta).into_iter().collect(),
        ..Outcome::default()
    };
    let (Some(size), Some(crate::manifest::Sha256(sha256))) = (record.size, record.sha256) else {
        return outcome;
    };
    let change = context
        .changes
        .get(relative)
        .copied()
        .filter(|_| context.from != context.now);
    let same_length = !matches!(change, Some(Change::Text(_)));
    if same_length && meta.len() != size {
        outcome.problems.push(Problem::Modified(format!(
            "its size is {} bytes, not {size}",
            meta.len()
        )));
        return outcome;
    }
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(file) => file,
        Err(err) => {
            outcome
                .problems
                .push(Problem::Modified(format!("cannot read it: {err}")));
            return outcome;
        }
    };
    outcome.hashed = true;
    outcome.bytes = meta.len();
    let verdict = match change {
        None => digest(&file).map(|(sha, _)| (sha != sha256).then(|| "its content differs".into())),
        Some(Change::Binary(binary)) => binary_verdict(context, binary, &file, &sha256),
        Some(Change::Text(text)) => {
            text_matches(&file, text, context.from, context.now, size, &sha256).map(|same| {
                (!same)
                    .then(|| "its content differs (also after taking the relocation back)".into())
            })
        }
    };
    match verdict {
        Ok(None) => {}
        Ok(Some(what)) => outcome.problems.push(Problem::Modified(what)),
        Err(err) => outcome
            .problems
            .push(Problem::Modified(format!("cannot read it: {err}"))),
    }
    outcome
}

/// A binary-record file: its strings must be those rendered for NOW, and with the strings
/// rendered for FROM instead it must be the packed file.
fn binary_verdict(
    context: &Context<'_>,
    record: &BinaryRecord,
    file: &File,
    sha256: &[u8; 32],
) -> std::io::Result<Option<String>> {
    for slot in &record.slots {
        let Some(expected) = slot.render(context.now) else {
            return Ok(Some(format!(
                "a string at offset {} has no room for the prefix it should hold",
                slot.offset
            )));
        };
        let mut found = vec![0u8; expected.len()];
        file.read_exact_at(&mut found, slot.offset)?;
        if found != expected {
            return Ok(Some(format!(
                "the string at offset {} is not the relocated one",
                slot.offset
            )));
        }
    }
    let Ok(patches) = record.patches(context.from) else {
        return Ok(Some("its packed strings cannot be rendered".into()));
    };
    let (sha, _) = digest(PatchedReader::new(file, patches))?;
    Ok((sha != *sha256).then(|| "its content differs".into()))
}

/// The packed first lines a Python script with `line` may have had (see the module docs).
fn packed_first_lines(line: &ShebangLine, from: &[u8]) -> Vec<Vec<u8>> {
    let mut interpreter = from.to_vec();
    interpreter.push(b'/');
    interpreter.extend_from_slice(&line.interpreter.0);
    let argument = &line.argument.0;
    let separators: &[&[u8]] = if argument.is_empty() {
        &[b""]
    } else {
        &[b" ", b"\t"]
    };
    let mut lines = vec![line.render(from).0];
    for lead in [&b""[..], b" "] {
        for separator in separators {
            for end in [&b""[..], b"\r"] {
                let candidate = [b"#!", lead, &interpreter, separator, argument, end].concat();
                if !lines.contains(&candidate) {
                    lines.push(candidate);
                }
            }
        }
    }
    lines
}

/// Whether a text-record file is its packed content (`size` bytes with `sha256`) relocated
/// from `from` to `now`; see the module docs for the two directions.
fn text_matches(
    mut file: &File,
    record: &TextRecord,
    from: &[u8],
    now: &[u8],
    size: u64,
    sha256: &[u8; 32],
) -> std::io::Result<bool> {
    let mut first_lines = vec![Vec::new()];
    if let Some(line) = &record.shebang {
        let expected = line.render(now).0;
        let mut head = Vec::with_capacity(expected.len());
        (&mut file)
            .take(expected.len() as u64)
            .read_to_end(&mut head)?;
        if head != expected {
            return Ok(false);
        }
        first_lines = packed_first_lines(line, from);
    }
    let quoting = record.quoting;
    let mut back = TextRewriter::new(&quoting.escape(now), &quoting.escape(from), None);
    let mut forth = TextRewriter::new(&quoting.escape(from), &quoting.escape(now), None);
    let mut packed: Vec<Sha256> = first_lines
        .iter()
        .map(|line| {
            let mut hasher = Sha256::new();
            hasher.update(line);
            hasher
        })
        .collect();
    let mut packed_len = 0u64;
    // The disk bytes the way back and forth has not given again yet: the round trip must
    // give every disk byte, in order, and nothing else.
    let mut unmatched: Vec<u8> = Vec::with_capacity(2 * CHUNK);
    let mut matched = 0;
    let mut buffer = vec![0u8; CHUNK];
    let (mut taken_back, mut sent_forth) = (Vec::new(), Vec::new());
    loop {
        let read = match file.read(&mut buffer) {
            Ok(read) => read,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        taken_back.clear();
        sent_forth.clear();
        if read == 0 {
            back.finish(&mut taken_back);
        } else {
            unmatched.extend_from_slice(&buffer[..read]);
            back.feed(&buffer[..read], &mut taken_back);
        }
        for hasher in &mut packed {
            hasher.update(&taken_back);
        }
        packed_len += taken_back.len() as u64;
        forth.feed(&taken_back, &mut sent_forth);
        if read == 0 {
            forth.finish(&mut sent_forth);
        }
        if unmatched.get(matched..matched + sent_forth.len()) != Some(&sent_forth[..]) {
            return Ok(false);
        }
        matched += sent_forth.len();
        if matched >= CHUNK {
            unmatched.drain(..matched);
            matched = 0;
        }
        if read == 0 {
            break;
        }
    }
    if matched != unmatched.len() {
        return Ok(false);
    }
    Ok(first_lines.iter().zip(packed).any(|(line, hasher)| {
        line.len() as u64 + packed_len == size && <[u8; 32]>::from(hasher.finalize()) == *sha256
    }))
}

/// Everything under `root` the manifest does not list, outside the state places; an extra
/// directory is reported once, not its content.
fn find_extra(
    root: &Path,
    listed: &HashMap<&[u8], &FileRecord>,
    cancel: &AtomicBool,
) -> Result<Vec<ByteString>> {
    let mut extra = Vec::new();
    let mut walker = walkdir::WalkDir::new(root)
        .min_depth(1)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter();
    while let Some(entry) = walker.next() {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Interrupted);
        }
        let entry = entry.map_err(|err| {
            let path = err.path().unwrap_or(root).display().to_string();
            Error::io(
                format!("cannot read `{path}`"),
                err.into_io_error()
                    .unwrap_or_else(|| std::io::Error::other("a symlink loop")),
            )
        })?;
        let relative = entry
            .path()
            .strip_prefix(root)
            .map_or(&[][..], |path| path.as_os_str().as_bytes());
        if listed.contains_key(relative) {
            continue;
        }
        if !is_state(relative) {
            extra.push(ByteString(relative.to_vec()));
        }
        if entry.file_type().is_dir() {
            walker.skip_current_dir();
        }
    }
    Ok(extra)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_places_are_not_extra() {
        for state in [
            &b"lib/python3.11/__pycache__"[..],
            b"lib/python3.11/__pycache__/os.cpython-311.pyc",
            b"__pycache__",
            b".gopack/prefix",
            b".gopack/relocating",
            b".gopack/go/cache/x",
        ] {
            assert!(is_state(state), "{}", String::from_utf8_lossy(state));
        }
        for other in [
            &b".gopack/records.sh"[..],
            b".gopack/gopher",
            b"etc/pycache",
        ] {
            assert!(!is_state(other), "{}", String::from_utf8_lossy(other));
        }
    }

    #[test]
    fn bytecode_names_its_source() {
        assert_eq!(
            bytecode_source(b"lib/x/__pycache__/mod.cpython-311.opt-1.pyc").unwrap(),
            b"lib/x/mod.py"
        );
        assert_eq!(
            bytecode_source(b"__pycache__/a.cpython-311.pyc").unwrap(),
            b"a.py"
        );
        assert!(bytecode_source(b"lib/x/mod.cpython-311.pyc").is_none());
        assert!(bytecode_source(b"lib/x/__pycache__/notes.txt").is_none());
    }

    /// The packed content, relocated by the engine, comes back by the text check, and a
    /// change anywhere is found, with and without a regenerated `#!` line.
    #[test]
    fn text_check_accepts_exactly_the_relocated_content() {
        use crate::relocate::text::rewrite_all;
        let from = b"/src/env";
        let now = b"/opt/my env";
        let dir = tempfile::tempdir().unwrap();
        let shebang = ShebangLine {
            interpreter: ByteString::from("bin/python3.11"),
            argument: ByteString::from("-u"),
        };
        let cases: Vec<(Vec<u8>, Option<ShebangLine>)> = vec![
            (b"a=/src/env/x\nb=/src/env2\n/src/env".to_vec(), None),
            (
                b"#!/src/env/bin/python3.11 -u\nprint('/src/env/lib')\n".to_vec(),
                Some(shebang.clone()),
            ),
            (
                b"#!/src/env/bin/python3.11\t-u\r\nx\n".to_vec(),
                Some(shebang.clone()),
            ),
            (b"#!/src/env/bin/python3.11 -u".to_vec(), Some(shebang)),
        ];
        for (packed, line) in cases {
            let record = TextRecord {
                shebang: line.clone(),
                ..TextRecord::plain(ByteString::from("f"), 1)
            };
            let first = line.as_ref().map(|line| line.render(now).0);
            let relocated = rewrite_all(&packed, from, now, first);
            let sha: [u8; 32] = Sha256::digest(&packed).into();
            let path = dir.path().join("f");
            fs_err::write(&path, &relocated).unwrap();
            let file = File::open(&path).unwrap();
            assert!(
                text_matches(&file, &record, from, now, packed.len() as u64, &sha).unwrap(),
                "{}",
                String::from_utf8_lossy(&relocated)
            );
            for index in 0..relocated.len() {
                let mut changed = relocated.clone();
                changed[index] ^= 0x20;
                fs_err::write(&path, &changed).unwrap();
                let file = File::open(&path).unwrap();
                assert!(
                    !text_matches(&file, &record, from, now, packed.len() as u64, &sha).unwrap(),
                    "a change at {index} of {} went unnoticed",
                    String::from_utf8_lossy(&relocated)
                );
            }
        }
    }
}
