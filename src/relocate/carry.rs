//! The native relocator a bundle carries as `.gopack/relocate`: this crate's `gopack-relocate`
//! executable ([`super::in_place`]), checked at pack time to be an ELF executable for the
//! environment's platform. `bin/gopack-unpack` runs it when the host can, and falls back to
//! POSIX sh when it cannot (another C library, a `noexec` mount, no execute bit).

use std::io::Read;
use std::path::{Path, PathBuf};

use super::Error as RelocateError;
use crate::error::Result;

/// Where the relocator sits in the bundle.
pub const CARRIED_PATH: &[u8] = b".gopack/relocate";

/// Which executable to carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelocatorChoice {
    /// The `gopack-relocate` executable.
    pub path: PathBuf,
    /// Named by the user (`--relocator`): anything that cannot be carried is an error. Otherwise
    /// (the one installed beside `gopack`) a relocator for another platform is left out.
    pub explicit: bool,
}

/// How the carried relocator is linked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Linkage {
    /// Needs no dynamic loader: runs on any kernel of its architecture.
    Static,
    /// Needs the dynamic loader and C library it was built against (or a newer one).
    Dynamic,
}

/// A relocator checked for the environment's platform.
#[derive(Debug, Clone)]
pub struct Carried {
    /// The executable.
    pub source: PathBuf,
    /// How it is linked.
    pub linkage: Linkage,
}

/// The ELF machine of a conda platform's executables, for the platforms a relocator can serve.
fn elf_machine(platform: &str) -> Option<u16> {
    use goblin::elf::header::{EM_386, EM_AARCH64, EM_ARM, EM_PPC64, EM_S390, EM_X86_64};
    Some(match platform {
        "linux-64" => EM_X86_64,
        "linux-aarch64" => EM_AARCH64,
        "linux-ppc64le" => EM_PPC64,
        "linux-s390x" => EM_S390,
        "linux-32" => EM_386,
        "linux-armv7l" | "linux-armv6l" => EM_ARM,
        _ => return None,
    })
}

/// Checks `choice` for an environment of `platform`: `Ok(None)` when a relocator found by
/// default does not serve this platform.
///
/// # Errors
/// [`RelocateError::Relocator`] when a relocator the user named is unreadable, not an ELF executable,
/// or built for another platform.
pub fn check(choice: &RelocatorChoice, platform: &str) -> Result<Option<Carried>> {
    match inspect(&choice.path, platform) {
        Ok(linkage) => Ok(Some(Carried {
            source: choice.path.clone(),
            linkage,
        })),
        Err(_) if !choice.explicit => Ok(None),
        Err(message) => Err(RelocateError::Relocator {
            path: choice.path.clone(),
            message,
        }
        .into()),
    }
}

fn inspect(path: &Path, platform: &str) -> std::result::Result<Linkage, String> {
    use goblin::elf::program_header::PT_INTERP;
    let mut head = Vec::new();
    fs_err::File::open(path)
        .and_then(|file| file.take(64 * 1024).read_to_end(&mut head))
        .map_err(|err| format!("cannot read it: {err}"))?;
    let elf = goblin::elf::Elf::parse_header(&head).map_err(|_| {
        "not an ELF executable (give the gopack-relocate built with gopack)".to_string()
    })?;
    let wanted = elf_machine(platform).ok_or_else(|| {
        format!("a relocator can serve only Linux environments, and this one is {platform}")
    })?;
    if elf.e_type != goblin::elf::header::ET_EXEC && elf.e_type != goblin::elf::header::ET_DYN {
        return Err("an ELF file, but not an executable".into());
    }
    if elf.e_machine != wanted {
        return Err(format!(
            "built for ELF machine {} ({}), not for this {platform} environment",
            elf.e_machine,
            goblin::elf::header::machine_to_str(elf.e_machine)
        ));
    }
    let unreadable = |_| "its program headers cannot be read".to_string();
    let ctx = goblin::container::Ctx::new(
        elf.container().map_err(unreadable)?,
        elf.endianness().map_err(unreadable)?,
    );
    // The program headers sit near the start of every executable the linkers write.
    let headers =
        goblin::elf::ProgramHeader::parse(&head, elf.e_phoff as usize, elf.e_phnum as usize, ctx)
            .map_err(unreadable)?;
    Ok(if headers.iter().any(|header| header.p_type == PT_INTERP) {
        Linkage::Dynamic
    } else {
        Linkage::Static
    })
}
