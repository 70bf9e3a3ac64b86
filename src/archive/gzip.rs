//! gzip on every core, with output that does not depend on the number of cores: the input is
//! cut into fixed 1 MiB pieces, each compressed on its own (rayon) as raw deflate ending in a
//! sync flush (an empty stored block, so the next piece starts on a byte boundary), the last
//! one ending the deflate stream; the pieces are written in order between one gzip header and
//! one trailer (RFC 1952: CRC-32 and length of the whole input). One gzip member, readable by
//! every gzip reader; pigz's `--independent` mode makes the same kind of stream.
//!
//! The header holds no time and no name (mtime 0, OS 255 "unknown"), so the same input gives
//! the same bytes. At most two pieces per worker are in flight, so memory stays bounded. The
//! workers are the encoder's own (`threads` of them, for `-j`), not rayon's global pool.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc;

use flate2::{Compress, Compression, FlushCompress, Status};

/// The size of the pieces compressed independently.
pub const PIECE: usize = 1 << 20;

/// A gzip encoder that compresses pieces of its input in parallel.
pub struct ParallelGzip<W: Write> {
    sink: W,
    level: Compression,
    piece: Vec<u8>,
    crc: flate2::Crc,
    submitted: u64,
    written: u64,
    in_flight_limit: usize,
    pool: rayon::ThreadPool,
    sender: mpsc::Sender<(u64, io::Result<Vec<u8>>)>,
    receiver: mpsc::Receiver<(u64, io::Result<Vec<u8>>)>,
    ready: BTreeMap<u64, Vec<u8>>,
}

/// gzip header: magic, deflate, no flags, mtime 0, no extra flags, OS unknown (RFC 1952 2.3).
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

impl<W: Write> ParallelGzip<W> {
    /// An encoder at `level` (1–9) writing to `sink`, keeping about `threads` workers busy.
    pub fn new(mut sink: W, level: u32, threads: usize) -> io::Result<Self> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|index| format!("gopack-gzip-{index}"))
            .build()
            .map_err(io::Error::other)?;
        sink.write_all(&HEADER)?;
        let (sender, receiver) = mpsc::channel();
        Ok(ParallelGzip {
            sink,
            level: Compression::new(level.clamp(1, 9)),
            piece: Vec::with_capacity(PIECE),
            crc: flate2::Crc::new(),
            submitted: 0,
            written: 0,
            in_flight_limit: threads.max(1) * 2,
            pool,
            sender,
            receiver,
            ready: BTreeMap::new(),
        })
    }

    fn submit(&mut self, last: bool) -> io::Result<()> {
        while self.submitted - self.written >= self.in_flight_limit as u64 {
            self.wait_one()?;
        }
        let input = std::mem::replace(
            &mut self.piece,
            Vec::with_capacity(if last { 0 } else { PIECE }),
        );
        let sender = self.sender.clone();
        let sequence = self.submitted;
        let level = self.level;
        self.pool.spawn(move || {
            // The receiver is gone only when the encoder was dropped on an error.
            let _ = sender.send((sequence, deflate_piece(&input, level, last)));
        });
        self.submitted += 1;
        while let Ok((sequence, bytes)) = self.receiver.try_recv() {
            self.ready.insert(sequence, bytes?);
        }
        self.drain()
    }

    /// Blocks until one more piece is compressed, then writes whatever is ready in order.
    fn wait_one(&mut self) -> io::Result<()> {
        let (sequence, bytes) = self
            .receiver
            .recv()
            .map_err(|_| io::Error::other("a compression worker stopped"))?;
        self.ready.insert(sequence, bytes?);
        self.drain()
    }

    fn drain(&mut self) -> io::Result<()> {
        while let Some(bytes) = self.ready.remove(&self.written) {
            self.sink.write_all(&bytes)?;
            self.written += 1;
        }
        Ok(())
    }

    /// Compresses what is left, writes the trailer and returns the sink.
    pub fn finish(mut self) -> io::Result<W> {
        self.submit(true)?;
        while self.written < self.submitted {
            self.wait_one()?;
        }
        let crc = self.crc.sum();
        let length = self.crc.amount();
        self.sink.write_all(&crc.to_le_bytes())?;
        self.sink.write_all(&length.to_le_bytes())?;
        Ok(self.sink)
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, mut buf: &[u8]) -> io::Result<usize> {
        let total = buf.len();
        self.crc.update(buf);
        while !buf.is_empty() {
            let room = PIECE - self.piece.len();
            let (now, rest) = buf.split_at(room.min(buf.len()));
            self.piece.extend_from_slice(now);
            buf = rest;
            if self.piece.len() == PIECE {
                self.submit(false)?;
            }
        }
        Ok(total)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.sink.flush()
    }
}

/// Raw deflate of one piece: ends with a sync flush, or, for the last piece, ends the stream.
fn deflate_piece(input: &[u8], level: Compression, last: bool) -> io::Result<Vec<u8>> {
    let mut compress = Compress::new(level, false);
    let mut out = Vec::with_capacity(input.len() / 2 + 1024);
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    loop {
        let consumed = compress.total_in() as usize;
        let status = compress
            .compress_vec(&input[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let all_in = compress.total_in() as usize == input.len();
        let room_left = out.len() < out.capacity();
        match status {
            Status::StreamEnd => break,
            _ if !last && all_in && room_left => break,
            _ => out.reserve(out.capacity().max(4096)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn round_trip(input: &[u8], threads: usize) -> Vec<u8> {
        let mut encoder = ParallelGzip::new(Vec::new(), 6, threads).unwrap();
        // Odd write sizes cross piece boundaries.
        for chunk in input.chunks(7919) {
            encoder.write_all(chunk).unwrap();
        }
        let compressed = encoder.finish().unwrap();
        let mut decoded = Vec::new();
        flate2::read::GzDecoder::new(&compressed[..])
            .read_to_end(&mut decoded)
            .unwrap();
        assert_eq!(decoded, input);
        compressed
    }

    #[test]
    fn output_is_one_gzip_member_whatever_the_thread_count() {
        let mut input = Vec::new();
        for i in 0..(PIECE * 5 / 2) {
            input.push(((i * 31) % 251) as u8 ^ ((i >> 12) as u8));
        }
        let one = round_trip(&input, 1);
        let four = round_trip(&input, 4);
        assert_eq!(one, four);
        // A single-member reader sees everything, so it is one member.
        assert_eq!(&one[..10], &HEADER);
    }

    #[test]
    fn empty_and_exact_piece_inputs() {
        round_trip(b"", 2);
        round_trip(&vec![b'a'; PIECE], 2);
        round_trip(&vec![b'b'; PIECE * 2], 2);
    }
}
