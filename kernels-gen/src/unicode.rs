//! The character sets of WeLT's word rule (SEMANTICS.md, "The stop flag").
//!
//! `S` is Python's `\s` for `str` patterns (equal to `str.isspace()`): 29 code points, the
//! same in Unicode 14 and 15. `C` is `utf8_tokenizer.control.CONTROL_TOKENS_PATTERN`:
//! U+0001–0008, U+000E–001F, U+007F. U+001C–001F are in both. Every other character,
//! U+0000 included, is a word character `W`.

/// Python's `\s` (= `str.isspace()`), in code point order.
pub const PYTHON_WHITESPACE: [char; 29] = [
    '\u{0009}', '\u{000A}', '\u{000B}', '\u{000C}', '\u{000D}', '\u{001C}', '\u{001D}', '\u{001E}',
    '\u{001F}', '\u{0020}', '\u{0085}', '\u{00A0}', '\u{1680}', '\u{2000}', '\u{2001}', '\u{2002}',
    '\u{2003}', '\u{2004}', '\u{2005}', '\u{2006}', '\u{2007}', '\u{2008}', '\u{2009}', '\u{200A}',
    '\u{2028}', '\u{2029}', '\u{202F}', '\u{205F}', '\u{3000}',
];

/// The byte tokenizer's control characters (`CONTROL_TOKENS_PATTERN`), in code point order.
pub fn utf8_tokenizer_controls() -> impl Iterator<Item = char> {
    ('\u{01}'..='\u{08}')
        .chain('\u{0E}'..='\u{1F}')
        .chain(std::iter::once('\u{7F}'))
}

/// How the word rule sees one decoded character.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CharClass {
    /// In `S`.
    pub space: bool,
    /// In `C`.
    pub control: bool,
}

impl CharClass {
    /// A word character (neither space nor control).
    pub const WORD: CharClass = CharClass {
        space: false,
        control: false,
    };
}
