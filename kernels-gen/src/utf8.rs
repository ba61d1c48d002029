//! The strict UTF-8 validator of Unicode Table 3-7, one byte at a time.
//!
//! A position inside a character is "`need` more continuation bytes, the next one in
//! `lo..=hi`". At a character boundary `need` is 0. This is Höhrmann's decoder written out as
//! data rather than as a packed table: the generator runs it once per state and byte, so
//! clarity wins over speed here, and the emitted tables are what runs at decode time.

/// Where the validator is inside a character.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Utf8Pos {
    /// Continuation bytes still needed (0 = at a character boundary).
    pub need: u8,
    /// Smallest allowed next continuation byte (0 at a boundary).
    pub lo: u8,
    /// Largest allowed next continuation byte (0 at a boundary).
    pub hi: u8,
}

/// What one byte does to the validator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Utf8Step {
    /// The byte completes a character.
    Complete,
    /// The byte starts or continues a character that needs more bytes.
    Partial(Utf8Pos),
    /// The byte can never follow: the sequence is not a UTF-8 prefix.
    Invalid,
}

impl Utf8Pos {
    /// At a character boundary.
    pub const BOUNDARY: Utf8Pos = Utf8Pos {
        need: 0,
        lo: 0,
        hi: 0,
    };

    /// Whether this is a character boundary.
    pub fn is_boundary(self) -> bool {
        self.need == 0
    }

    /// Feeds one byte.
    pub fn step(self, b: u8) -> Utf8Step {
        const CONT: (u8, u8) = (0x80, 0xBF);
        if self.need == 0 {
            let (need, (lo, hi)) = match b {
                0x00..=0x7F => return Utf8Step::Complete,
                0xC2..=0xDF => (1, CONT),
                0xE0 => (2, (0xA0, 0xBF)),
                0xE1..=0xEC | 0xEE..=0xEF => (2, CONT),
                0xED => (2, (0x80, 0x9F)),
                0xF0 => (3, (0x90, 0xBF)),
                0xF1..=0xF3 => (3, CONT),
                0xF4 => (3, (0x80, 0x8F)),
                _ => return Utf8Step::Invalid,
            };
            return Utf8Step::Partial(Utf8Pos { need, lo, hi });
        }
        if b < self.lo || b > self.hi {
            return Utf8Step::Invalid;
        }
        if self.need == 1 {
            Utf8Step::Complete
        } else {
            Utf8Step::Partial(Utf8Pos {
                need: self.need - 1,
                lo: CONT.0,
                hi: CONT.1,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every scalar value's encoding walks to `Complete` on its last byte and nowhere before.
    #[test]
    fn every_scalar_value_is_accepted() {
        let mut buf = [0u8; 4];
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
            let bytes = c.encode_utf8(&mut buf).as_bytes();
            let mut pos = Utf8Pos::BOUNDARY;
            for (i, &b) in bytes.iter().enumerate() {
                match pos.step(b) {
                    Utf8Step::Complete => assert_eq!(i, bytes.len() - 1, "{c:?} completed early"),
                    Utf8Step::Partial(p) => pos = p,
                    Utf8Step::Invalid => panic!("{c:?} rejected at byte {i}"),
                }
            }
        }
    }

    /// Agrees with std on every two-byte sequence about being a valid UTF-8 prefix.
    #[test]
    fn agrees_with_std_on_two_bytes() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let std_ok = match std::str::from_utf8(&[a, b]) {
                    Ok(_) => true,
                    Err(e) => e.error_len().is_none(),
                };
                let ours = match Utf8Pos::BOUNDARY.step(a) {
                    Utf8Step::Invalid => false,
                    Utf8Step::Complete => Utf8Pos::BOUNDARY.step(b) != Utf8Step::Invalid,
                    Utf8Step::Partial(p) => p.step(b) != Utf8Step::Invalid,
                };
                assert_eq!(std_ok, ours, "{a:02x} {b:02x}");
            }
        }
    }
}
