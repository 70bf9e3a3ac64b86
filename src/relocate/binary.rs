//! Binary relocation of C strings, length-preserving as conda does it: inside each NUL-terminated
//! string that holds the prefix, every occurrence is replaced and the string is padded with NUL
//! up to its slot, so no other byte of the file moves. A slot's room is the longest string
//! (plus its terminator) that fits; for files conda-build compiled under a 255-byte placeholder
//! the installer left that room as NUL padding, so targets longer than the source prefix fit.

// Offsets and sizes here come from files: arithmetic on them is checked.
#![deny(clippy::arithmetic_side_effects)]

use serde::{Deserialize, Serialize};

use super::bytes::ByteString;

/// One C string to rewrite on the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CStringSlot {
    /// File offset of the string's first byte.
    pub offset: u64,
    /// Bytes available from `offset`: the string, its NUL terminator and the padding after it.
    pub room: u64,
    /// The string split at each prefix occurrence: `pieces[0] PREFIX pieces[1] … PREFIX pieces[n]`.
    pub pieces: Vec<ByteString>,
}

impl CStringSlot {
    /// Checks that the slot lies inside a file of `file_size` bytes and that its pieces (joined
    /// by at least one byte per prefix occurrence, plus the terminating NUL) fit its room: then
    /// rendering it can never write outside the file, and its room is bounded by the file's
    /// size. Records read from a bundle or an extracted tree are checked so before use.
    ///
    /// # Errors
    /// Why it does not, as a sentence about "it" (the slot).
    pub fn check_inside(&self, file_size: u64) -> Result<(), String> {
        self.offset
            .checked_add(self.room)
            .filter(|&end| end <= file_size)
            .ok_or_else(|| format!("it does not lie inside the file ({file_size} bytes)"))?;
        if self.pieces.is_empty() {
            return Err("it has no pieces".into());
        }
        // One byte at least for each prefix occurrence and for the NUL terminator.
        let mut least = self.pieces.len() as u64;
        for piece in &self.pieces {
            least = least.saturating_add(piece.0.len() as u64);
        }
        if least > self.room {
            return Err("its string does not fit its room".into());
        }
        Ok(())
    }

    /// The string's bytes for `prefix`, NUL-padded to exactly `room` bytes, or `None` when it
    /// does not fit (the string needs at least one terminating NUL).
    pub fn render(&self, prefix: &[u8]) -> Option<Vec<u8>> {
        // The length first, with checked arithmetic: a hostile record cannot make this allocate
        // more than the room it claims.
        let occurrences = self.pieces.len().saturating_sub(1) as u64;
        let length = self
            .pieces
            .iter()
            .try_fold(0u64, |sum, piece| sum.checked_add(piece.0.len() as u64))?
            .checked_add(occurrences.checked_mul(prefix.len() as u64)?)?;
        if length >= self.room {
            return None;
        }
        let mut out = Vec::with_capacity(usize::try_from(self.room).ok()?);
        for (index, piece) in self.pieces.iter().enumerate() {
            if index > 0 {
                out.extend_from_slice(prefix);
            }
            out.extend_from_slice(&piece.0);
        }
        out.resize(self.room as usize, 0);
        Some(out)
    }
}

/// Finds the C string around `hit` in `window` (which starts at file offset `window_start`)
/// and splits it at every occurrence of `prefix`. `placeholder_len` is the length of the
/// conda-build placeholder the file was compiled with, when the record gives one: the slot then
/// extends over the NUL padding the installer left, if that padding is really there.
///
/// Returns `None` when the string is not complete inside the window.
pub fn slot_at(
    window: &[u8],
    window_start: u64,
    hit: u64,
    prefix: &[u8],
    placeholder_len: Option<usize>,
) -> Option<CStringSlot> {
    let local = usize::try_from(hit.checked_sub(window_start)?).ok()?;
    if local.checked_add(prefix.len())? > window.len() {
        return None;
    }
    let start = match window[..local].iter().rposition(|&c| c == 0) {
        Some(nul) => nul.checked_add(1)?,
        None if window_start == 0 => 0,
        None => return None,
    };
    let end = local.checked_add(memchr::memchr(0, &window[local..])?)?;
    let string = &window[start..end];
    let pieces: Vec<ByteString> = split_at_prefix(string, prefix);
    let occurrences = pieces.len().saturating_sub(1);
    let mut room = u64::try_from(string.len()).ok()?.checked_add(1)?;
    // The placeholder's length comes from a conda-meta record: every step is checked.
    let shortfall = placeholder_len
        .and_then(|len| len.checked_sub(prefix.len()))
        .filter(|&extra| extra > 0);
    if let Some(padding) = shortfall.and_then(|extra| occurrences.checked_mul(extra)) {
        let padded = end
            .checked_add(1)
            .and_then(|after| after.checked_add(padding))
            .and_then(|padded_end| window.get(end..padded_end));
        if padded.is_some_and(|bytes| bytes.iter().all(|&c| c == 0)) {
            room = room.checked_add(u64::try_from(padding).ok()?)?;
        }
    }
    Some(CStringSlot {
        offset: window_start.checked_add(u64::try_from(start).ok()?)?,
        room,
        pieces,
    })
}

fn split_at_prefix(string: &[u8], prefix: &[u8]) -> Vec<ByteString> {
    let mut pieces = Vec::new();
    let mut last = 0;
    for hit in memchr::memmem::find_iter(string, prefix) {
        pieces.push(ByteString(string[last..hit].to_vec()));
        last = hit.saturating_add(prefix.len());
    }
    pieces.push(ByteString(string[last..].to_vec()));
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_with_placeholder_padding_fits_a_longer_prefix() {
        // Installed from a 12-byte placeholder into the 5-byte prefix `/envs`: 7 NULs of padding.
        let mut data = b"\0junk\0/envs/lib\0".to_vec();
        data.extend([0u8; 7]);
        data.extend(b"next\0");
        let slot = slot_at(&data, 0, 6, b"/envs", Some(12)).unwrap();
        assert_eq!(slot.offset, 6);
        assert_eq!(slot.room, 10 + 7);
        assert_eq!(
            slot.pieces,
            vec![ByteString::from(""), ByteString::from("/lib")]
        );
        let rendered = slot.render(b"/longer-envs").unwrap();
        assert_eq!(rendered.len(), 17);
        assert!(rendered.starts_with(b"/longer-envs/lib\0"));
        assert!(slot.render(b"/much-longer-env").is_none());
    }

    #[test]
    fn slot_without_placeholder_has_source_room_and_all_occurrences() {
        let data = b"\0PATH=/e/a:/e/b\0x";
        let slot = slot_at(data, 100, 106, b"/e", None).unwrap();
        assert_eq!(slot.offset, 101);
        assert_eq!(slot.room, 15);
        assert_eq!(slot.pieces.len(), 3);
        assert_eq!(slot.render(b"/f").unwrap(), b"PATH=/f/a:/f/b\0");
        assert_eq!(slot.render(b"/fg").unwrap_or_default(), b"");
    }

    #[test]
    fn padding_that_is_not_there_is_not_claimed() {
        let data = b"\0/envs/lib\0abcdefg";
        let slot = slot_at(data, 0, 1, b"/envs", Some(12)).unwrap();
        assert_eq!(slot.room, 10);
    }

    #[test]
    fn incomplete_strings_are_refused() {
        assert!(slot_at(b"xx/envs/lib", 10, 12, b"/envs", None).is_none());
    }
}
