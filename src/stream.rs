//! Byte streams, as every stage reads and writes them: the chunk size, filling a buffer from a
//! reader, the sha256 of a stream, and a writer that counts and hashes what passes through it.

use std::io::{Read, Write};

/// Bytes read per chunk.
pub const CHUNK: usize = 256 * 1024;

/// Reads until `buffer` is full or the file ends.
pub fn read_full(reader: &mut (impl Read + ?Sized), buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(filled)
}

/// sha256 and length of everything `reader` yields.
///
/// # Errors
/// The reader's errors.
pub fn digest(mut reader: impl Read) -> std::io::Result<([u8; 32], u64)> {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    let mut buffer = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let read = reader.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        total += read as u64;
    }
    Ok((hasher.finalize().into(), total))
}

/// A writer that counts and hashes (sha256) what passes through it to `inner`.
pub struct Hashed<W: Write> {
    inner: W,
    hasher: sha2::Sha256,
    bytes: u64,
}

impl<W: Write> Hashed<W> {
    /// Passes writes on to `inner`.
    pub fn new(inner: W) -> Hashed<W> {
        use sha2::Digest;
        Hashed {
            inner,
            hasher: sha2::Sha256::new(),
            bytes: 0,
        }
    }

    /// The inner writer, the sha256 and the count of everything written.
    pub fn finish(self) -> (W, [u8; 32], u64) {
        use sha2::Digest;
        (self.inner, self.hasher.finalize().into(), self.bytes)
    }
}

impl<W: Write> Write for Hashed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        use sha2::Digest;
        let written = self.inner.write(buf)?;
        self.hasher.update(&buf[..written]);
        self.bytes += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
