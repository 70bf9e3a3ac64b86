//! Reading a file once, in fixed-size chunks: its sha256, whether it holds a NUL byte, where the
//! source prefix occurs (memchr's memmem, carried across chunk borders), its kind, and where a Go
//! build-info blob starts. Memory use is one chunk per worker, whatever the file's size.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use memchr::memmem::Finder;
use sha2::{Digest, Sha256};

use super::Error as ScanError;
use super::classify::{FileKind, classify};
use crate::error::{Error, Result};
use crate::stream::{CHUNK, read_full};

/// How many leading bytes are kept for shebang and magic checks.
pub const HEAD: usize = 4096;
/// The 14-byte magic that starts a Go build-info blob (`\xff Go buildinf:`).
pub const GO_BUILDINFO_MAGIC: &[u8] = b"\xff Go buildinf:";

/// What one read of a file found.
#[derive(Debug, Clone)]
pub struct FileFacts {
    /// sha256 of the content as it is on disk.
    pub sha256: [u8; 32],
    /// Size read.
    pub size: u64,
    /// The file's kind.
    pub kind: FileKind,
    /// Offsets of every occurrence of the source prefix.
    pub prefix_hits: Vec<u64>,
    /// The first bytes (up to [`HEAD`]).
    pub head: Vec<u8>,
    /// The last byte, if the file is not empty.
    pub last_byte: Option<u8>,
    /// Offsets of the Go build-info magic, for object files (the first valid one is the blob;
    /// Go's own tools also hold the magic as a string constant).
    pub go_buildinfo: Vec<u64>,
}

thread_local! {
    /// The read buffer of this thread's analyses: one per worker instead of a 256 KiB
    /// allocation, zeroed, for each of 250,000 files. A failed read drops it; the next file
    /// makes another.
    static READ_BUFFER: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Reads `path` (expected to be `expected_size` bytes) and collects its [`FileFacts`].
///
/// # Errors
/// [`ScanError::Unreadable`] when it cannot be read; [`ScanError::ChangedDuringPack`] when its size is
/// not what the scan saw.
///
/// `cancel` is checked between chunks, so Ctrl-C stops even the read of a huge file.
pub fn analyse(
    path: &Path,
    name: &[u8],
    expected_size: u64,
    prefix: &Finder<'_>,
    cancel: &AtomicBool,
) -> Result<FileFacts> {
    let unreadable = |source| ScanError::Unreadable {
        path: path.to_path_buf(),
        source,
    };
    let mut file = crate::error::open_file(path).map_err(unreadable)?;
    let go = Finder::new(GO_BUILDINFO_MAGIC);
    let carry_len = prefix.needle().len().max(GO_BUILDINFO_MAGIC.len()) - 1;
    let mut buffer = READ_BUFFER.take();
    buffer.resize(CHUNK + carry_len, 0);
    let mut hasher = Sha256::new();
    let mut head = Vec::new();
    let mut has_nul = false;
    let mut kind = None;
    let mut prefix_hits = Vec::new();
    let mut go_buildinfo = Vec::new();
    // `base` is the file offset of buffer[0]; `kept` bytes at the front are carried over.
    let mut base: u64 = 0;
    let mut kept = 0usize;
    let mut total: u64 = 0;
    let mut last_byte = None;
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Interrupted);
        }
        let read = read_full(&mut file, &mut buffer[kept..]).map_err(unreadable)?;
        if read == 0 {
            break;
        }
        let fresh = &buffer[kept..kept + read];
        hasher.update(fresh);
        last_byte = fresh.last().copied();
        has_nul |= memchr::memchr(0, fresh).is_some();
        total += read as u64;
        if head.len() < HEAD {
            let take = (HEAD - head.len()).min(fresh.len());
            head.extend_from_slice(&fresh[..take]);
        }
        let window = &buffer[..kept + read];
        // A match that lies wholly inside the carried-over bytes was counted last time.
        let needle_len = prefix.needle().len();
        for hit in prefix.find_iter(window) {
            if hit + needle_len > kept {
                prefix_hits.push(base + hit as u64);
            }
        }
        if kind.is_none() && (head.len() >= HEAD || read < CHUNK) {
            // The NUL check here only covers what was read so far; the final kind is decided below.
            kind = Some(classify(name, &head, true));
        }
        if kind.is_some_and(FileKind::is_object) {
            for hit in go.find_iter(window) {
                if hit + GO_BUILDINFO_MAGIC.len() > kept {
                    go_buildinfo.push(base + hit as u64);
                }
            }
        }
        let window_len = kept + read;
        let new_kept = carry_len.min(window_len);
        buffer.copy_within(window_len - new_kept..window_len, 0);
        base += (window_len - new_kept) as u64;
        kept = new_kept;
    }
    READ_BUFFER.set(buffer);
    if total != expected_size {
        return Err(ScanError::ChangedDuringPack {
            path: path.to_path_buf(),
        }
        .into());
    }
    let kind = classify(name, &head, has_nul);
    if !kind.is_object() {
        go_buildinfo.clear();
    }
    Ok(FileFacts {
        sha256: hasher.finalize().into(),
        size: total,
        kind,
        prefix_hits,
        head,
        last_byte,
        go_buildinfo,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_hits_across_chunk_borders() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let prefix = b"/opt/some/prefix";
        let mut data = vec![b'x'; CHUNK - 5];
        data.extend_from_slice(prefix); // straddles the first chunk border
        data.extend(vec![0u8; CHUNK]);
        data.extend_from_slice(prefix);
        fs_err::write(&path, &data).unwrap();
        let finder = Finder::new(prefix);
        let facts = analyse(
            &path,
            b"blob",
            data.len() as u64,
            &finder,
            &AtomicBool::new(false),
        )
        .unwrap();
        assert_eq!(
            facts.prefix_hits,
            vec![(CHUNK - 5) as u64, (2 * CHUNK - 5 + prefix.len()) as u64]
        );
        assert_eq!(facts.kind, FileKind::Binary);
        assert_eq!(facts.sha256, <[u8; 32]>::from(Sha256::digest(&data)));
    }

    #[test]
    fn size_change_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs_err::write(&path, b"abc").unwrap();
        let finder = Finder::new(b"/p");
        assert!(matches!(
            analyse(&path, b"f", 4, &finder, &AtomicBool::new(false)),
            Err(crate::Error::Scan(ScanError::ChangedDuringPack { .. }))
        ));
    }
}
