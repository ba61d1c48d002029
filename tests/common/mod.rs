//! Shared by the integration tests: SEMANTICS.md's rule written out a second time, with std's
//! UTF-8 decoder and hand-written character sets and none of welt's code, plus a seeded PRNG
//! and the oracle file's reader.
//!
//! Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::collections::HashMap;

/// EOS of the byte tokenizer.
pub const EOS: u8 = 0x03;

/// Python's `\s` for `str` patterns (= `str.isspace()`), the 29 code points of SEMANTICS.md.
pub const PYTHON_SPACES: [u32; 29] = [
    0x0009, 0x000A, 0x000B, 0x000C, 0x000D, // \t \n \v \f \r
    0x001C, 0x001D, 0x001E, 0x001F, // file, group, record, unit separators (also controls)
    0x0020, // space
    0x0085, // NEL
    0x00A0, // no-break space
    0x1680, // ogham space mark
    0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200A,
    0x2028, // line separator
    0x2029, // paragraph separator
    0x202F, // narrow no-break space
    0x205F, // medium mathematical space
    0x3000, // ideographic space
];

/// `S`: Python's whitespace (the same set as [`PYTHON_SPACES`], as a `match` for speed; a test
/// checks they agree).
pub fn is_space(c: char) -> bool {
    matches!(
        c as u32,
        0x09..=0x0D | 0x1C..=0x20 | 0x85 | 0xA0 | 0x1680 | 0x2000..=0x200A | 0x2028 | 0x2029 | 0x202F | 0x205F | 0x3000
    )
}

/// `C`: the byte tokenizer's control characters U+0001–0008, U+000E–001F, U+007F.
pub fn is_control(c: char) -> bool {
    matches!(c as u32, 0x01..=0x08 | 0x0E..=0x1F | 0x7F)
}

/// `W`: every other character, U+0000 included.
pub fn is_word(c: char) -> bool {
    !is_space(c) && !is_control(c)
}

/// The word rule on decoded text: `t` fully matches `C` (one control character) or `W+ S`.
pub fn word_complete(t: &str) -> bool {
    let mut chars = t.chars();
    let Some(last) = chars.next_back() else {
        return false;
    };
    let body = chars.as_str();
    if body.is_empty() {
        is_control(last)
    } else {
        is_space(last) && body.chars().all(is_word)
    }
}

/// `bytes.decode("utf-8", errors="ignore")`: invalid and unfinished sequences are dropped.
/// Python and std both skip the maximal invalid subpart (Unicode's recommended practice).
pub fn decode_ignore(mut bytes: &[u8]) -> String {
    let mut out = String::new();
    loop {
        match std::str::from_utf8(bytes) {
            Ok(s) => {
                out.push_str(s);
                return out;
            }
            Err(e) => {
                let (good, rest) = bytes.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(good).expect("valid up to here"));
                match e.error_len() {
                    None => return out,
                    Some(n) => bytes = &rest[n..],
                }
            }
        }
    }
}

/// The reference's stop flag (`WordStoppingCriteria`) OR "the last byte is EOS": what welt's
/// stop flag must be on every sequence welt can generate.
pub fn reference_stop(bytes: &[u8]) -> bool {
    word_complete(&decode_ignore(bytes)) || bytes.last() == Some(&EOS)
}

/// If `bytes` is a valid UTF-8 prefix, the length of its complete part; else `None`.
pub fn valid_prefix_len(bytes: &[u8]) -> Option<usize> {
    match std::str::from_utf8(bytes) {
        Ok(_) => Some(bytes.len()),
        Err(e) if e.error_len().is_none() => Some(e.valid_up_to()),
        Err(_) => None,
    }
}

/// The spec's view of one byte sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spec {
    /// Not a UTF-8 prefix: welt can never produce it.
    Invalid,
    /// A valid UTF-8 prefix.
    Valid {
        /// Length of the complete part (the rest is an unfinished character).
        complete: usize,
        /// The reference's stop flag OR EOS on this sequence.
        stop: bool,
    },
}

impl Spec {
    /// Evaluates `bytes` from scratch.
    pub fn of(bytes: &[u8]) -> Spec {
        match valid_prefix_len(bytes) {
            None => Spec::Invalid,
            Some(complete) => {
                let text = std::str::from_utf8(&bytes[..complete]).expect("complete part");
                Spec::Valid {
                    complete,
                    stop: word_complete(text) || bytes.last() == Some(&EOS),
                }
            }
        }
    }
}

/// The set of valid next bytes after a sequence, as the 32-byte little-endian bitset of
/// SEMANTICS.md: `b` is allowed iff `bytes + [b]` is a valid UTF-8 prefix. That only depends
/// on the unfinished tail (a complete, valid head stays valid), so answers are memoized by it.
#[derive(Default)]
pub struct ValidNext {
    memo: HashMap<Vec<u8>, [u8; 32]>,
}

impl ValidNext {
    /// The set after a valid prefix whose unfinished tail is `tail` (0 to 3 bytes).
    pub fn after_tail(&mut self, tail: &[u8]) -> [u8; 32] {
        if let Some(m) = self.memo.get(tail) {
            return *m;
        }
        let mut set = [0u8; 32];
        let mut buf = tail.to_vec();
        for b in 0..=255u8 {
            buf.push(b);
            if valid_prefix_len(&buf).is_some() {
                set[b as usize / 8] |= 1 << (b % 8);
            }
            buf.pop();
        }
        self.memo.insert(tail.to_vec(), set);
        set
    }

    /// The set after `bytes`, which must be a valid UTF-8 prefix.
    pub fn after(&mut self, bytes: &[u8]) -> [u8; 32] {
        let complete = valid_prefix_len(bytes).expect("a valid UTF-8 prefix");
        self.after_tail(&bytes[complete..])
    }
}

/// Whether bit `b` of a 32-byte set is set.
pub fn has(set: &[u8], b: u8) -> bool {
    set[b as usize / 8] >> (b % 8) & 1 == 1
}

/// Lowercase hex, written here rather than taken from `welt::to_hex`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses 64 hex digits into a 32-byte set.
pub fn parse_mask_hex(s: &str) -> [u8; 32] {
    assert_eq!(s.len(), 64, "mask {s:?} is not 64 hex digits");
    let mut out = [0u8; 32];
    for (k, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * k..2 * k + 2], 16).expect("hex");
    }
    out
}

/// The workspace's seeded generator (kernels-gen's), for drawing test inputs.
pub use kernels_gen::rng::SplitMix64;

/// One line of `tests/data/oracle_cases.jsonl`.
#[derive(Clone, Debug)]
pub struct OracleCase {
    /// 1-based line number.
    pub line: usize,
    /// The word's bytes.
    pub bytes: Vec<u8>,
    /// The reference's (lenient) mask.
    pub mask: [u8; 32],
    /// `WordStoppingCriteria` alone (false for `"ab\x03"`).
    pub stop: bool,
}

/// Path of the oracle file.
pub const ORACLE_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/oracle_cases.jsonl");

/// Reads every case of the oracle file.
pub fn oracle_cases() -> Vec<OracleCase> {
    let text = std::fs::read_to_string(ORACLE_PATH).expect("tests/data/oracle_cases.jsonl");
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let v: serde_json::Value = serde_json::from_str(l).expect("oracle line is JSON");
            let bytes = v["bytes"]
                .as_array()
                .expect("bytes")
                .iter()
                .map(|x| u8::try_from(x.as_u64().expect("integer")).expect("byte"))
                .collect();
            OracleCase {
                line: i + 1,
                bytes,
                mask: parse_mask_hex(v["mask"].as_str().expect("mask")),
                stop: v["stop"].as_bool().expect("stop"),
            }
        })
        .collect()
}

/// The tables in the file the build-script API writes for `build` (what `include!` of it
/// would give): its source is generated here, lexed as Rust, checked to declare
/// `pub struct NAME;` and its `Decoder` impl, and the blob literal passed to the runtime's
/// `tables_or_panic` is read back and validated by `Tables::from_bytes`.
pub fn build_script_blob(build: &kernels_gen::build::DecoderBuild, name: &str) -> Vec<u8> {
    use proc_macro2::{TokenStream, TokenTree};
    fn walk(tokens: TokenStream, out: &mut Vec<TokenTree>) {
        for t in tokens {
            let inner = match &t {
                TokenTree::Group(g) => Some(g.stream()),
                _ => None,
            };
            out.push(t);
            if let Some(inner) = inner {
                walk(inner, out);
            }
        }
    }
    let source = build.source().expect("the build-script source");
    assert!(source.starts_with("// @generated"), "no generated-file header");
    let tokens: TokenStream = source.parse().expect("the build-script source lexes as Rust");
    let flat: Vec<String> = tokens.clone().into_iter().map(|t| t.to_string()).collect();
    assert!(
        flat.windows(3).any(|w| w == ["pub", "struct", name]),
        "no `pub struct {name}` in the build-script source"
    );
    assert!(
        flat.windows(3).any(|w| w == ["Decoder", "for", name]),
        "no `impl Decoder for {name}` in the build-script source"
    );
    let mut all = Vec::new();
    walk(tokens, &mut all);
    let at = all
        .iter()
        .position(|t| matches!(t, TokenTree::Ident(i) if i == "tables_or_panic"))
        .expect("the build-script source passes its blob to tables_or_panic");
    let TokenTree::Group(args) = &all[at + 1] else {
        panic!("tables_or_panic is not called");
    };
    let args: Vec<TokenTree> = args.stream().into_iter().collect();
    let [TokenTree::Literal(lit)] = &args[..] else {
        panic!("tables_or_panic takes one literal, got {args:?}");
    };
    let blob = syn::parse_str::<syn::LitByteStr>(&lit.to_string())
        .expect("a byte-string literal")
        .value();
    welt_runtime::Tables::from_bytes(&blob).expect("the build-script tables validate");
    blob
}
