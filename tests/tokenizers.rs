//! Custom tokenizers end to end: the four fixtures in `tests/fixtures/` (ByT5-like bytes,
//! byte-level BPE, SentencePiece BPE and Unigram with byte fallback) and synthetic large
//! byte-level BPE vocabularies.
//!
//! What is checked, and against what:
//!
//! - the macro, the build script and `kernels_gen::generate` give byte-identical tables;
//! - the token automaton equals SEMANTICS.md's rule run over the concatenated bytes of the
//!   tokens (an independent spec below, written with std's UTF-8 decoder, itself cross-checked
//!   against WeLT's byte automaton `Utf8Words`): on thousands of random sequences, and for
//!   every state and every token by brute force;
//! - the id -> bytes map agrees with the `tokenizers` crate's own decoder;
//! - large vocabularies pick the right layout and read back in the runtime;
//! - no input makes the loader or the runtime panic (proptest);
//! - EOS, PAD and stop tokens, named or found;
//! - `welt query --tokenizer` and `welt tables --tokenizer`.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use kernels_gen::tokenizer::{load_file, load_str};
use kernels_gen::{DecoderOptions, DecoderSpec, Layout, Subject, Token, Vocabulary};
use proptest::prelude::*;
use welt_runtime::{Decoder, ErrorKind, Sequence, Tables, Utf8Words, WordBatch, DEAD};

// ---------------------------------------------------------------------------------------------
// The decoders under test: one per fixture through the macro (the build-script API's are
// generated at test time, in `macro_build_script_and_library_tables_are_byte_identical`).

#[welt_runtime::welt_decoder(tokenizer = "tests/fixtures/byt5_like.json")]
struct Byt5Macro;
#[welt_runtime::welt_decoder(tokenizer = "tests/fixtures/bpe_bytelevel.json")]
struct BpeByteLevelMacro;
#[welt_runtime::welt_decoder(tokenizer = "tests/fixtures/sp_bpe_bytefallback.json")]
struct SpBpeByteFallbackMacro;
#[welt_runtime::welt_decoder(tokenizer = "tests/fixtures/sp_unigram.json")]
struct SpUnigramMacro;

struct Fixture {
    file: &'static str,
    macro_tables: Tables<'static>,
}

fn fixtures() -> [Fixture; 4] {
    [
        Fixture {
            file: "byt5_like.json",
            macro_tables: Byt5Macro::TABLES,
        },
        Fixture {
            file: "bpe_bytelevel.json",
            macro_tables: BpeByteLevelMacro::TABLES,
        },
        Fixture {
            file: "sp_bpe_bytefallback.json",
            macro_tables: SpBpeByteFallbackMacro::TABLES,
        },
        Fixture {
            file: "sp_unigram.json",
            macro_tables: SpUnigramMacro::TABLES,
        },
    ]
}

fn fixture_path(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(file)
}

fn load(file: &str, opts: &DecoderOptions) -> Vocabulary {
    load_file(&fixture_path(file), opts).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// The `tokenizers` crate's own view of a fixture.
fn hf(file: &str) -> ::tokenizers::Tokenizer {
    ::tokenizers::Tokenizer::from_file(fixture_path(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn id(tk: &::tokenizers::Tokenizer, token: &str) -> u32 {
    tk.token_to_id(token)
        .unwrap_or_else(|| panic!("no token {token:?}"))
}

// ---------------------------------------------------------------------------------------------
// The spec: SEMANTICS.md's word rule over the decoded bytes of a word, with std's UTF-8
// decoder and the character sets written out by hand. None of welt's automata are used.

// The character sets and the word rule are the test suite's shared ones (tests/common).
use crate::common::{word_complete, SplitMix64};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Utf8 {
    /// Not a prefix of any valid UTF-8 string.
    Invalid,
    /// Valid, ending inside a character.
    Partial,
    /// Valid, ending at a character boundary.
    Boundary,
}

fn utf8(bytes: &[u8]) -> Utf8 {
    match std::str::from_utf8(bytes) {
        Ok(_) => Utf8::Boundary,
        Err(e) if e.error_len().is_none() => Utf8::Partial,
        Err(_) => Utf8::Invalid,
    }
}

/// A word in progress as the spec sees it: its bytes, and whether the next token is the
/// word's first (whose bytes may differ, see `Vocabulary::first_tokens`).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Word {
    bytes: Vec<u8>,
    first: bool,
}

struct Spec<'v> {
    vocab: &'v Vocabulary,
}

impl<'v> Spec<'v> {
    fn new(vocab: &'v Vocabulary) -> Spec<'v> {
        Spec { vocab }
    }

    fn start(&self) -> Word {
        Word {
            bytes: Vec::new(),
            first: self.vocab.first_tokens().is_some(),
        }
    }

    fn token(&self, w: &Word, t: u32) -> &'v Token {
        match self.vocab.first_tokens() {
            Some(first) if w.first => &first[t as usize],
            _ => &self.vocab.tokens()[t as usize],
        }
    }

    /// The word after token `t` and the stop flag, or `None` if `t` is not allowed.
    ///
    /// - EOS (and any token named as a stop token) always ends the word;
    /// - a special token is allowed only if it ends the word (EOS, a named stop token), and
    ///   then exactly at a character boundary, leaving the word as it is;
    /// - a token with bytes is allowed iff the word stays a valid UTF-8 prefix at every byte,
    ///   never contains a character the vocabulary forbids (one its decoder would rewrite) and
    ///   is not complete before the token's last byte;
    /// - a token with no bytes is allowed only as the first token of a word (a SentencePiece
    ///   `▁` whose space the decoder drops), and moves the word past its first token;
    /// - and, unless it stops (a stop is terminal: nothing follows it), the word must be able
    ///   to go on: a token that ends inside a character no token sequence can finish is not
    ///   allowed (never the case where byte tokens exist).
    fn step(&self, w: &Word, t: u32) -> Option<(Word, bool)> {
        self.step_bytes(w, t)
            .filter(|(next, stop)| *stop || self.can_go_on(next))
    }

    /// Whether some token is allowed after `w`: at a character boundary EOS is; inside a
    /// character, a token that leads on (at most 3 more bytes finish it).
    fn can_go_on(&self, w: &Word) -> bool {
        if utf8(&w.bytes) == Utf8::Boundary {
            assert!(self.vocab.eos().is_some(), "the spec assumes an EOS");
            return true;
        }
        (0..self.vocab.len() as u32).any(|t| self.step(w, t).is_some())
    }

    /// [`Spec::step`] without the look-ahead.
    fn step_bytes(&self, w: &Word, t: u32) -> Option<(Word, bool)> {
        let always_stops = self.vocab.is_stop_token(t);
        match self.token(w, t) {
            Token::Special(_) => {
                (always_stops && utf8(&w.bytes) == Utf8::Boundary).then(|| (w.clone(), true))
            }
            Token::Bytes(b) if b.is_empty() => w.first.then(|| {
                (
                    Word {
                        bytes: w.bytes.clone(),
                        first: false,
                    },
                    always_stops,
                )
            }),
            Token::Bytes(b) => {
                let mut text = w.bytes.clone();
                let mut stop = false;
                for &byte in b {
                    if stop {
                        return None; // complete before the token's last byte
                    }
                    text.push(byte);
                    match utf8(&text) {
                        Utf8::Invalid => return None,
                        Utf8::Partial => {}
                        Utf8::Boundary => {
                            let t = std::str::from_utf8(&text).expect("boundary");
                            let last = t.chars().next_back().expect("a character");
                            if self.vocab.forbidden_chars().contains(&last) {
                                return None;
                            }
                            stop = word_complete(t);
                        }
                    }
                }
                Some((
                    Word {
                        bytes: text,
                        first: false,
                    },
                    stop || always_stops,
                ))
            }
        }
    }

    /// Runs a whole sequence; `None` if some token is not allowed (every token after a stop:
    /// a stop is terminal).
    fn run(&self, tokens: &[u32]) -> Option<Word> {
        let mut w = self.start();
        let mut stopped = false;
        for &t in tokens {
            if stopped {
                return None;
            }
            (w, stopped) = self.step(&w, t)?;
        }
        Some(w)
    }

    /// The concatenated bytes of a sequence of byte tokens, first-token bytes first.
    fn bytes(&self, tokens: &[u32]) -> Vec<u8> {
        let mut w = self.start();
        let mut out = Vec::new();
        for &t in tokens {
            if let Token::Bytes(b) = self.token(&w, t) {
                out.extend_from_slice(b);
            }
            w.first = false;
        }
        out
    }
}

/// The spec's rule agrees with WeLT's byte automaton on `text` (where the byte tokenizer's
/// EOS byte 0x03, which always stops there, does not occur).
fn check_against_byte_automaton(text: &[u8]) {
    if text.is_empty() || text.contains(&0x03) {
        return;
    }
    let bytes: Vec<u32> = text.iter().map(|&b| u32::from(b)).collect();
    let w = Utf8Words::TABLES.walk(&bytes).unwrap();
    let class = utf8(text);
    let complete = class == Utf8::Boundary && word_complete(std::str::from_utf8(text).unwrap());
    // A complete word is in the dead state too: a stop is terminal.
    assert_eq!(w.state == DEAD, class == Utf8::Invalid || complete, "{text:?}");
    assert_eq!(w.stop, complete, "{text:?}");
}

/// Allowed tokens per state, computed once.
struct Allowed<'t> {
    tables: Tables<'t>,
    rows: HashMap<u16, Vec<u32>>,
}

impl<'t> Allowed<'t> {
    fn new(tables: Tables<'t>) -> Allowed<'t> {
        Allowed {
            tables,
            rows: HashMap::new(),
        }
    }
    fn get(&mut self, state: u16) -> &[u32] {
        let tables = self.tables;
        self.rows
            .entry(state)
            .or_insert_with(|| tables.mask(state).iter().collect())
    }
}

/// Every live state with a shortest token sequence reaching it (breadth first, in token
/// order, so the witnesses are deterministic). Stopping tokens lead to the dead state and are
/// not followed.
fn witnesses(tables: &Tables<'_>) -> Vec<(u16, Vec<u32>)> {
    let mut seen: HashMap<u16, usize> = HashMap::new();
    let mut out: Vec<(u16, Vec<u32>)> = vec![(tables.start(), Vec::new())];
    seen.insert(tables.start(), 0);
    let mut queue = VecDeque::from([0usize]);
    while let Some(i) = queue.pop_front() {
        let (s, w) = out[i].clone();
        for t in tables.mask(s).iter() {
            let (n, stop) = tables.step(s, t).unwrap();
            if stop {
                continue;
            }
            if let std::collections::hash_map::Entry::Vacant(e) = seen.entry(n) {
                e.insert(out.len());
                let mut w2 = w.clone();
                w2.push(t);
                out.push((n, w2));
                queue.push_back(out.len() - 1);
            }
        }
    }
    out
}

fn special_ids(vocab: &Vocabulary) -> Vec<u32> {
    (0..vocab.len() as u32)
        .filter(|&t| matches!(vocab.tokens()[t as usize], Token::Special(_)))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// 1. The macro, the build script and the library give the same tables.

#[test]
fn macro_build_script_and_library_tables_are_byte_identical() {
    for fx in fixtures() {
        let library = kernels_gen::generate(&DecoderSpec::new(load(fx.file, &Default::default())))
            .unwrap()
            .to_blob();
        let build =
            kernels_gen::build::DecoderBuild::new("BuildScriptWords").tokenizer(fixture_path(fx.file));
        assert!(
            fx.macro_tables.as_bytes() == crate::common::build_script_blob(&build, "BuildScriptWords"),
            "{}: macro and build script tables differ",
            fx.file
        );
        assert!(
            fx.macro_tables.as_bytes() == &library[..],
            "{}: macro and kernels_gen::generate tables differ",
            fx.file
        );
        let stats = kernels_gen::generate(&DecoderSpec::new(load(fx.file, &Default::default()))).unwrap();
        eprintln!(
            "{}: {} tokens, {} states, {} token classes, {} blob bytes, first-token bytes: {}",
            fx.file,
            stats.vocab_size(),
            stats.num_states(),
            stats.num_token_classes(),
            library.len(),
            load(fx.file, &Default::default()).first_tokens().is_some()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Token automaton == the rule over the concatenated bytes, on random sequences.

#[test]
fn token_automaton_equals_the_rule_over_concatenated_bytes() {
    const SEQUENCES: usize = 3000;
    for (k, fx) in fixtures().into_iter().enumerate() {
        let vocab = load(fx.file, &Default::default());
        let spec = Spec::new(&vocab);
        let tables = fx.macro_tables;
        let v = tables.vocab_size();
        let eos = tables.eos().expect("every fixture has an EOS");
        let specials = special_ids(&vocab);
        let mut allowed = Allowed::new(tables);
        let mut rng = SplitMix64::new(0x5EED_0000 + k as u64);
        let (mut stops, mut reachable_stops, mut deads) = (0, 0, 0);
        for _ in 0..SEQUENCES {
            // Mostly tokens the mask allows, some EOS and other specials, some anything.
            let len = 1 + rng.index(20);
            let mut seq = Vec::with_capacity(len);
            let mut state = tables.start();
            for _ in 0..len {
                let r = rng.index(100);
                let row = allowed.get(state);
                let t = if r < 75 && !row.is_empty() {
                    *rng.pick(row)
                } else if r < 82 {
                    eos
                } else if r < 87 {
                    *rng.pick(&specials)
                } else {
                    rng.index(v) as u32
                };
                seq.push(t);
                state = tables.step(state, t).unwrap().0;
            }

            // The spec, token by token; the automaton, by `walk` on every prefix. A stop is
            // terminal (the dead state; `word` is `None` after it); reachability also counts
            // the word length limit.
            let mut word = Some(spec.start());
            let (mut reachable, mut prev_stop) = (true, false);
            for i in 0..seq.len() {
                let (next, stop) = match word.as_ref().and_then(|w| spec.step(w, seq[i])) {
                    Some((n, s)) => (Some(n), s),
                    None => (None, false),
                };
                reachable &= !prev_stop && next.is_some() && i < usize::from(tables.max_word_len());
                let walk = tables.walk(&seq[..=i]).unwrap();
                assert_eq!(
                    (walk.state == DEAD, walk.stop, walk.reachable),
                    (next.is_none() || stop, stop, reachable),
                    "{}: tokens {:?}, bytes {:?}",
                    fx.file,
                    &seq[..=i],
                    String::from_utf8_lossy(&spec.bytes(&seq[..=i]))
                );
                let next = next.filter(|_| !stop);
                if let Some(w) = &next {
                    assert_eq!(
                        tables.is_boundary(walk.state),
                        utf8(&w.bytes) == Utf8::Boundary,
                        "{}: boundary after {:?}",
                        fx.file,
                        &seq[..=i]
                    );
                    check_against_byte_automaton(&w.bytes);
                }
                stops += usize::from(stop);
                reachable_stops += usize::from(stop && reachable);
                deads += usize::from(next.is_none() && word.is_some());
                word = next;
                prev_stop = stop;
            }
        }
        eprintln!(
            "{}: {SEQUENCES} sequences, {stops} stops ({reachable_stops} on reachable sequences), {deads} forbidden tokens",
            fx.file
        );
        // The sample reaches every kind of outcome.
        assert!(
            reachable_stops > 100 && deads > 100,
            "{}: too few stops or forbidden tokens",
            fx.file
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Every state's mask and stop flags by brute force.

/// Checks every token of `state` against the spec's word `w`.
fn check_row(file: &str, tables: &Tables<'_>, spec: &Spec<'_>, state: u16, w: &Word, witness: &[u32]) {
    let mask = tables.mask(state);
    assert_eq!(
        tables.is_boundary(state),
        utf8(&w.bytes) == Utf8::Boundary,
        "{file}: boundary bit of state {state}"
    );
    for t in 0..tables.vocab_size() as u32 {
        let brute = spec.step(w, t);
        let (next, stop) = tables.step(state, t).unwrap();
        // Allowed iff the spec allows it; a stop leads to the dead state (a stop is terminal).
        assert_eq!(
            (mask.allows(t), next != DEAD, stop),
            (
                brute.is_some(),
                brute.as_ref().is_some_and(|b| !b.1),
                brute.is_some_and(|b| b.1)
            ),
            "{file}: state {state} (witness {witness:?}, bytes {:?}), token {t} = {:?}",
            String::from_utf8_lossy(&w.bytes),
            spec.token(w, t)
        );
    }
}

#[test]
fn every_mask_equals_the_brute_force_set() {
    for (k, fx) in fixtures().into_iter().enumerate() {
        let vocab = load(fx.file, &Default::default());
        let spec = Spec::new(&vocab);
        let tables = fx.macro_tables;
        let states = witnesses(&tables);
        // A minimal automaton has no unreachable states.
        assert_eq!(
            states.len(),
            tables.num_states() - 1,
            "{}: live states reached",
            fx.file
        );
        let mut rng = SplitMix64::new(0xB00F + k as u64);
        for (state, witness) in &states {
            let w = spec
                .run(witness)
                .unwrap_or_else(|| panic!("{}: the spec forbids witness {witness:?}", fx.file));
            check_row(fx.file, &tables, &spec, *state, &w, witness);
            // A few successors: the state a token leads to has the future of the word it
            // makes, so transitions land in the right state, not just any with the right row.
            let row: Vec<u32> = tables.mask(*state).iter().collect();
            for _ in 0..6 {
                let t = *rng.pick(&row);
                let (next, stop) = tables.step(*state, t).unwrap();
                let (w2, _) = spec.step(&w, t).unwrap();
                if stop {
                    assert_eq!(next, DEAD, "{}: a stop is terminal", fx.file);
                    continue;
                }
                let mut witness2 = witness.clone();
                witness2.push(t);
                check_row(fx.file, &tables, &spec, next, &w2, &witness2);
            }
        }
        eprintln!("{}: {} live states checked", fx.file, states.len());
    }
}

// ---------------------------------------------------------------------------------------------
// 4. The `tokenizers` crate's decoder agrees with the id -> bytes map.

/// A random reachable sequence of non-special tokens, cut at its last character boundary.
fn sample_decodable(
    tables: &Tables<'_>,
    allowed: &mut Allowed<'_>,
    vocab: &Vocabulary,
    rng: &mut SplitMix64,
    prefix: &[u32],
    only: Option<&dyn Fn(u32) -> bool>,
) -> Vec<u32> {
    let mut seq = prefix.to_vec();
    let mut state = tables.walk(prefix).unwrap().state;
    let mut cut = if tables.is_boundary(state) { seq.len() } else { 0 };
    let len = 1 + rng.index(16);
    for _ in 0..len {
        let row: Vec<u32> = allowed
            .get(state)
            .iter()
            .copied()
            .filter(|&t| matches!(vocab.tokens()[t as usize], Token::Bytes(_)))
            .filter(|&t| only.is_none_or(|f| f(t)))
            .collect();
        if row.is_empty() {
            break;
        }
        let t = *rng.pick(&row);
        seq.push(t);
        let stop;
        (state, stop) = tables.step(state, t).unwrap();
        // A stop ends the word at a character boundary, in the dead state (a stop is terminal).
        if stop || tables.is_boundary(state) {
            cut = seq.len();
        }
        if stop {
            break;
        }
    }
    seq.truncate(cut);
    seq
}

fn check_decode(file: &str, tk: &::tokenizers::Tokenizer, spec: &Spec<'_>, seq: &[u32]) {
    let ours = String::from_utf8(spec.bytes(seq))
        .unwrap_or_else(|e| panic!("{file}: {seq:?} is not valid UTF-8: {e}"));
    let theirs = tk.decode(seq, false).unwrap();
    assert_eq!(
        theirs,
        ours,
        "{file}: tokens {seq:?} = {:?}",
        seq.iter().map(|&t| tk.id_to_token(t)).collect::<Vec<_>>()
    );
}

#[test]
fn the_tokenizers_decoder_agrees_with_the_byte_map() {
    const SEQUENCES: usize = 1500;
    for (k, fx) in fixtures().into_iter().enumerate() {
        let vocab = load(fx.file, &Default::default());
        let spec = Spec::new(&vocab);
        let tables = fx.macro_tables;
        let tk = hf(fx.file);
        let mut allowed = Allowed::new(tables);
        let mut rng = SplitMix64::new(0xDEC0DE + k as u64);
        let mut nonempty = 0;
        for _ in 0..SEQUENCES {
            let seq = sample_decodable(&tables, &mut allowed, &vocab, &mut rng, &[], None);
            nonempty += usize::from(!seq.is_empty());
            check_decode(fx.file, &tk, &spec, &seq);
        }
        assert!(nonempty > SEQUENCES / 2, "{}: too few sequences", fx.file);
    }
}

/// The SentencePiece fixtures: the decoder drops the `▁` of a word's first token, and a lone
/// `▁` first token followed by byte tokens decodes to just those bytes.
#[test]
fn sentencepiece_first_token_rule() {
    for (k, file) in ["sp_bpe_bytefallback.json", "sp_unigram.json"]
        .into_iter()
        .enumerate()
    {
        let fx = fixtures().into_iter().find(|f| f.file == file).unwrap();
        let vocab = load(file, &Default::default());
        let first = vocab
            .first_tokens()
            .expect("SentencePiece decoders drop the first ▁");
        let spec = Spec::new(&vocab);
        let tables = fx.macro_tables;
        let tk = hf(file);
        let lone = id(&tk, "▁");
        assert_eq!(
            first[lone as usize],
            Token::Bytes(Vec::new()),
            "{file}: lone ▁ first"
        );
        assert_eq!(
            vocab.tokens()[lone as usize],
            Token::Bytes(b" ".to_vec()),
            "{file}: lone ▁"
        );
        let byte = |b: u8| id(&tk, &format!("<0x{b:02X}>"));
        let is_byte = |t: u32| (byte(0)..=byte(255)).contains(&t);
        let spaced: Vec<u32> = (0..vocab.len() as u32)
            .filter(|&t| t != lone && tk.id_to_token(t).is_some_and(|s| s.starts_with('▁')))
            .collect();
        assert!(spaced.len() > 30, "{file}: ▁-words");

        // Hand-picked: a lone ▁, then bytes (ASCII, a 2-byte and a 4-byte character, a space).
        let cases: Vec<Vec<u32>> = vec![
            vec![lone, byte(b'A')],
            vec![lone, byte(0xC3), byte(0xA9), byte(b'x')],
            vec![lone, byte(0xF0), byte(0x9F), byte(0x98), byte(0x80), byte(b' ')],
            vec![lone, byte(b' '), byte(b'a')],
            vec![lone, lone, byte(b'a')],
            vec![byte(b' '), byte(b'a')],
            vec![spaced[0], byte(b'!')],
            vec![spaced[1], lone],
        ];
        for seq in &cases {
            let walk = tables.walk(seq).unwrap();
            // Generable (some cases end the word: then the walk is in the dead state).
            assert!(walk.reachable, "{file}: {seq:?} is allowed");
            check_decode(file, &tk, &spec, seq);
        }

        // Random: words that start with a ▁-token, and a lone ▁ followed by byte tokens.
        let mut allowed = Allowed::new(tables);
        let mut rng = SplitMix64::new(0x5917 + k as u64);
        let mut starts = [0usize; 2];
        for i in 0..800 {
            let seq = if i % 2 == 0 {
                let start = *rng.pick(&spaced);
                sample_decodable(&tables, &mut allowed, &vocab, &mut rng, &[start], None)
            } else {
                let only = |t: u32| is_byte(t);
                sample_decodable(&tables, &mut allowed, &vocab, &mut rng, &[lone], Some(&only))
            };
            if seq.len() > 1 {
                starts[i % 2] += 1;
            }
            check_decode(file, &tk, &spec, &seq);
        }
        assert!(
            starts[0] > 200 && starts[1] > 200,
            "{file}: ▁-word starts and lone ▁ + bytes exercised: {starts:?}"
        );
    }
}

/// Byte tokens that spell a character the decoder rewrites after byte fallback (in the
/// Unigram fixture, `ByteFallback` then `Metaspace`: the bytes E2 96 81 become `▁`, which
/// Metaspace turns into a space, or drops in the first token): wherever welt allows such a
/// sequence, the decoder must agree with the bytes welt walked.
#[test]
fn byte_fallback_spelling_the_metaspace_character() {
    for fx in fixtures() {
        let vocab = load(fx.file, &Default::default());
        let spec = Spec::new(&vocab);
        let tables = fx.macro_tables;
        let tk = hf(fx.file);
        let Some(e2) = tk.token_to_id("<0xE2>") else {
            continue;
        };
        let b = |x: u8| id(&tk, &format!("<0x{x:02X}>"));
        let meta = [e2, b(0x96), b(0x81)];
        let a = b(b'a');
        let mut cases: Vec<Vec<u32>> = vec![meta.to_vec(), [&meta[..], &[a]].concat()];
        for lead in [vec![a], vec![a, a], vec![b(b' ')]] {
            cases.push([&lead[..], &meta[..]].concat());
            cases.push([&lead[..], &meta[..], &[a]].concat());
        }
        if let Some(lone) = tk.token_to_id("▁") {
            cases.push([&[lone][..], &meta[..], &[a]].concat());
        }
        for seq in cases {
            if tables.walk(&seq).unwrap().reachable {
                check_decode(fx.file, &tk, &spec, &seq);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Large vocabularies.

fn large_vocabulary(size: usize, expect_direct: bool) {
    let t0 = Instant::now();
    let json = kernels_gen::synthetic::byte_level_bpe_json(size, 0xB16);
    let vocab = load_str("synthetic.json", &json, &Default::default()).unwrap();
    let t_load = t0.elapsed();
    assert_eq!(vocab.len(), size);
    assert_eq!(vocab.eos(), Some(size as u32 - 1), "<|endoftext|> is the last id");
    let t1 = Instant::now();
    let tables = kernels_gen::generate(&DecoderSpec::new(vocab.clone())).unwrap();
    let t_gen = t1.elapsed();
    tables.validate().unwrap();
    assert_eq!(tables.is_direct(), expect_direct, "{size}: layout");
    assert_eq!(
        tables.stats().layout,
        if expect_direct { "direct" } else { "token classes" }
    );
    let blob = tables.to_blob();
    assert!(blob.len() < 8 << 20, "{size}: {} blob bytes", blob.len());
    let t2 = Instant::now();
    let rt = Tables::from_bytes(&blob).unwrap();
    let t_read = t2.elapsed();
    rt.validate_masks().unwrap();
    assert_eq!(rt.vocab_size(), size);
    assert_eq!(rt.num_states(), tables.num_states());
    assert_eq!(rt.token_classes().is_none(), expect_direct);
    if !expect_direct {
        assert_eq!(rt.token_classes(), Some(tables.num_token_classes()));
    }

    // Random (state, token) pairs, plus every state with EOS and the first/last tokens.
    let mut rng = SplitMix64::new(size as u64);
    let n = tables.num_states() as u16;
    let mut pairs: Vec<(u16, u32)> = (0..200_000)
        .map(|_| (rng.index(n as usize) as u16, rng.index(size) as u32))
        .collect();
    for s in 0..n {
        for t in [0, 1, 255, 256, size as u32 - 2, size as u32 - 1] {
            pairs.push((s, t));
        }
    }
    let mut allowed_count = 0;
    for (s, t) in pairs {
        let allowed = tables.allows(s, t);
        assert_eq!(
            rt.step(s, t).unwrap(),
            tables.step(s, t),
            "{size}: state {s}, token {t}"
        );
        assert_eq!(
            rt.mask(s).allows(t),
            allowed,
            "{size}: mask of state {s}, token {t}"
        );
        allowed_count += usize::from(allowed);
    }
    assert!(allowed_count > 10_000, "{size}: the sample hits allowed tokens");

    // And the spec, on sequences sampled from the runtime's masks.
    let spec = Spec::new(&vocab);
    let mut allowed = Allowed::new(rt);
    for _ in 0..100 {
        let mut state = rt.start();
        let mut word = spec.start();
        for _ in 0..1 + rng.index(12) {
            let row = allowed.get(state);
            if row.is_empty() {
                break;
            }
            let t = *rng.pick(row);
            let (next, stop) = rt.step(state, t).unwrap();
            let (w, s) = spec.step(&word, t).expect("the spec allows what the mask allows");
            assert_eq!(stop, s, "{size}: stop flag of token {t} after {:?}", word.bytes);
            (state, word) = (next, w);
        }
    }
    eprintln!(
        "synthetic {size}: load {t_load:?}, generate {t_gen:?}, runtime read {t_read:?}; {} states, {} token \
         classes, {} layout, {} blob bytes; total {:?}",
        tables.num_states(),
        tables.num_token_classes(),
        tables.stats().layout,
        blob.len(),
        t0.elapsed()
    );
}

#[test]
fn large_vocabulary_32k_is_direct() {
    large_vocabulary(32_768, true);
}

#[test]
fn large_vocabulary_128k_uses_token_classes() {
    large_vocabulary(131_072, false);
}

// ---------------------------------------------------------------------------------------------
// 6. Property tests: nothing panics.

/// Words that a tokenizer.json is made of, so that random JSON gets past the first checks.
const JSON_WORDS: &[&str] = &[
    "version",
    "model",
    "type",
    "vocab",
    "merges",
    "added_tokens",
    "decoder",
    "decoders",
    "normalizer",
    "pre_tokenizer",
    "post_processor",
    "truncation",
    "padding",
    "id",
    "content",
    "special",
    "BPE",
    "Unigram",
    "WordPiece",
    "WordLevel",
    "ByteLevel",
    "ByteFallback",
    "Metaspace",
    "Replace",
    "Fuse",
    "Strip",
    "Sequence",
    "CTC",
    "BPEDecoder",
    "pattern",
    "String",
    "Regex",
    "replacement",
    "prepend_scheme",
    "always",
    "first",
    "never",
    "split",
    "start",
    "stop",
    "unk_token",
    "unk_id",
    "byte_fallback",
    "<0x41>",
    "<0xE2>",
    "▁",
    "</s>",
    "<pad>",
    "a",
    "",
];

fn json_word() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(JSON_WORDS).prop_map(String::from),
        1 => proptest::collection::vec(any::<char>(), 0..6).prop_map(String::from_iter),
    ]
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..300).prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        json_word().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((json_word(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A decoder the `tokenizers` crate accepts, with random parameters, so that welt's own
/// decoder interpretation (not just the JSON reader) meets odd inputs.
fn decoder_json() -> impl Strategy<Value = String> {
    let one_char = proptest::sample::select(vec!["▁", " ", "a", "é", "<", "0"]);
    let leaf = prop_oneof![
        Just(
            r#"{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true}"#
                .to_string()
        ),
        Just(r#"{"type":"ByteFallback"}"#.to_string()),
        Just(r#"{"type":"Fuse"}"#.to_string()),
        Just(r#"{"type":"CTC","pad_token":"<pad>","word_delimiter_token":"|","cleanup":true}"#.to_string()),
        Just(r#"{"type":"BPEDecoder","suffix":"</w>"}"#.to_string()),
        (json_word(), json_word()).prop_map(|(p, c)| format!(
            r#"{{"type":"Replace","pattern":{{"String":{}}},"content":{}}}"#,
            serde_json::Value::String(p),
            serde_json::Value::String(c)
        )),
        (one_char.clone(), 0usize..4, 0usize..2).prop_map(|(c, start, stop)| format!(
            r#"{{"type":"Strip","content":"{c}","start":{start},"stop":{stop}}}"#
        )),
        (
            one_char,
            proptest::sample::select(vec!["first", "always", "never"]),
            any::<bool>()
        )
            .prop_map(|(r, scheme, split)| format!(
                r#"{{"type":"Metaspace","replacement":"{r}","prepend_scheme":"{scheme}","split":{split}}}"#
            )),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        proptest::collection::vec(inner, 0..4)
            .prop_map(|ds| format!(r#"{{"type":"Sequence","decoders":[{}]}}"#, ds.join(",")))
    })
}

/// A small BPE tokenizer.json with the given pieces (and byte tokens) and decoder.
fn small_tokenizer(pieces: &[String], decoder: &str, special_eos: bool) -> String {
    let mut vocab: Vec<String> = vec!["</s>".into()];
    vocab.extend((0..=255u8).map(|b| format!("<0x{b:02X}>")));
    for p in pieces {
        if !vocab.contains(p) {
            vocab.push(p.clone());
        }
    }
    let entries: Vec<String> = vocab
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{}:{i}", serde_json::Value::String(p.clone())))
        .collect();
    format!(
        r#"{{"version":"1.0","truncation":null,"padding":null,
"added_tokens":[{{"id":0,"content":"</s>","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":{special_eos}}}],
"normalizer":null,"pre_tokenizer":null,"post_processor":null,"decoder":{decoder},
"model":{{"type":"BPE","dropout":null,"unk_token":null,"continuing_subword_prefix":null,"end_of_word_suffix":null,"fuse_unk":false,"byte_fallback":true,"ignore_merges":false,"vocab":{{{}}},"merges":[]}}}}"#,
        entries.join(",")
    )
}

fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::collection::vec(
            proptest::sample::select(vec![
                '▁', ' ', 'a', 'b', 'é', '€', '😀', '\n', '\u{3000}', '\u{1}', '<', 'x'
            ]),
            1..5
        )
        .prop_map(String::from_iter),
        proptest::collection::vec(any::<char>(), 1..4).prop_map(String::from_iter),
    ]
}

proptest! {
    // Moderate case counts for debug builds, and a fixed seed so that CI is reproducible.
    #![proptest_config(ProptestConfig {
        cases: 128,
        failure_persistence: None,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x7E17),
        ..ProptestConfig::default()
    })]

    #[test]
    fn load_str_never_panics_on_arbitrary_text(text in proptest::collection::vec(any::<char>(), 0..200)) {
        let text: String = text.into_iter().collect();
        let _ = load_str("fuzz.json", &text, &DecoderOptions::default());
    }

    #[test]
    fn load_str_never_panics_on_json_values(value in json_value(), decoder in json_value()) {
        let _ = load_str("fuzz.json", &value.to_string(), &DecoderOptions::default());
        // The same inside a valid tokenizer: a random value as its decoder.
        let json = small_tokenizer(&["ab".into()], &decoder.to_string(), true);
        let _ = load_str("fuzz.json", &json, &DecoderOptions::default());
    }

    /// Valid tokenizers with random pieces and decoders: loading either fails cleanly or
    /// gives a vocabulary that generates valid tables, whose masks are the spec's and whose
    /// bytes are what the `tokenizers` crate decodes.
    #[test]
    fn random_valid_tokenizers_load_and_generate(
        pieces in proptest::collection::vec(piece(), 0..12),
        decoder in decoder_json(),
        special_eos in any::<bool>(),
        eos in proptest::option::of(proptest::sample::select(vec!["</s>", "a", "<0x41>", "<nope>"])),
        stop in proptest::option::of(proptest::sample::select(vec!["</s>", "<0x2E>", "<nope>"])),
    ) {
        let json = small_tokenizer(&pieces, &decoder, special_eos);
        let opts = DecoderOptions {
            eos: eos.map(String::from),
            stop_tokens: stop.into_iter().map(String::from).collect(),
            ..Default::default()
        };
        if let Ok(vocab) = load_str("fuzz.json", &json, &opts) {
            // Generation may refuse a vocabulary, but never with tables that fail validation.
            match kernels_gen::generate(&DecoderSpec::new(vocab.clone())) {
                Ok(tables) => {
                    let blob = tables.to_blob();
                    let rt = Tables::from_bytes(&blob).unwrap();
                    prop_assert_eq!(rt.num_states(), tables.num_states());
                    let spec = Spec::new(&vocab);
                    for (state, witness) in witnesses(&rt) {
                        let w = spec.run(&witness).expect("the spec allows the witness");
                        check_row("fuzz.json", &rt, &spec, state, &w, &witness);
                    }
                    let tk: ::tokenizers::Tokenizer = json.parse().unwrap();
                    let mut allowed = Allowed::new(rt);
                    let mut rng = SplitMix64::new(json.len() as u64);
                    for _ in 0..20 {
                        let seq = sample_decodable(&rt, &mut allowed, &vocab, &mut rng, &[], None);
                        check_decode("fuzz.json", &tk, &spec, &seq);
                    }
                }
                Err(e) => prop_assert!(!e.message().starts_with("invalid tables"), "{}", e),
            }
        }
    }

    #[test]
    fn runtime_never_panics_and_errors_change_nothing(
        fixture in 0usize..4,
        ids in proptest::collection::vec(prop_oneof![4 => 0u32..3000, 1 => any::<u32>()], 0..40),
        rows in proptest::collection::vec((0usize..4, proptest::collection::vec(0u32..3000, 0..20)), 0..6),
    ) {
        let tables = fixtures()[fixture].macro_tables;
        let v = tables.vocab_size() as u32;

        // walk: Err exactly for an id past the vocabulary, at the first one.
        match tables.walk(&ids) {
            // The dead state is reachable only by a stop (a stop is terminal).
            Ok(w) => prop_assert!(ids.iter().all(|&t| t < v) && (w.state != DEAD || !w.reachable || w.stop)),
            Err(e) => {
                let at = ids.iter().position(|&t| t >= v).unwrap();
                prop_assert_eq!(e.kind(), ErrorKind::TokenOutOfRange { token: ids[at], vocab: v, at });
            }
        }

        // Sequence::step: an error leaves the word as it was.
        let mut seq = Sequence::new(tables);
        for &t in &ids {
            let before = (seq.state(), seq.len(), seq.is_complete());
            match seq.step(t) {
                Ok(stop) => prop_assert_eq!(stop, seq.is_complete()),
                Err(_) => prop_assert_eq!(before, (seq.state(), seq.len(), seq.is_complete())),
            }
            let _ = seq.mask().count();
        }
        let _ = Sequence::with_prefix(tables, &ids);

        // WordBatch: advance and set_prefix either apply or change nothing.
        let mut batch = WordBatch::new(tables, 3).unwrap();
        let snapshot = |b: &WordBatch<'_>| {
            (b.states().to_vec(), b.lengths().to_vec(), b.stopped().to_vec(), b.finished().to_vec(), b.running())
        };
        for chunk in ids.chunks(3) {
            let mut tokens = chunk.to_vec();
            let before = snapshot(&batch);
            if batch.advance(&mut tokens).is_err() {
                prop_assert_eq!(&before, &snapshot(&batch));
                prop_assert_eq!(&tokens[..], chunk);
            }
            let mut logits = vec![0f32; 3 * v as usize];
            batch.apply_mask(&mut logits).unwrap();
            prop_assert!(batch.apply_mask(&mut logits[1..]).is_err());
        }
        for (row, prefix) in &rows {
            let before = snapshot(&batch);
            if batch.set_prefix(*row, prefix).is_err() {
                prop_assert_eq!(&before, &snapshot(&batch));
            }
            let _ = batch.mask(*row);
        }
    }

    /// A damaged blob is an `Err`, never a panic; one that still validates works.
    #[test]
    fn damaged_blobs_never_panic(
        fixture in 0usize..4,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        cut in proptest::option::of(any::<usize>()),
    ) {
        let mut blob = fixtures()[fixture].macro_tables.as_bytes().to_vec();
        for (at, byte) in edits {
            // Mostly the header, where the sizes are.
            let at = if at % 2 == 0 { at % 64 } else { at % blob.len() };
            blob[at] = byte;
        }
        if let Some(cut) = cut {
            blob.truncate(cut % (blob.len() + 1));
        }
        if let Ok(t) = Tables::from_bytes(&blob) {
            let _ = t.walk(&[0, 1, 2, 3]);
            let _ = t.mask(t.start()).count();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 7. EOS, PAD and stop tokens.

#[welt_runtime::welt_decoder(tokenizer = "tests/fixtures/byt5_like.json", eos = "</s>")]
struct Byt5NamedEos;
#[welt_runtime::welt_decoder(
    tokenizer = "tests/fixtures/byt5_like.json",
    eos = "<extra_id_0>",
    pad = "<unk>"
)]
struct Byt5OtherEos;
#[welt_runtime::welt_decoder(
    tokenizer = "tests/fixtures/byt5_like.json",
    stop_token = "<0x2E>",
    stop_token = "<extra_id_1>"
)]
struct Byt5StopTokens;
#[welt_runtime::welt_decoder(tokenizer = "tests/fixtures/sp_unigram.json", pad = "</s>", max_word_len = 4)]
struct UnigramPadIsEos;

#[test]
fn eos_is_found_by_default_and_by_name() {
    for (fx, (eos, pad)) in fixtures().into_iter().zip([
        ("</s>", "<pad>"),
        ("<|endoftext|>", "<|endoftext|>"), // no PAD: EOS
        ("</s>", "</s>"),                   // no PAD: EOS
        ("</s>", "<pad>"),
    ]) {
        let tk = hf(fx.file);
        let t = fx.macro_tables;
        assert_eq!(t.eos(), Some(id(&tk, eos)), "{}: EOS", fx.file);
        assert_eq!(t.pad(), id(&tk, pad), "{}: PAD", fx.file);
    }
    assert!(Byt5NamedEos::TABLES.as_bytes() == Byt5Macro::TABLES.as_bytes());

    // Another EOS: `<extra_id_0>` is allowed at every boundary and stops (into the dead state);
    // `</s>` is now an ordinary special token, never allowed.
    let tk = hf("byt5_like.json");
    let t = Byt5OtherEos::TABLES;
    let (eos, old) = (id(&tk, "<extra_id_0>"), id(&tk, "</s>"));
    assert_eq!((t.eos(), t.pad()), (Some(eos), id(&tk, "<unk>")));
    let states = witnesses(&t);
    assert!(states.len() > 3);
    for (s, _) in &states {
        assert_eq!(t.mask(*s).allows(eos), t.is_boundary(*s), "state {s}");
        if t.is_boundary(*s) {
            assert_eq!(t.step(*s, eos).unwrap(), (DEAD, true));
        }
        assert!(!t.mask(*s).allows(old), "state {s}");
    }

    // Named options reach the library the same way, with errors about the right argument.
    let err = |opts: DecoderOptions| load_file(&fixture_path("byt5_like.json"), &opts).unwrap_err();
    let e = err(DecoderOptions {
        eos: Some("<nope>".into()),
        ..Default::default()
    });
    assert_eq!(e.subject(), Subject::Eos);
    assert!(e.message().contains("<nope>"), "{e}");
    let e = err(DecoderOptions {
        pad: Some("<nope>".into()),
        ..Default::default()
    });
    assert_eq!(e.subject(), Subject::Pad);
    let e = err(DecoderOptions {
        stop_tokens: vec!["<0x2E>".into(), "<nope>".into()],
        ..Default::default()
    });
    assert_eq!(e.subject(), Subject::StopToken(1));
}

#[test]
fn stop_tokens_end_the_word_where_allowed() {
    let tk = hf("byt5_like.json");
    let t = Byt5StopTokens::TABLES;
    let (dot, extra) = (id(&tk, "<0x2E>"), id(&tk, "<extra_id_1>"));
    let vocab = load(
        "byt5_like.json",
        &DecoderOptions {
            stop_tokens: vec!["<0x2E>".into(), "<extra_id_1>".into()],
            ..Default::default()
        },
    );
    let spec = Spec::new(&vocab);
    let states = witnesses(&t);
    let mut dots = 0;
    for (s, witness) in &states {
        // A byte token named as a stop token: allowed where '.' is valid, and always stops
        // (into the dead state: a stop is terminal).
        let (next, stop) = t.step(*s, dot).unwrap();
        assert_eq!(
            t.mask(*s).allows(dot),
            t.is_boundary(*s),
            "'.' is allowed exactly at boundaries"
        );
        if t.mask(*s).allows(dot) {
            assert_eq!((next, stop), (DEAD, true), "state {s}: '.' always ends the word");
            dots += 1;
        }
        // A special token named as a stop token ends the word like EOS: allowed exactly at
        // character boundaries, into the dead state.
        assert_eq!(
            t.mask(*s).allows(extra),
            t.is_boundary(*s),
            "state {s}: <extra_id_1>"
        );
        if t.is_boundary(*s) {
            assert_eq!(t.step(*s, extra).unwrap(), (DEAD, true));
        }
        // Every other token as without stop tokens.
        check_row(
            "byt5_like.json",
            &t,
            &spec,
            *s,
            &spec.run(witness).unwrap(),
            witness,
        );
    }
    assert!(dots > 1);
    // "a." stops on '.', where without the stop token it would not.
    let a = id(&tk, "<0x61>");
    assert!(Byt5StopTokens::TABLES.walk(&[a, dot]).unwrap().stop);
    assert!(!Byt5Macro::TABLES.walk(&[a, dot]).unwrap().stop);
}

#[test]
fn pad_is_reported_for_finished_rows() {
    let tk = hf("sp_unigram.json");
    let t = UnigramPadIsEos::TABLES;
    let (eos, pad) = (id(&tk, "</s>"), id(&tk, "</s>"));
    assert_eq!((t.eos(), t.pad(), t.max_word_len()), (Some(eos), pad, 4));
    let (a, space, b) = (id(&tk, "<0x61>"), id(&tk, "<0x20>"), id(&tk, "<0x62>"));
    let mut batch = WordBatch::new(t, 3).unwrap();
    // Row 0: "a " stops after 2 tokens; row 1: EOS at once; row 2: "aaaa" hits the limit.
    let mut steps = [[a, eos, a], [space, b, a], [b, b, a], [b, b, a], [b, b, b]];
    let mut reported = Vec::new();
    for tokens in &mut steps {
        if batch.is_done() {
            break;
        }
        batch.advance(tokens).unwrap();
        reported.push(*tokens);
    }
    assert_eq!(batch.stopped(), &[true, true, false]);
    assert_eq!(batch.finished(), &[true, true, true]);
    assert_eq!(
        reported,
        vec![[a, eos, a], [space, pad, a], [pad, pad, a], [pad, pad, a]],
        "finished rows report PAD"
    );
    assert_eq!(batch.lengths(), &[2, 1, 4]);
}

// ---------------------------------------------------------------------------------------------
// 9. The command-line tool.

fn welt(args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_welt"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The tool may exit before reading its input (a bad tokenizer file): a broken pipe is fine.
    let _ = std::io::Write::write_all(&mut child.stdin.take().unwrap(), stdin.as_bytes());
    child.wait_with_output().unwrap()
}

#[test]
fn cli_query_with_a_tokenizer_agrees_with_the_library() {
    let t = SpUnigramMacro::TABLES;
    let mut rng = SplitMix64::new(0xC11);
    let mut allowed = Allowed::new(t);
    let mut lines = Vec::new();
    let mut seqs: Vec<Vec<u32>> = vec![vec![], vec![1], vec![0], vec![t.vocab_size() as u32 - 1]];
    for _ in 0..200 {
        let mut seq = Vec::new();
        let mut s = t.start();
        for _ in 0..rng.index(10) {
            let row = allowed.get(s);
            let tok = if rng.index(100) < 80 && !row.is_empty() {
                *rng.pick(row)
            } else {
                rng.index(t.vocab_size()) as u32
            };
            seq.push(tok);
            s = t.step(s, tok).unwrap().0;
        }
        seqs.push(seq);
    }
    for seq in &seqs {
        lines.push(format!(r#"{{"tokens": {seq:?}, "other": 1}}"#));
    }
    let out = welt(
        &["query", "--tokenizer", "tests/fixtures/sp_unigram.json"],
        &lines.join("\n"),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let got: Vec<&str> = stdout.lines().collect();
    assert_eq!(got.len(), seqs.len());
    let mut reachable = 0;
    for (seq, line) in seqs.iter().zip(got) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let w = t.walk(seq).unwrap();
        let ids: Vec<u32> = v["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(&ids, seq);
        assert_eq!(
            v["mask"].as_str().unwrap(),
            welt::to_hex(t.mask(w.state).as_bytes()),
            "{seq:?}"
        );
        assert_eq!(v["stop"].as_bool().unwrap(), w.stop, "{seq:?}");
        assert_eq!(v["reachable"].as_bool().unwrap(), w.reachable, "{seq:?}");
        reachable += usize::from(w.reachable && !seq.is_empty());
    }
    assert!(reachable > 50);

    // A token id past the vocabulary names the line.
    let out = welt(
        &["query", "--tokenizer", "tests/fixtures/sp_unigram.json"],
        "{\"tokens\": [5]}\n{\"tokens\": [99999]}\n",
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2") && err.contains("99999"), "{err}");
}

#[test]
fn cli_tables_with_a_tokenizer() {
    let path = "tests/fixtures/sp_unigram.json";
    let t = SpUnigramMacro::TABLES;

    let out = welt(&["tables", "--tokenizer", path, "--emit", "stats"], "");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stats = String::from_utf8(out.stdout).unwrap();
    assert!(stats.contains(&format!("{} tokens", t.vocab_size())), "{stats}");
    assert!(stats.contains(&format!("{} states", t.num_states())), "{stats}");
    assert!(
        stats.contains(&format!("{} bytes", t.as_bytes().len())),
        "{stats}"
    );

    let out = welt(&["tables", "--tokenizer", path, "--emit", "dot"], "");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let dot = String::from_utf8(out.stdout).unwrap();
    assert!(dot.contains("digraph") && dot.trim_end().ends_with('}'), "{dot}");

    let out = welt(&["tables", "--tokenizer", path, "--emit", "rust"], "");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rust = String::from_utf8(out.stdout).unwrap();
    // The same file the build script writes for this fixture, but for the type's name and doc.
    let expected = kernels_gen::emit::rust::decoder_file(
        &kernels_gen::generate(&DecoderSpec::new(load("sp_unigram.json", &Default::default()))).unwrap(),
        "Words",
        &format!("A welt decoder for {path}."),
    )
    .unwrap();
    assert_eq!(rust, expected);
    assert!(rust.contains("pub struct Words"));

    // Options reach the generator.
    let out = welt(
        &[
            "tables",
            "--tokenizer",
            path,
            "--layout",
            "classes",
            "--eos",
            "<pad>",
        ],
        "",
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8(out.stdout).unwrap().contains("token classes"));
}

#[test]
fn cli_reports_bad_tokenizer_files() {
    for (file, needle) in [
        ("tests/fixtures/bad/malformed.json", "not JSON"),
        ("tests/fixtures/bad/not_a_tokenizer.json", "not a tokenizer.json"),
        (
            "tests/fixtures/bad/wordpiece.json",
            "unsupported tokenizer model WordPiece",
        ),
        ("tests/fixtures/bad/missing.json", "cannot read tokenizer file"),
    ] {
        for cmd in ["tables", "query"] {
            let out = welt(&[cmd, "--tokenizer", file], "{\"tokens\": [1]}\n");
            assert_eq!(out.status.code(), Some(2), "{cmd} {file}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.starts_with("welt: error: ") && err.contains(needle),
                "{cmd} {file}: {err}"
            );
            assert!(out.stdout.is_empty(), "{cmd} {file}");
        }
    }
    let out = welt(
        &[
            "tables",
            "--tokenizer",
            "tests/fixtures/sp_unigram.json",
            "--eos",
            "<nope>",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown EOS token `<nope>`"));
}

#[test]
fn layout_option_gives_the_same_automaton() {
    // Direct and class layouts of one tokenizer differ in bytes, not in behaviour.
    let vocab = load("bpe_bytelevel.json", &Default::default());
    let mut spec = DecoderSpec::new(vocab);
    spec.layout = Layout::Direct;
    let direct = kernels_gen::generate(&spec).unwrap();
    spec.layout = Layout::Classes;
    let classes = kernels_gen::generate(&spec).unwrap();
    let (bd, bc) = (direct.to_blob(), classes.to_blob());
    let (d, c) = (Tables::from_bytes(&bd).unwrap(), Tables::from_bytes(&bc).unwrap());
    assert!(direct.is_direct() && !classes.is_direct());
    assert_eq!(d.num_states(), c.num_states());
    for s in 0..d.num_states() as u16 {
        assert_eq!(d.mask(s), c.mask(s));
        for t in 0..d.vocab_size() as u32 {
            assert_eq!(d.step(s, t).unwrap(), c.step(s, t).unwrap());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 10. `forbid_leading_whitespace` on a byte-level BPE.

#[welt_runtime::welt_decoder(
    tokenizer = "tests/fixtures/bpe_bytelevel.json",
    forbid_leading_whitespace = true
)]
struct BpeNoLeadingSpace;

/// Every token of the byte-level BPE fixture as a word's first token: with the option, exactly
/// those whose bytes begin with a whitespace character that is not a control are refused (` the`
/// no longer traps the row); after any first token the masks are the default's.
#[test]
fn forbid_leading_whitespace_on_a_byte_level_bpe() {
    let vocab = load("bpe_bytelevel.json", &Default::default());
    let on = BpeNoLeadingSpace::TABLES;
    let off = BpeByteLevelMacro::TABLES;
    let spec = DecoderSpec {
        rule: kernels_gen::WordRule::default().forbid_leading_whitespace(true),
        ..DecoderSpec::new(vocab.clone())
    };
    assert!(on.as_bytes() == kernels_gen::generate(&spec).unwrap().to_blob().as_slice());
    let rule = kernels_gen::WordRule::default();
    // The token's first character, if its bytes hold a whole one.
    let first_char = |bytes: &[u8]| {
        let prefix = &bytes[..bytes.len().min(4)];
        (1..=prefix.len())
            .find_map(|n| std::str::from_utf8(&prefix[..n]).ok())
            .and_then(|s| s.chars().next())
    };
    let traps = |c: char| {
        let k = rule.classify(c);
        k.space && !k.control
    };
    let first = vocab.first_tokens().unwrap_or(vocab.tokens());
    let mut refused = 0;
    for (id, token) in first.iter().enumerate() {
        let id = id as u32;
        let c = match token {
            Token::Bytes(b) => first_char(b),
            Token::Special(_) => None,
        };
        let expect = off.mask(off.start()).allows(id) && !c.is_some_and(traps);
        assert_eq!(on.mask(on.start()).allows(id), expect, "token {id} {token:?}");
        refused += usize::from(off.mask(off.start()).allows(id) && !expect);
        // Past a whole first character the option no longer matters (EOS keeps the start
        // state, and a lone lead byte may still become a space).
        if expect && c.is_some() {
            let (a, b) = (
                off.step(off.start(), id).unwrap(),
                on.step(on.start(), id).unwrap(),
            );
            assert_eq!(a.1, b.1, "token {id}: stop");
            assert!(
                off.mask(a.0).as_bytes() == on.mask(b.0).as_bytes(),
                "token {id}: the next mask"
            );
        }
    }
    // The fixture has tokens like ` the` (and the test would be vacuous without them).
    assert!(refused > 100, "{refused}");
}
