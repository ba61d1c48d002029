//! The binary layout of welt's decoder tables (the "blob"), defined once for the writer
//! (`kernels_gen::Tables::to_blob`) and the reader (`welt_runtime::Tables::from_bytes`).
//!
//! Fixed and little-endian whatever the host:
//!
//! ```text
//! offset  size             field
//! 0       8                magic b"welt-tbl"                       MAGIC
//! 8       4                format version (1)                      FORMAT_VERSION
//! 12      4                header length in bytes (64)             HEADER_LEN
//! 16      4                vocabulary size V
//! 20      4                number of states N (dead state included)
//! 24      4                start state
//! 28      4                dead state (always 0)                   DEAD
//! 32      4                EOS token id, or 0xFFFF_FFFF if none    NO_EOS
//! 36      4                PAD token id
//! 40      4                default maximum word length, in tokens
//! 44      4                mask words per state W = ceil(V / 64)
//! 48      4                layout: 0 = direct, 1 = token classes   LAYOUT_DIRECT, LAYOUT_CLASSES
//! 52      4                token classes C (0 in the direct layout)
//! 56      8                reserved, zero
//! 64      ...              direct:  N * V * 2 bytes of entries, state-major
//!                          classes: V * 2 bytes of token classes (u16),
//!                                   then N * C * 2 bytes of entries, state-major
//! ...     N * W * 8        masks: per state W u64 words, bit t of the row = token t allowed
//! ...     ceil(N / 8)      boundary bits: bit s = state s is at a character boundary
//! ```
//!
//! An entry is a `u16`: the next state in the bits of [`NEXT_STATE`], the stop flag in
//! [`STOP_BIT`]. [`Header`] reads and writes the first 64 bytes and [`Sections`] says where
//! the rest lies; what the tables must satisfy beyond their header (entries in range, masks
//! agreeing with entries, ...) is checked by the reader.

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// The blob's magic bytes.
pub const MAGIC: [u8; 8] = *b"welt-tbl";
/// The format version this crate describes.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes in the header.
pub const HEADER_LEN: usize = 64;
/// The stop flag's bit in an entry.
pub const STOP_BIT: u16 = 1 << 15;
/// The bits of an entry that hold the next state.
pub const NEXT_STATE: u16 = !STOP_BIT;
/// The dead state: every forbidden token leads here, and nothing leaves it.
pub const DEAD: u16 = 0;
/// Most states an entry can name.
pub const MAX_STATES: usize = 1 << 15;
/// Most token classes the class layout can name (a class is a `u16`).
pub const MAX_CLASSES: usize = 1 << 16;
/// "No EOS" in the header's EOS field.
pub const NO_EOS: u32 = u32::MAX;
/// Layout id: one entry per (state, token).
pub const LAYOUT_DIRECT: u32 = 0;
/// Layout id: a class per token, one entry per (state, class).
pub const LAYOUT_CLASSES: u32 = 1;
/// Largest vocabulary a header may name (token ids and the row arithmetic stay in `u32`).
pub const MAX_VOCAB: u32 = u32::MAX / 2;

/// The next state of an entry.
#[inline(always)]
pub const fn next_state(entry: u16) -> u16 {
    entry & NEXT_STATE
}

/// Whether an entry's transition completes the word.
#[inline(always)]
pub const fn stops(entry: u16) -> bool {
    entry & STOP_BIT != 0
}

/// The entry for a transition to `next` (below [`MAX_STATES`]) with stop flag `stop`.
#[inline(always)]
pub const fn entry(next: u16, stop: bool) -> u16 {
    (next & NEXT_STATE) | if stop { STOP_BIT } else { 0 }
}

/// Byte offsets of the header fields.
pub mod field {
    /// Format version (`u32`).
    pub const VERSION: usize = 8;
    /// Header length (`u32`).
    pub const HEADER_LEN: usize = 12;
    /// Vocabulary size (`u32`).
    pub const VOCAB: usize = 16;
    /// Number of states (`u32`).
    pub const STATES: usize = 20;
    /// Start state (`u32`).
    pub const START: usize = 24;
    /// Dead state (`u32`, always 0).
    pub const DEAD: usize = 28;
    /// EOS token (`u32`, [`super::NO_EOS`] if none).
    pub const EOS: usize = 32;
    /// PAD token (`u32`).
    pub const PAD: usize = 36;
    /// Default word length limit (`u32`).
    pub const MAX_WORD_LEN: usize = 40;
    /// Mask words per state (`u32`).
    pub const MASK_WORDS: usize = 44;
    /// Layout id (`u32`).
    pub const LAYOUT: usize = 48;
    /// Token classes (`u32`).
    pub const CLASSES: usize = 52;
    /// First of the reserved bytes (8 bytes, zero).
    pub const RESERVED: usize = 56;
}

/// The header's fields, checked against each other and against the format's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Header {
    /// Vocabulary size V (1..=[`MAX_VOCAB`]).
    pub vocab: u32,
    /// States N, the dead state included (2..=[`MAX_STATES`]).
    pub states: u32,
    /// The start state (1..N).
    pub start: u32,
    /// The EOS token, or [`NO_EOS`].
    pub eos: u32,
    /// The PAD token.
    pub pad: u32,
    /// The default word length limit, in tokens (1..=65535).
    pub max_word_len: u32,
    /// Token classes C (1..=[`MAX_CLASSES`]), or 0 for the direct layout.
    pub classes: u32,
}

/// Where each table starts in a blob, in bytes from its beginning; each ends where the next
/// begins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Sections {
    /// The token classes (`V` `u16`s; empty in the direct layout).
    pub class_of: usize,
    /// The entries (`N x V` or `N x C` `u16`s).
    pub entries: usize,
    /// The masks (`N x W` `u64`s).
    pub masks: usize,
    /// The boundary bits (`ceil(N / 8)` bytes).
    pub boundary: usize,
    /// The blob's length.
    pub end: usize,
}

const fn rd32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

const fn wr32(b: &mut [u8; HEADER_LEN], at: usize, x: u32) {
    let x = x.to_le_bytes();
    b[at] = x[0];
    b[at + 1] = x[1];
    b[at + 2] = x[2];
    b[at + 3] = x[3];
}

impl Header {
    /// Mask words per state, `ceil(V / 64)`.
    pub const fn mask_words(&self) -> u32 {
        self.vocab.div_ceil(64)
    }

    /// The layout id: [`LAYOUT_DIRECT`] or [`LAYOUT_CLASSES`].
    pub const fn layout(&self) -> u32 {
        if self.classes == 0 {
            LAYOUT_DIRECT
        } else {
            LAYOUT_CLASSES
        }
    }

    /// The 64 header bytes.
    pub const fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        let mut i = 0;
        while i < MAGIC.len() {
            b[i] = MAGIC[i];
            i += 1;
        }
        wr32(&mut b, field::VERSION, FORMAT_VERSION);
        wr32(&mut b, field::HEADER_LEN, HEADER_LEN as u32);
        wr32(&mut b, field::VOCAB, self.vocab);
        wr32(&mut b, field::STATES, self.states);
        wr32(&mut b, field::START, self.start);
        wr32(&mut b, field::DEAD, DEAD as u32);
        wr32(&mut b, field::EOS, self.eos);
        wr32(&mut b, field::PAD, self.pad);
        wr32(&mut b, field::MAX_WORD_LEN, self.max_word_len);
        wr32(&mut b, field::MASK_WORDS, self.mask_words());
        wr32(&mut b, field::LAYOUT, self.layout());
        wr32(&mut b, field::CLASSES, self.classes);
        b
    }

    /// Reads and checks the header at the start of `blob` (not the tables after it); the
    /// `Err` says what is wrong.
    pub const fn parse(blob: &[u8]) -> Result<Header, &'static str> {
        if blob.len() < HEADER_LEN {
            return Err("shorter than the header");
        }
        let mut i = 0;
        while i < MAGIC.len() {
            if blob[i] != MAGIC[i] {
                return Err("bad magic (not a welt table blob)");
            }
            i += 1;
        }
        if rd32(blob, field::VERSION) != FORMAT_VERSION {
            return Err("unsupported format version");
        }
        if rd32(blob, field::HEADER_LEN) as usize != HEADER_LEN {
            return Err("unexpected header length");
        }
        if rd32(blob, field::RESERVED) != 0 || rd32(blob, field::RESERVED + 4) != 0 {
            return Err("reserved header bytes are not zero");
        }
        let h = Header {
            vocab: rd32(blob, field::VOCAB),
            states: rd32(blob, field::STATES),
            start: rd32(blob, field::START),
            eos: rd32(blob, field::EOS),
            pad: rd32(blob, field::PAD),
            max_word_len: rd32(blob, field::MAX_WORD_LEN),
            classes: rd32(blob, field::CLASSES),
        };
        let layout = rd32(blob, field::LAYOUT);
        let layout_ok = match layout {
            LAYOUT_DIRECT => h.classes == 0,
            LAYOUT_CLASSES => h.classes >= 1 && h.classes as usize <= MAX_CLASSES,
            _ => false,
        };
        if !layout_ok {
            return Err("unknown table layout");
        }
        if h.vocab == 0 || h.vocab > MAX_VOCAB {
            return Err("vocabulary size out of range");
        }
        if h.states < 2 || h.states as usize > MAX_STATES {
            return Err("state count out of range");
        }
        if rd32(blob, field::DEAD) != DEAD as u32 || h.start == DEAD as u32 || h.start >= h.states {
            return Err("bad start or dead state");
        }
        if (h.eos != NO_EOS && h.eos >= h.vocab) || h.pad >= h.vocab {
            return Err("EOS or PAD outside the vocabulary");
        }
        if h.max_word_len == 0 || h.max_word_len > u16::MAX as u32 {
            return Err("word length limit out of range");
        }
        if rd32(blob, field::MASK_WORDS) != h.mask_words() {
            return Err("mask width does not match the vocabulary");
        }
        Ok(h)
    }

    /// Where each table lies in a blob with this header; `Err` if the sizes overflow `usize`.
    pub const fn sections(&self) -> Result<Sections, &'static str> {
        let (n, v, w) = (
            self.states as usize,
            self.vocab as usize,
            self.mask_words() as usize,
        );
        // Entries per state: one per token (direct) or one per class.
        let (class_len, width) = if self.classes == 0 {
            (0, v)
        } else {
            (2 * v, self.classes as usize)
        };
        let entry_len = match n.checked_mul(width) {
            Some(x) => x.checked_mul(2),
            None => None,
        };
        let mask_len = match n.checked_mul(w) {
            Some(x) => x.checked_mul(8),
            None => None,
        };
        let (Some(entry_len), Some(mask_len)) = (entry_len, mask_len) else {
            return Err("tables too large");
        };
        let class_of = HEADER_LEN;
        let entries = class_of + class_len;
        let Some(masks) = entries.checked_add(entry_len) else {
            return Err("tables too large");
        };
        let Some(boundary) = masks.checked_add(mask_len) else {
            return Err("tables too large");
        };
        let Some(end) = boundary.checked_add(n.div_ceil(8)) else {
            return Err("tables too large");
        };
        Ok(Sections {
            class_of,
            entries,
            masks,
            boundary,
            end,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            vocab: 300,
            states: 9,
            start: 1,
            eos: 3,
            pad: 0,
            max_word_len: 16,
            classes: 7,
        }
    }

    #[test]
    fn header_round_trips() {
        let h = header();
        assert_eq!(Header::parse(&h.to_bytes()), Ok(h));
        let direct = Header { classes: 0, ..h };
        assert_eq!(Header::parse(&direct.to_bytes()), Ok(direct));
    }

    #[test]
    fn sections_follow_the_layout() {
        let s = header().sections().unwrap();
        assert_eq!(s.class_of, HEADER_LEN);
        assert_eq!(s.entries, HEADER_LEN + 2 * 300);
        assert_eq!(s.masks, s.entries + 2 * 9 * 7);
        assert_eq!(s.boundary, s.masks + 9 * 5 * 8);
        assert_eq!(s.end, s.boundary + 2);
    }

    #[test]
    fn every_field_is_checked() {
        let good = header().to_bytes();
        for (at, value, why) in [
            (0, 0, "bad magic (not a welt table blob)"),
            (field::VERSION, 2, "unsupported format version"),
            (field::HEADER_LEN, 65, "unexpected header length"),
            (field::RESERVED + 4, 1, "reserved header bytes are not zero"),
            (field::LAYOUT, 2, "unknown table layout"),
            (field::CLASSES, 0, "unknown table layout"),
            (field::VOCAB, 0, "vocabulary size out of range"),
            (field::STATES, 1, "state count out of range"),
            (field::START, 9, "bad start or dead state"),
            (field::DEAD, 1, "bad start or dead state"),
            (field::EOS, 300, "EOS or PAD outside the vocabulary"),
            (field::PAD, 300, "EOS or PAD outside the vocabulary"),
            (field::MAX_WORD_LEN, 0, "word length limit out of range"),
            (field::MASK_WORDS, 4, "mask width does not match the vocabulary"),
        ] {
            let mut b = good;
            b[at..at + 4].copy_from_slice(&u32::to_le_bytes(value));
            assert_eq!(Header::parse(&b), Err(why), "field at {at} = {value}");
        }
        assert_eq!(Header::parse(&good[..63]), Err("shorter than the header"));
    }

    #[test]
    fn huge_sizes_are_an_err_not_an_overflow() {
        let h = Header {
            vocab: MAX_VOCAB,
            states: MAX_STATES as u32,
            classes: 0,
            ..header()
        };
        // 2^15 states x 2^31 tokens x 2 bytes is 2^47: fits a 64-bit usize, not a 32-bit one.
        assert_eq!(h.sections().is_ok(), usize::BITS == 64);
    }

    #[test]
    fn entries_pack_next_state_and_stop() {
        assert_eq!(entry(0x1234, true), 0x9234);
        assert_eq!(next_state(0x9234), 0x1234);
        assert!(stops(0x9234) && !stops(0x1234));
        assert_eq!(NEXT_STATE as usize, MAX_STATES - 1);
    }
}
