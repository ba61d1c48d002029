//! The words `welt bench` replays: mixed scripts, several kinds of whitespace, EOS and the
//! length limit, drawn from a fixed seed so that every run measures the same bytes.

use std::error::Error;

use crate::Utf8Words;
use welt_runtime::{Decoder, Sequence};

use super::reference_port::EOS;
use super::{CORPUS_SEED, CORPUS_WORDS};
use crate::rng::SplitMix64;

/// How words finished.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Finishes {
    /// Words that stopped: the rule matched, or EOS.
    pub stops: u64,
    /// Words cut by the word length limit.
    pub limits: u64,
}

/// The words the rows replay: one byte string per word, each a sequence welt can generate
/// that finishes exactly at its last byte (it stops there, or reaches the length limit).
#[derive(Clone, Debug)]
pub struct Corpus {
    pub(super) bytes: Vec<u8>,
    /// Word `i` is `bytes[starts[i]..starts[i + 1]]`.
    pub(super) starts: Vec<u32>,
    finishes: Finishes,
    multibyte: usize,
}

#[derive(Clone, Copy)]
enum Script {
    Ascii,
    Latin,
    Greek,
    Cyrillic,
    Arabic,
    Cjk,
    Emoji,
    Numeric,
}

#[derive(Clone, Copy)]
enum Shape {
    /// A word and one whitespace character: stops on the whitespace.
    Spaced,
    /// A word and EOS.
    Eos,
    /// A word longer than the limit.
    Long,
    /// Whitespace first: never stops by the rule, so it ends by EOS or the limit.
    Leading,
    /// A word with a zero width space (not whitespace) inside, then a space.
    ZeroWidth,
}

const ACCENTED: &[char] = &[
    'é', 'è', 'ê', 'à', 'á', 'â', 'ü', 'ö', 'ä', 'ñ', 'ç', 'ß', 'ø', 'å', 'í', 'ó', 'ú', 'ł', 'ő', 'š', 'ž',
];
const LETTERS: &[u8] = b"etaoinshrdlucmfwypvbgkjqxzetaoinshrdlu";
const NUMERIC: &[&str] = &[
    "2024",
    "3,14",
    "42",
    "(a)",
    "\u{2014}",
    "\u{ab}oui\u{bb}",
    "1.5%",
    "#7",
    "\u{20ac}9",
];

/// Whitespace that ends a word, by weight: mostly U+0020, then newlines, tabs and the
/// multi-byte spaces a multilingual model produces.
const SPACES: &[(u32, char)] = &[
    (55, ' '),
    (10, '\n'),
    (4, '\t'),
    (3, '\r'),
    (8, '\u{A0}'),
    (6, '\u{3000}'),
    (5, '\u{2009}'),
    (3, '\u{202F}'),
    (2, '\u{2003}'),
    (2, '\u{85}'),
    (2, '\u{2028}'),
];

fn push_range(rng: &mut SplitMix64, out: &mut String, lo: u32, hi: u32, n: u32) {
    for _ in 0..n {
        // Every range used here is free of surrogates, so `from_u32` never says no.
        out.extend(char::from_u32(rng.between(lo, hi)));
    }
}

fn letter(rng: &mut SplitMix64) -> char {
    char::from(LETTERS[rng.below(LETTERS.len() as u32) as usize])
}

fn push_body(rng: &mut SplitMix64, out: &mut String, script: Script, long: bool) {
    // A long word is about three times longer: past the 16-byte limit for most scripts.
    let scale = if long { 3 } else { 1 };
    let extra = u32::from(long);
    match script {
        Script::Ascii => {
            for i in 0..rng.between(1, 9) * scale {
                let c = letter(rng);
                out.push(if i == 0 && rng.below(5) == 0 {
                    c.to_ascii_uppercase()
                } else {
                    c
                });
            }
        }
        Script::Latin => {
            for _ in 0..rng.between(2, 8) * scale {
                if rng.below(4) == 0 {
                    out.push(ACCENTED[rng.below(ACCENTED.len() as u32) as usize]);
                } else {
                    out.push(letter(rng));
                }
            }
        }
        Script::Greek => {
            let n = rng.between(2, 7) * scale;
            push_range(rng, out, 0x3AC, 0x3C9, n);
        }
        Script::Cyrillic => {
            let n = rng.between(2, 8) * scale;
            push_range(rng, out, 0x430, 0x44F, n);
        }
        Script::Arabic => {
            let n = rng.between(2, 6) * scale;
            push_range(rng, out, 0x627, 0x64A, n);
        }
        Script::Cjk => {
            let n = rng.between(1, 4) * scale + extra;
            push_range(rng, out, 0x4E00, 0x9FFF, n);
        }
        Script::Emoji => match rng.below(4) {
            // A ZWJ sequence: woman, ZWJ, laptop.
            0 => out.push_str("\u{1F469}\u{200D}\u{1F4BB}"),
            1 => {
                push_range(rng, out, 0x1F300, 0x1F64F, 1);
                out.push('\u{FE0F}');
            }
            _ => {
                let n = rng.between(1, 2) * scale + extra;
                push_range(rng, out, 0x1F300, 0x1F64F, n);
            }
        },
        Script::Numeric => {
            for _ in 0..scale {
                out.push_str(NUMERIC[rng.below(NUMERIC.len() as u32) as usize]);
            }
        }
    }
}

fn draw_word(rng: &mut SplitMix64, out: &mut String) {
    let script = rng.weighted(&[
        (38, Script::Ascii),
        (15, Script::Latin),
        (8, Script::Greek),
        (10, Script::Cyrillic),
        (7, Script::Arabic),
        (12, Script::Cjk),
        (5, Script::Emoji),
        (5, Script::Numeric),
    ]);
    let shape = rng.weighted(&[
        (66, Shape::Spaced),
        (14, Shape::Eos),
        (10, Shape::Long),
        (8, Shape::Leading),
        (2, Shape::ZeroWidth),
    ]);
    match shape {
        Shape::Spaced => {
            push_body(rng, out, script, false);
            out.push(rng.weighted(SPACES));
            if rng.below(8) == 0 {
                // "ab\r\n", "ab  ": the row stops at the first space and the rest is dropped.
                out.push(rng.weighted(SPACES));
            }
        }
        Shape::Eos => {
            push_body(rng, out, script, false);
            out.push(char::from(EOS));
        }
        Shape::Long => push_body(rng, out, script, true),
        Shape::Leading => {
            out.push(rng.weighted(SPACES));
            push_body(rng, out, script, false);
            out.push(rng.weighted(SPACES));
        }
        Shape::ZeroWidth => {
            push_body(rng, out, script, false);
            out.push('\u{200B}');
            out.push(' ');
        }
    }
}

impl Corpus {
    /// `words` words drawn from `seed`, each cut where welt finishes it — at its stop or at
    /// the word length limit — or given an EOS if it would not finish (a word that begins
    /// with whitespace). `Err` if welt refuses a byte, which would be a bug here or there.
    pub fn generate(words: usize, seed: u64) -> Result<Corpus, Box<dyn Error>> {
        let tables = Utf8Words::TABLES;
        let max_len = usize::from(tables.max_word_len());
        let mut rng = SplitMix64::new(seed);
        let mut corpus = Corpus {
            bytes: Vec::new(),
            starts: vec![0],
            finishes: Finishes::default(),
            multibyte: 0,
        };
        let mut text = String::new();
        for _ in 0..words.max(1) {
            text.clear();
            draw_word(&mut rng, &mut text);
            let start = corpus.bytes.len();
            let mut seq = Sequence::new(tables);
            let mut stopped = false;
            for &b in text.as_bytes().iter().chain(std::iter::once(&EOS)) {
                stopped = seq
                    .step(u32::from(b))
                    .map_err(|e| format!("corpus word {text:?}: welt refuses byte {b:#04x}: {e}"))?;
                corpus.bytes.push(b);
                if stopped || seq.len() >= max_len {
                    break;
                }
            }
            if stopped {
                corpus.finishes.stops += 1;
            } else {
                corpus.finishes.limits += 1;
            }
            corpus.multibyte += corpus.bytes[start..].iter().filter(|&&b| b >= 0x80).count();
            let end = u32::try_from(corpus.bytes.len()).map_err(|_| "corpus too large")?;
            corpus.starts.push(end);
        }
        Ok(corpus)
    }

    /// The corpus `welt bench` measures.
    pub fn standard() -> Result<Corpus, Box<dyn Error>> {
        Corpus::generate(CORPUS_WORDS, CORPUS_SEED)
    }

    /// Number of words.
    pub fn len(&self) -> usize {
        self.starts.len() - 1
    }
    /// Whether there is no word (never, for a generated corpus).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Word `i`'s bytes (empty past the end).
    pub fn word(&self, i: usize) -> &[u8] {
        match (self.starts.get(i), self.starts.get(i + 1)) {
            (Some(&a), Some(&b)) => &self.bytes[a as usize..b as usize],
            _ => &[],
        }
    }
    /// All bytes, word after word.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
    /// How the words finish.
    pub fn finishes(&self) -> Finishes {
        self.finishes
    }
    /// Bytes that belong to multi-byte characters.
    pub fn multibyte_bytes(&self) -> usize {
        self.multibyte
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corpus_is_deterministic_and_mixed() {
        let a = Corpus::generate(512, 7).unwrap();
        let b = Corpus::generate(512, 7).unwrap();
        assert_eq!(a.bytes(), b.bytes());
        assert_eq!(a.len(), 512);
        let text = String::from_utf8_lossy(a.bytes());
        for c in [
            '\u{A0}', '\u{3000}', '\u{2009}', '\u{3}', 'é', '\u{3b1}', '\u{430}',
        ] {
            assert!(text.contains(c), "no {c:?} in the corpus");
        }
        let f = a.finishes();
        assert!(f.stops > 300 && f.limits > 20, "{f:?}");
        assert!(a.multibyte_bytes() * 4 > a.bytes().len(), "too little non-ASCII");
        for i in 0..a.len() {
            let w = a.word(i);
            assert!(!w.is_empty() && w.len() <= 16, "word {i}: {w:?}");
        }
    }
}
