//! Classifying files by their first bytes: ELF, Mach-O (thin and fat), PE, Python bytecode,
//! text and other binaries. Text means "no NUL byte anywhere", the rule git uses.

/// What kind of file the bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileKind {
    /// An ELF object (executable or shared library).
    Elf,
    /// A Mach-O object, thin or fat.
    MachO,
    /// A Windows PE executable or DLL.
    Pe,
    /// Python bytecode (`.pyc`).
    PythonBytecode,
    /// A file with no NUL byte.
    Text,
    /// Anything else.
    Binary,
}

impl FileKind {
    /// Whether the file is an executable object format that may carry Go build info.
    pub fn is_object(self) -> bool {
        matches!(self, FileKind::Elf | FileKind::MachO | FileKind::Pe)
    }
}

/// Classifies a file from its name, its first bytes, and whether it holds a NUL byte.
pub fn classify(name: &[u8], head: &[u8], has_nul: bool) -> FileKind {
    if name.ends_with(b".pyc") || name.ends_with(b".pyo") {
        return FileKind::PythonBytecode;
    }
    if head.starts_with(b"\x7fELF") {
        return FileKind::Elf;
    }
    if head.len() >= 4 {
        let magic = [head[0], head[1], head[2], head[3]];
        let macho = [
            [0xfe, 0xed, 0xfa, 0xce],
            [0xce, 0xfa, 0xed, 0xfe],
            [0xfe, 0xed, 0xfa, 0xcf],
            [0xcf, 0xfa, 0xed, 0xfe],
        ];
        if macho.contains(&magic) {
            return FileKind::MachO;
        }
        // Fat Mach-O shares 0xcafebabe with Java class files; a fat header has few architectures.
        if magic == [0xca, 0xfe, 0xba, 0xbe]
            && head.len() >= 8
            && head[4..7] == [0, 0, 0]
            && head[7] < 20
        {
            return FileKind::MachO;
        }
    }
    if head.starts_with(b"MZ") && head.len() >= 0x40 {
        let pe_offset =
            u32::from_le_bytes([head[0x3c], head[0x3d], head[0x3e], head[0x3f]]) as usize;
        if head.get(pe_offset..pe_offset + 4) == Some(b"PE\0\0") {
            return FileKind::Pe;
        }
    }
    if has_nul {
        FileKind::Binary
    } else {
        FileKind::Text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_numbers() {
        assert_eq!(classify(b"a", b"\x7fELF\x02\x01", true), FileKind::Elf);
        assert_eq!(
            classify(b"a", &[0xcf, 0xfa, 0xed, 0xfe, 7, 0, 0, 1], true),
            FileKind::MachO
        );
        assert_eq!(
            classify(b"a", &[0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 2], true),
            FileKind::MachO
        );
        assert_eq!(
            classify(b"A.class", &[0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 52], true),
            FileKind::Binary
        );
        assert_eq!(
            classify(b"x.pyc", b"\xa7\x0d\x0d\x0a", true),
            FileKind::PythonBytecode
        );
        assert_eq!(classify(b"x.sh", b"#!/bin/sh\n", false), FileKind::Text);
        let mut pe = vec![0u8; 0x80];
        pe[0] = b'M';
        pe[1] = b'Z';
        pe[0x3c] = 0x40;
        pe[0x40..0x44].copy_from_slice(b"PE\0\0");
        assert_eq!(classify(b"a.exe", &pe, true), FileKind::Pe);
    }
}
