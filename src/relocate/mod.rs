//! Relocation: for each file that holds the source prefix, decide what is fixed at pack time
//! (shebangs → launchers, ELF search paths → `$ORIGIN`, conda-meta build-host paths dropped,
//! symlinks made relative) and what is recorded for the target to finish (text occurrences,
//! binary C-string slots). Go binaries are never C-string patched and `.pyc` files are never
//! patched. [`plan_file`] is pure apart from reading the file.

pub mod apply;
pub mod binary;
pub mod bytes;
pub mod carry;
pub mod codesign;
pub mod dest;
pub mod elf;
mod error;
pub mod in_place;
pub mod macho;
pub mod script;
pub mod shebang;
pub mod text;

use std::os::unix::fs::FileExt;

use serde::{Deserialize, Serialize};

pub use binary::CStringSlot;
pub use bytes::ByteString;
pub use error::Error;
pub use text::{Quoting, ShebangLine};

use crate::conda::{FileMode, ManagedPath};
use crate::paths::{dir_of, relative_path};
use crate::scan::classify::FileKind;
use crate::scan::content::FileFacts;

/// A change applied to a file's bytes while it is packed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Edit {
    /// Packed as it is on disk.
    #[default]
    None,
    /// Packed with this content instead.
    Replace(Vec<u8>),
    /// A conda-meta record packed without its build-host paths
    /// ([`crate::conda::meta::anonymise_record`]), rendered again from the file whenever its
    /// bytes are needed: a large environment's records are tens of MB.
    AnonymisedRecord,
    /// Packed with these same-length byte ranges overwritten.
    Patch(Vec<Patch>),
    /// Packed streamed through this text relocation (`--dest-prefix`). Boxed: the plan holds
    /// an edit for every file, and most have none.
    Relocate(Box<TextEdit>),
}

/// A text relocation applied while packing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextEdit {
    /// The file's record.
    pub record: TextRecord,
    /// The prefix the file holds.
    pub from: Vec<u8>,
    /// The prefix it gets.
    pub to: Vec<u8>,
}

/// Bytes overwritten at an offset (same length: nothing moves).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    /// File offset.
    pub offset: u64,
    /// The new bytes.
    pub bytes: Vec<u8>,
}

/// A text file the target rewrites: every occurrence of the prefix the files hold now, by the
/// rule of [`text`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextRecord {
    /// Path relative to the prefix.
    pub path: ByteString,
    /// Occurrences in the packed file.
    pub occurrences: usize,
    /// How the prefix is quoted in the file (gopack's own shell data).
    #[serde(default, skip_serializing_if = "Quoting::is_plain")]
    pub quoting: Quoting,
    /// The `#!` line of a Python script, written anew for the new prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shebang: Option<ShebangLine>,
    /// Other names of the same file (hard links), which get the new bytes too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<ByteString>,
    /// The file does not end with a newline (relocation never changes that). Recorded so the
    /// sh engine need not look at every file's last byte with another process.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_final_newline: bool,
}

impl TextRecord {
    /// A plain record for `path`.
    pub fn plain(path: ByteString, occurrences: usize) -> TextRecord {
        TextRecord {
            path,
            occurrences,
            quoting: Quoting::Plain,
            shebang: None,
            links: Vec::new(),
            no_final_newline: false,
        }
    }
}

/// A binary file whose C strings the target rewrites.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BinaryRecord {
    /// Path relative to the prefix.
    pub path: ByteString,
    /// Whether it is a Mach-O file (re-signed on macOS after patching).
    pub macho: bool,
    /// The strings.
    pub slots: Vec<CStringSlot>,
    /// Other names of the same file (hard links), which get the new bytes too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<ByteString>,
}

/// Everything relocation needs on the target, plus what was done at pack time.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Relocation {
    /// The prefix the packed files hold (the source prefix, or `--dest-prefix`).
    pub source_prefix: ByteString,
    /// Text files to rewrite.
    pub text: Vec<TextRecord>,
    /// Binary C strings to rewrite.
    pub binary: Vec<BinaryRecord>,
    /// What was fixed while packing.
    pub fixed: Vec<Fix>,
    /// Prefix bytes deliberately left alone.
    pub left_alone: Vec<LeftAlone>,
}

impl Relocation {
    /// Checks that every binary slot has room for `new_prefix`.
    ///
    /// # Errors
    /// [`Error::PrefixTooLong`] listing every slot that does not fit.
    pub fn check_fits(&self, new_prefix: &[u8]) -> crate::Result<()> {
        let too_long: Vec<String> = self
            .binary
            .iter()
            .flat_map(|record| {
                record
                    .slots
                    .iter()
                    .filter(|slot| slot.render(new_prefix).is_none())
                    .map(move |slot| {
                        format!("{} (room {} bytes)", record.path.display(), slot.room)
                    })
            })
            .collect();
        if too_long.is_empty() {
            return Ok(());
        }
        Err(Error::PrefixTooLong {
            prefix: String::from_utf8_lossy(new_prefix).into_owned(),
            len: new_prefix.len(),
            files: too_long,
        }
        .into())
    }
}

/// A change gopack made at pack time, for the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Fix {
    /// A shebang naming the prefix became a relocatable launcher.
    ShebangLauncher {
        /// The script.
        path: ByteString,
        /// The interpreter, relative to the prefix.
        interpreter: ByteString,
    },
    /// ELF search-path entries inside the prefix became `$ORIGIN`-relative.
    RelativeSearchPath {
        /// The ELF file.
        path: ByteString,
        /// The new `RPATH`/`RUNPATH` value.
        value: ByteString,
    },
    /// An absolute symlink into the prefix became relative.
    RelativeSymlink {
        /// The link.
        path: ByteString,
        /// Its new target.
        target: ByteString,
    },
    /// Build-host paths were dropped from a conda-meta record.
    AnonymisedRecord {
        /// The record.
        path: ByteString,
    },
    /// A Mach-O install name (`LC_ID_DYLIB`, `LC_LOAD_DYLIB`, …) inside the prefix became
    /// `@loader_path`-relative (`LC_RPATH` entries are [`Fix::RelativeSearchPath`]).
    RelativeInstallName {
        /// The Mach-O file.
        path: ByteString,
        /// The new install name.
        value: ByteString,
    },
}

impl Fix {
    /// The kind's name, as in the manifest (`shebang-launcher`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Fix::ShebangLauncher { .. } => "shebang-launcher",
            Fix::RelativeSearchPath { .. } => "relative-search-path",
            Fix::RelativeSymlink { .. } => "relative-symlink",
            Fix::AnonymisedRecord { .. } => "anonymised-record",
            Fix::RelativeInstallName { .. } => "relative-install-name",
        }
    }

    /// The path the fix was made to.
    pub fn path(&self) -> &[u8] {
        match self {
            Fix::ShebangLauncher { path, .. }
            | Fix::RelativeSearchPath { path, .. }
            | Fix::RelativeSymlink { path, .. }
            | Fix::RelativeInstallName { path, .. }
            | Fix::AnonymisedRecord { path } => &path.0,
        }
    }
}

/// Why prefix bytes are left in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LeftAloneReason {
    /// Python bytecode: the path names the source file for tracebacks; Python recompiles from
    /// the rewritten source.
    PythonBytecode,
    /// Go binaries are never patched: patching destroys their build info.
    GoBinary,
    /// Windows binaries are not patched (conda does not either).
    WindowsBinary,
    /// The C string around the prefix could not be found whole.
    StringTooLong,
}

impl LeftAloneReason {
    /// The name used in the manifest and in `inspect`.
    pub fn as_str(self) -> &'static str {
        match self {
            LeftAloneReason::PythonBytecode => "python-bytecode",
            LeftAloneReason::GoBinary => "go-binary",
            LeftAloneReason::WindowsBinary => "windows-binary",
            LeftAloneReason::StringTooLong => "string-too-long",
        }
    }

    /// Why, in a sentence for people.
    pub fn explain(self) -> &'static str {
        match self {
            LeftAloneReason::PythonBytecode => {
                "Python bytecode: the path names the source file for tracebacks; it is not rewritten"
            }
            LeftAloneReason::GoBinary => {
                "Go binaries are never patched: patching destroys their build info"
            }
            LeftAloneReason::WindowsBinary => "Windows binaries are not patched",
            LeftAloneReason::StringTooLong => {
                "the string around the prefix is too long to rewrite safely"
            }
        }
    }

    /// Whether the user can act on it (the others are reported in the summary only).
    pub fn worth_a_warning(self) -> bool {
        self != LeftAloneReason::PythonBytecode
    }
}

/// Prefix bytes that gopack leaves in place on purpose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeftAlone {
    /// The file.
    pub path: ByteString,
    /// Why.
    pub reason: LeftAloneReason,
    /// Occurrences left.
    pub occurrences: usize,
}

/// What happens to one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilePlan {
    /// The change applied while packing.
    pub edit: Edit,
    /// Text occurrences for the target.
    pub text: Option<TextRecord>,
    /// Binary slots for the target.
    pub binary: Option<BinaryRecord>,
    /// Changes made at pack time.
    pub fixes: Vec<Fix>,
    /// Occurrences left alone.
    pub left_alone: Option<LeftAlone>,
}

/// What the planner knows about a file besides its bytes.
pub struct FileContext<'a> {
    /// Path relative to the prefix.
    pub path: &'a [u8],
    /// Permission bits.
    pub mode: u32,
    /// What conda-meta says, for managed files.
    pub managed: Option<&'a ManagedPath>,
    /// The source prefix.
    pub prefix: &'a [u8],
    /// Whether this is a conda-meta record (`conda-meta/*.json`).
    pub is_record: bool,
    /// Whether the file is a Go binary.
    pub is_go: bool,
}

/// Decides what happens to one regular file. `file` is open for reading; it is read only where
/// the decision needs more than the facts (shebang scripts, records, ELF headers, the bytes
/// around binary occurrences).
///
/// # Errors
/// I/O errors reading `file`.
pub fn plan_file(
    context: &FileContext<'_>,
    facts: &FileFacts,
    file: &std::fs::File,
) -> std::io::Result<FilePlan> {
    let mut plan = FilePlan::default();
    let path = ByteString(context.path.to_vec());
    if context.is_record {
        let content = read_all(file, facts.size)?;
        if let Some(clean) = crate::conda::meta::anonymise_record(&content) {
            plan.fixes
                .push(Fix::AnonymisedRecord { path: path.clone() });
            let occurrences = memchr::memmem::find_iter(&clean, context.prefix).count();
            if occurrences > 0 {
                plan.text = Some(TextRecord::plain(path, occurrences));
            }
            plan.edit = Edit::AnonymisedRecord;
            return Ok(plan);
        }
    }
    if facts.prefix_hits.is_empty() {
        return Ok(plan);
    }
    let hits = facts.prefix_hits.len();
    match facts.kind {
        FileKind::PythonBytecode => {
            // Bytecode holds the source path for tracebacks only; Python recompiles from the
            // rewritten `.py` when its size or mtime no longer match.
            plan.left_alone = Some(left(path, LeftAloneReason::PythonBytecode, hits));
        }
        FileKind::Text => plan_text(context, facts, file, &mut plan, path)?,
        FileKind::Elf | FileKind::MachO | FileKind::Pe | FileKind::Binary => {
            plan_binary(context, facts, file, &mut plan, path)?
        }
    }
    Ok(plan)
}

fn left(path: ByteString, reason: LeftAloneReason, occurrences: usize) -> LeftAlone {
    LeftAlone {
        path,
        reason,
        occurrences,
    }
}

fn plan_text(
    context: &FileContext<'_>,
    facts: &FileFacts,
    file: &std::fs::File,
    plan: &mut FilePlan,
    path: ByteString,
) -> std::io::Result<()> {
    let executable = context.mode & 0o111 != 0;
    if let Some(shebang) = shebang::parse(&facts.head).filter(|_| executable) {
        let inside = shebang
            .interpreter
            .strip_prefix(context.prefix)
            .and_then(|rest| rest.strip_prefix(b"/"));
        if let Some(interpreter) = inside {
            if shebang::family(shebang.interpreter) == Some(shebang::Family::Python) {
                // Any launcher changes what a Python file means (its docstring, `from
                // __future__`, the coding line): the target writes the `#!` line anew instead.
                plan.text = Some(TextRecord {
                    shebang: Some(ShebangLine {
                        interpreter: ByteString(interpreter.to_vec()),
                        argument: ByteString(shebang.argument.to_vec()),
                    }),
                    ..TextRecord::plain(path, facts.prefix_hits.len())
                });
                return Ok(());
            }
            let content = read_all(file, facts.size)?;
            let shebang = shebang::parse(&content)
                .ok_or_else(|| std::io::Error::other("the file changed while it was read"))?;
            let relative = relative_path(dir_of(context.path), interpreter);
            if let Some(new) = shebang::launcher(&content, &shebang, &relative) {
                plan.fixes.push(Fix::ShebangLauncher {
                    path: path.clone(),
                    interpreter: ByteString(interpreter.to_vec()),
                });
                let occurrences = memchr::memmem::find_iter(&new, context.prefix).count();
                if occurrences > 0 {
                    plan.text = Some(TextRecord::plain(path, occurrences));
                }
                plan.edit = Edit::Replace(new);
                return Ok(());
            }
        }
    }
    plan.text = Some(TextRecord::plain(path, facts.prefix_hits.len()));
    Ok(())
}

fn plan_binary(
    context: &FileContext<'_>,
    facts: &FileFacts,
    file: &std::fs::File,
    plan: &mut FilePlan,
    path: ByteString,
) -> std::io::Result<()> {
    let prefix = context.prefix;
    let mut covered: Vec<(u64, u64)> = Vec::new();
    if facts.kind == FileKind::Elf {
        let mut patches = Vec::new();
        for search_path in elf::search_paths(file) {
            if search_path.shared {
                continue;
            }
            let Some(new) =
                elf::relative_search_path(&search_path.value, prefix, dir_of(context.path))
            else {
                continue;
            };
            if new.len() > search_path.value.len() {
                continue; // does not fit; the C-string record below covers it
            }
            let mut bytes = new.clone();
            bytes.resize(search_path.value.len(), 0);
            covered.push((
                search_path.offset,
                search_path.offset + search_path.value.len() as u64,
            ));
            patches.push(Patch {
                offset: search_path.offset,
                bytes,
            });
            plan.fixes.push(Fix::RelativeSearchPath {
                path: path.clone(),
                value: ByteString(new),
            });
        }
        if !patches.is_empty() {
            plan.edit = Edit::Patch(patches);
        }
    }
    if facts.kind == FileKind::MachO && !context.is_go {
        // Load-command paths become `@loader_path`-relative; the file is then re-signed. A file
        // goblin cannot parse, or whose signature cannot be re-signed, keeps its load commands
        // (the C-string records below cover them).
        let data = read_all(file, facts.size)?;
        if let Ok(load) = macho::plan_load_commands(&data, prefix, context.path)
            && !load.patches.is_empty()
        {
            let mut patched = data;
            macho::apply_patches(&mut patched, &load.patches);
            if let (signature, None) = macho::signature_patches(&patched) {
                let mut patches = load.patches;
                patches.extend(signature);
                covered.extend(load.covered);
                plan.fixes.extend(load.fixes);
                plan.edit = Edit::Patch(patches);
            }
        }
    }
    let remaining: Vec<u64> = facts
        .prefix_hits
        .iter()
        .copied()
        .filter(|hit| !covered.iter().any(|(start, end)| hit >= start && hit < end))
        .collect();
    if remaining.is_empty() {
        return Ok(());
    }
    if context.is_go {
        // C-string patching a Go binary destroys its module info and leaves NULs inside Go
        // strings (Go strings are not NUL-terminated); it is never done.
        plan.left_alone = Some(left(path, LeftAloneReason::GoBinary, remaining.len()));
        return Ok(());
    }
    if facts.kind == FileKind::Pe {
        // Windows binaries are not prefix-patched (conda does not either).
        plan.left_alone = Some(left(path, LeftAloneReason::WindowsBinary, remaining.len()));
        return Ok(());
    }
    let placeholder_len = context
        .managed
        .filter(|m| m.file_mode == Some(FileMode::Binary))
        .and_then(|m| m.placeholder.as_ref())
        .map(String::len);
    let mut slots: Vec<CStringSlot> = Vec::new();
    let mut unplaced = 0;
    const WINDOW: u64 = 8192;
    for hit in remaining {
        if slots
            .last()
            .is_some_and(|slot| hit < slot.offset + slot.room)
        {
            continue; // another occurrence inside the same string
        }
        let start = hit.saturating_sub(WINDOW);
        let len = (hit - start + WINDOW).min(facts.size - start);
        let mut window = vec![0u8; len as usize];
        file.read_exact_at(&mut window, start)?;
        match binary::slot_at(&window, start, hit, prefix, placeholder_len) {
            Some(slot) => slots.push(slot),
            None => unplaced += 1,
        }
    }
    if unplaced > 0 {
        plan.left_alone = Some(left(path.clone(), LeftAloneReason::StringTooLong, unplaced));
    }
    if !slots.is_empty() {
        plan.binary = Some(BinaryRecord {
            path,
            macho: facts.kind == FileKind::MachO,
            slots,
            links: Vec::new(),
        });
    }
    Ok(())
}

fn read_all(file: &std::fs::File, size: u64) -> std::io::Result<Vec<u8>> {
    let mut content = vec![0u8; size as usize];
    file.read_exact_at(&mut content, 0)?;
    Ok(content)
}
