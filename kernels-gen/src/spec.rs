//! What a decoder is made of: a vocabulary (token id -> bytes, special roles) and a word rule.

use std::collections::BTreeSet;

use crate::unicode::{self, CharClass};
use crate::Error;

/// The word length limit WeLT uses by default (`max_word_length`), in tokens.
pub const DEFAULT_MAX_WORD_LEN: u16 = 16;

/// One vocabulary entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Token {
    /// A token that decodes to these bytes (possibly a fragment of a character).
    Bytes(Vec<u8>),
    /// A special token with no text of its own (BOS, PAD, `<extra_id_0>`, ...). It is never
    /// allowed, unless it is the vocabulary's EOS or a named stop token
    /// ([`Vocabulary::add_stop_token`]): those are allowed at every character boundary.
    Special(String),
}

/// Token id -> bytes, and which tokens play special roles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vocabulary {
    tokens: Vec<Token>,
    /// What each token decodes to when it is the first token of a word, where that differs
    /// (SentencePiece decoders drop the leading `▁` of the first token).
    first_tokens: Option<Vec<Token>>,
    eos: Option<u32>,
    pad: u32,
    extra_stops: BTreeSet<u32>,
    /// Characters the word may never contain (see [`Vocabulary::forbid_chars`]).
    forbidden: BTreeSet<char>,
    label: String,
    /// How EOS and PAD were chosen, where a loader chose them (see [`Vocabulary::roles`]).
    roles_note: String,
}

impl Vocabulary {
    /// WeLT's `UTF8Tokenizer`: 256 tokens, token id = byte value; PAD = 0x00, BOS = 0x02,
    /// EOS = 0x03. Every byte is an ordinary byte token (PAD and BOS included, as the
    /// reference allows them); EOS is also the byte 0x03, a control character, and ends the
    /// word wherever it is generated.
    pub fn utf8_bytes() -> Vocabulary {
        Vocabulary {
            tokens: (0..=255u8).map(|b| Token::Bytes(vec![b])).collect(),
            first_tokens: None,
            eos: Some(0x03),
            pad: 0x00,
            extra_stops: BTreeSet::new(),
            forbidden: BTreeSet::new(),
            roles_note: String::new(),
            label: "utf8-bytes (UTF8Tokenizer: 256 byte tokens, PAD=0x00, BOS=0x02, EOS=0x03)".to_string(),
        }
    }

    /// A vocabulary from explicit tokens. `label` names where it came from (it goes into the
    /// header of every generated file).
    pub fn new(
        label: impl Into<String>,
        tokens: Vec<Token>,
        eos: Option<u32>,
        pad: u32,
    ) -> Result<Vocabulary, Error> {
        let n = tokens.len();
        if n == 0 {
            return Err(Error::new("the vocabulary is empty"));
        }
        if n > u32::MAX as usize / 2 {
            return Err(Error::new(format!("a vocabulary of {n} tokens is too large")));
        }
        for (what, id) in [("EOS", eos), ("PAD", Some(pad))] {
            if let Some(id) = id {
                if id as usize >= n {
                    return Err(Error::new(format!(
                        "{what} token id {id} is outside the vocabulary of {n} tokens"
                    )));
                }
            }
        }
        Ok(Vocabulary {
            tokens,
            first_tokens: None,
            eos,
            pad,
            extra_stops: BTreeSet::new(),
            forbidden: BTreeSet::new(),
            label: label.into(),
            roles_note: String::new(),
        })
    }

    /// Sets what tokens decode to as the first token of a word (one entry per token). A
    /// first token that decodes to no bytes is allowed there (it moves past the first
    /// position); elsewhere an empty token is never allowed.
    pub fn set_first_tokens(&mut self, first: Vec<Token>) -> Result<(), Error> {
        if first.len() != self.tokens.len() {
            return Err(Error::new("first-position tokens must have one entry per token"));
        }
        self.first_tokens = if first == self.tokens { None } else { Some(first) };
        Ok(())
    }

    /// What tokens decode to as the first token of a word, if it differs from [`Self::tokens`].
    pub fn first_tokens(&self) -> Option<&[Token]> {
        self.first_tokens.as_deref()
    }

    /// Makes `id` end the word like EOS does (its stop flag is always set), without making it EOS.
    /// A special token named so is allowed where EOS is (at every character boundary); a token
    /// with bytes stays allowed where its bytes are.
    pub fn add_stop_token(&mut self, id: u32) -> Result<(), Error> {
        if id as usize >= self.tokens.len() {
            return Err(Error::new(format!(
                "stop token id {id} is outside the vocabulary of {} tokens",
                self.tokens.len()
            )));
        }
        self.extra_stops.insert(id);
        Ok(())
    }

    /// Forbids characters: no token sequence whose bytes contain one of them is allowed. A
    /// tokenizer loader uses it for characters that byte tokens could spell but the decoder
    /// would print differently (byte fallback followed by a rewrite of that character), so that
    /// the bytes the automaton walks are always the decoded text.
    pub fn forbid_chars(&mut self, chars: impl IntoIterator<Item = char>) {
        self.forbidden.extend(chars);
    }

    /// The forbidden characters, in code point order.
    pub fn forbidden_chars(&self) -> &BTreeSet<char> {
        &self.forbidden
    }

    /// The tokens, indexed by id.
    pub fn tokens(&self) -> &[Token] {
        &self.tokens
    }
    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }
    /// Always false: a vocabulary has at least one token.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
    /// The EOS token, if the vocabulary has one.
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }
    /// The token reported for rows that have finished.
    pub fn pad(&self) -> u32 {
        self.pad
    }
    /// Whether generating `id` always ends the word (EOS or a named stop token).
    pub fn is_stop_token(&self, id: u32) -> bool {
        self.eos == Some(id) || self.extra_stops.contains(&id)
    }
    /// Where the vocabulary came from.
    pub fn label(&self) -> &str {
        &self.label
    }
    /// Says how [`Self::roles`] came about (e.g. which names a loader tried).
    pub fn set_roles_note(&mut self, note: impl Into<String>) {
        self.roles_note = note.into();
    }
    /// One line naming the EOS, PAD and stop tokens by id and content, and how they were
    /// chosen: what `welt tables --emit stats` and a `#[welt_decoder]` type's docs show.
    pub fn roles(&self) -> String {
        let name = |id: u32| match &self.tokens[id as usize] {
            Token::Special(s) => format!("{id} `{}`", s.escape_debug()),
            Token::Bytes(b) => format!("{id} {:?}", String::from_utf8_lossy(b)),
        };
        let mut out = format!(
            "EOS {}, PAD {}",
            self.eos.map_or_else(|| "none".to_string(), name),
            name(self.pad)
        );
        if !self.extra_stops.is_empty() {
            let stops: Vec<String> = self.extra_stops.iter().map(|&id| name(id)).collect();
            out.push_str(&format!(", stop tokens {}", stops.join(", ")));
        }
        if !self.roles_note.is_empty() {
            out.push_str(&format!(" ({})", self.roles_note));
        }
        out
    }
}

/// WeLT's word rule: which characters are spaces (`S`) and controls (`C`).
///
/// The decoded text `t` of a word is complete iff it is exactly one control character, or one
/// or more word characters (`W`: neither `S` nor `C`) followed by exactly one space character.
///
/// A word whose first character is in `S` but not in `C` can therefore never complete: it runs
/// on until EOS, a stop token or the length limit. [`WordRule::forbid_leading_whitespace`]
/// forbids such a first character instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WordRule {
    spaces: BTreeSet<char>,
    controls: BTreeSet<char>,
    forbid_leading_whitespace: bool,
}

impl Default for WordRule {
    /// The rule of `words_segmentation.WordStoppingCriteria` with `UTF8Tokenizer`.
    fn default() -> Self {
        WordRule {
            spaces: unicode::PYTHON_WHITESPACE.iter().copied().collect(),
            controls: unicode::utf8_tokenizer_controls().collect(),
            forbid_leading_whitespace: false,
        }
    }
}

impl WordRule {
    /// A rule with other character sets.
    pub fn new(spaces: impl IntoIterator<Item = char>, controls: impl IntoIterator<Item = char>) -> WordRule {
        WordRule {
            spaces: spaces.into_iter().collect(),
            controls: controls.into_iter().collect(),
            forbid_leading_whitespace: false,
        }
    }
    /// Whether a word may begin with a character that is a space and not a control (default:
    /// it may, as in WeLT). With `true` such a character is not allowed as the first character
    /// of a word, so a token that decodes to ` the` (byte-level BPE) cannot start one and trap
    /// the row. What stays allowed first: word characters, and controls, the characters in
    /// both sets included (U+001C-001F): alone they complete the word as a control word, so
    /// they never trap it. A word that decodes to nothing yet (an empty first token) is not
    /// affected; its first character is checked when it comes.
    pub fn forbid_leading_whitespace(mut self, forbid: bool) -> WordRule {
        self.forbid_leading_whitespace = forbid;
        self
    }
    /// Whether `class` may not be the first character of a word (see
    /// [`Self::forbid_leading_whitespace`]).
    pub fn forbids_first(&self, class: CharClass) -> bool {
        self.forbid_leading_whitespace && class.space && !class.control
    }
    /// One line for generated-file headers.
    pub fn describe(&self) -> String {
        let base =
            if self.spaces == WordRule::default().spaces && self.controls == WordRule::default().controls {
                "WeLT word rule (S = Python \\s, C = UTF8Tokenizer controls)"
            } else {
                "custom word rule"
            };
        if self.forbid_leading_whitespace {
            format!("{base}, no leading whitespace")
        } else {
            base.to_string()
        }
    }
    /// How the rule sees `c`.
    pub fn classify(&self, c: char) -> CharClass {
        CharClass {
            space: self.spaces.contains(&c),
            control: self.controls.contains(&c),
        }
    }
    /// Every character that is not a word character, in code point order.
    pub fn special_chars(&self) -> impl Iterator<Item = char> + '_ {
        let all: BTreeSet<char> = self.spaces.union(&self.controls).copied().collect();
        all.into_iter()
    }
}

/// Everything the generator needs to build one decoder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecoderSpec {
    /// The tokens.
    pub vocab: Vocabulary,
    /// The word rule.
    pub rule: WordRule,
    /// The caller's word length limit in tokens (the runtime's default; a batch may override it).
    pub max_word_len: u16,
    /// How the entry table is laid out.
    pub layout: Layout,
}

/// How the entry table is laid out in the generated tables.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Layout {
    /// [`Layout::Direct`] while that table is at most [`DIRECT_LIMIT_BYTES`], else
    /// [`Layout::Classes`].
    #[default]
    Auto,
    /// One `u16` entry per (state, token): a single lookup per token.
    Direct,
    /// A `u16` class per token and one entry per (state, token class): two dependent lookups,
    /// and a table of states x classes instead of states x vocabulary.
    Classes,
}

/// The largest direct entry table [`Layout::Auto`] chooses (4 MiB).
pub const DIRECT_LIMIT_BYTES: usize = 4 << 20;

impl DecoderSpec {
    /// WeLT's default: the UTF-8 byte tokenizer, the default word rule, 16 tokens per word.
    pub fn utf8_bytes() -> DecoderSpec {
        DecoderSpec::new(Vocabulary::utf8_bytes())
    }
    /// A spec for `vocab` with the default word rule and word length limit.
    pub fn new(vocab: Vocabulary) -> DecoderSpec {
        DecoderSpec {
            vocab,
            rule: WordRule::default(),
            max_word_len: DEFAULT_MAX_WORD_LEN,
            layout: Layout::Auto,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{generate, Tables};

    /// The stop flags of walking `bytes` from the start, or `None` where a byte is not allowed.
    fn walk(t: &Tables, bytes: &[u8]) -> Option<Vec<bool>> {
        let mut s = t.start();
        let mut stops = Vec::new();
        for &b in bytes {
            if !t.allows(s, u32::from(b)) {
                return None;
            }
            let (next, stop) = t.step(s, u32::from(b));
            stops.push(stop);
            s = next;
        }
        Some(stops)
    }

    /// Every scalar value as a word's first character, and then the characters after it: with
    /// the option, exactly the spaces that are not controls are refused first, and nothing
    /// else changes.
    #[test]
    fn forbid_leading_whitespace_refuses_exactly_the_trapping_first_characters() {
        let off = generate(&DecoderSpec::utf8_bytes()).unwrap();
        let on = generate(&DecoderSpec {
            rule: WordRule::default().forbid_leading_whitespace(true),
            ..DecoderSpec::utf8_bytes()
        })
        .unwrap();
        let controls: BTreeSet<char> = unicode::utf8_tokenizer_controls().collect();
        let expected: BTreeSet<char> = unicode::PYTHON_WHITESPACE
            .iter()
            .copied()
            .filter(|c| !controls.contains(c))
            .collect();
        let mut refused = BTreeSet::new();
        let mut buf = [0u8; 4];
        let after = ['a', ' ', '\u{1C}', '\u{3000}', 'é'];
        let rule = WordRule::default();
        let is_special = |c: char| rule.classify(c) != crate::unicode::CharClass::WORD;
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            let enc = c.encode_utf8(&mut buf).as_bytes().to_vec();
            let (a, b) = (walk(&off, &enc), walk(&on, &enc));
            assert!(a.is_some(), "{c:?} is allowed first by default");
            if b.is_none() {
                refused.insert(c);
                continue;
            }
            assert_eq!(a, b, "{c:?} first");
            // After a word character, and after an allowed first character, nothing changes
            // (checked for every non-word character and a sample of the others).
            if !((c as u32).is_multiple_of(61) || c < '\u{80}' || is_special(c)) {
                continue;
            }
            for d in after {
                let mut s = vec![b'x'];
                s.extend_from_slice(&enc);
                assert_eq!(walk(&off, &s), walk(&on, &s), "x{c:?}");
                let mut s = enc.clone();
                s.extend_from_slice(d.encode_utf8(&mut [0u8; 4]).as_bytes());
                assert_eq!(walk(&off, &s), walk(&on, &s), "{c:?}{d:?}");
            }
        }
        assert_eq!(refused, expected);
        // U+001C-001F are in both sets: alone they are a complete control word, allowed.
        for c in '\u{1C}'..='\u{1F}' {
            assert_eq!(walk(&on, &[c as u8]), Some(vec![true]), "{c:?}");
        }
        assert!(on.provenance().contains("no leading whitespace"));
        assert!(!off.provenance().contains("no leading whitespace"));
    }
}
