//! Behaviour of `Sequence` and `WordBatch`: SEMANTICS.md's consequences word by word; every
//! batch error is reported with its kind and changes nothing; finished rows report PAD, keep
//! their logits and state; the word length limit finishes a row without stopping it; reset,
//! prefixes (also ending inside a character); and the mask applied to `f32`, `f64`,
//! `half::f16` and `half::bf16` logits forbids exactly the same positions, with padded rows.

use std::collections::BTreeSet;

use half::{bf16, f16};
use welt_runtime::{Decoder, Error, ErrorKind, Logit, Sequence, Tables, Utf8Words, WordBatch, DEAD};

const EOS: u32 = 0x03;
const PAD: u32 = 0x00;

fn tables() -> Tables<'static> {
    Utf8Words::TABLES
}

fn toks(bytes: &[u8]) -> Vec<u32> {
    bytes.iter().map(|&b| u32::from(b)).collect()
}

/// Feeds `bytes` to a `Sequence`; the stop flag after each byte. Panics if a byte is refused.
fn stops(bytes: &[u8]) -> Vec<bool> {
    let mut seq = Sequence::new(tables());
    bytes
        .iter()
        .map(|&b| seq.step(b.into()).unwrap_or_else(|e| panic!("{bytes:02x?}: {e}")))
        .collect()
}

/// Whether, from the state after `bytes`, any continuation at all can stop other than by EOS:
/// every state reachable from there, every allowed token.
fn only_eos_can_stop_after(bytes: &[u8]) -> bool {
    let t = tables();
    let start = t.walk(&toks(bytes)).unwrap().state;
    let mut seen = BTreeSet::from([start]);
    let mut todo = vec![start];
    while let Some(s) = todo.pop() {
        for tok in t.mask(s).iter() {
            let (next, stop) = t.step(s, tok).unwrap();
            if stop && tok != EOS {
                return false;
            }
            if seen.insert(next) {
                todo.push(next);
            }
        }
    }
    true
}

#[test]
fn words_that_stop() {
    for w in [
        "ab ",
        "a\t",
        "a\n",
        "a\u{3000}",
        "\0 ",
        "\x01",
        "\x7f",
        "\x03",
        "a\u{85}",
        "a\u{2029}",
        "\x1c",
        "a\x1f",
    ] {
        let s = stops(w.as_bytes());
        assert_eq!(s.last(), Some(&true), "{w:?} stops on its last byte");
        assert!(
            !s[..s.len() - 1].contains(&true),
            "{w:?} stops only on its last byte"
        );
        assert!(
            Sequence::with_prefix(tables(), &toks(w.as_bytes())).is_err(),
            "{w:?} completes"
        );
    }
    // NEL written as bytes: a\xc2\x85.
    assert_eq!(stops(b"a\xc2\x85"), [false, false, true]);
}

#[test]
fn words_that_never_stop_by_the_rule() {
    // Leading whitespace: only EOS (or the length limit) can end the word.
    for w in [" ab ", "  ", " ", "\u{3000}a ", "\t"] {
        assert!(stops(w.as_bytes()).iter().all(|&s| !s), "{w:?} does not stop");
        assert!(
            only_eos_can_stop_after(w.as_bytes()),
            "after {w:?} only EOS stops"
        );
        assert_eq!(
            stops(&[w.as_bytes(), b"\x03"].concat()).last(),
            Some(&true),
            "{w:?} + EOS"
        );
    }
    // "a\x01": a control after a word character; it never matches again.
    assert_eq!(stops(b"a\x01"), [false, false]);
    assert!(only_eos_can_stop_after(b"a\x01"));
    assert!(
        !only_eos_can_stop_after(b"a"),
        "the check can fail: after \"a\" a space stops"
    );
    // "ab  " and "ab\r\n" never match as a whole: they already stopped at "ab " / "ab\r".
    let t = tables();
    for (w, at) in [(&b"ab  "[..], 2), (&b"ab\r\n"[..], 2)] {
        let walk = t.walk(&toks(w)).unwrap();
        assert!(!walk.stop && !walk.reachable, "{w:02x?}");
        assert!(t.walk(&toks(&w[..3])).unwrap().stop);
        let e = Sequence::with_prefix(t, &toks(w)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PrefixCompletesWord { at });
        let mut seq = Sequence::new(t);
        for &b in &w[..3] {
            seq.step(b.into()).unwrap();
        }
        assert!(seq.is_complete());
        assert_eq!(seq.step(w[3].into()).unwrap_err().kind(), ErrorKind::WordComplete);
        assert_eq!(seq.mask().count(), 0, "a complete word allows nothing");
    }
    // Not in S: zero width space (U+200B) and others are word characters.
    for w in ["a\u{200b}", "a\u{feff}", "a\u{180e}", "ab", "\0"] {
        assert!(stops(w.as_bytes()).iter().all(|&s| !s), "{w:?} does not stop");
    }
}

#[test]
fn eos_always_stops_at_a_boundary() {
    assert_eq!(stops(b"ab\x03"), [false, false, true]);
    assert_eq!(stops(b"\x03"), [true]);
    assert_eq!(stops(b" \x03"), [false, true]);
    assert_eq!(stops(b"a\x01\x03"), [false, false, true]);
    // Inside a character EOS is not allowed at all.
    let mut seq = Sequence::with_prefix(tables(), &[0xE3]).unwrap();
    assert!(!seq.mask().allows(EOS));
    let e = seq.step(EOS).unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::TokenNotAllowed {
            token: EOS,
            state: seq.state(),
            at: 1
        }
    );
    assert_eq!(seq.len(), 1, "nothing changed");
}

#[test]
fn sequence_errors_change_nothing() {
    let t = tables();
    let mut seq = Sequence::new(t);
    assert!(seq.is_empty() && seq.is_at_boundary() && !seq.is_complete());
    seq.step(b'a'.into()).unwrap();
    let before = (seq.state(), seq.len(), seq.is_complete());
    // `at` is the token's index in the word, for both kinds.
    let e = seq.step(256).unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::TokenOutOfRange {
            token: 256,
            vocab: 256,
            at: 1
        }
    );
    assert_eq!(
        seq.step(0xFF).unwrap_err().kind(),
        ErrorKind::TokenNotAllowed {
            token: 0xFF,
            state: before.0,
            at: 1
        }
    );
    assert_eq!(
        seq.step(0x80).unwrap_err().kind(),
        ErrorKind::TokenNotAllowed {
            token: 0x80,
            state: before.0,
            at: 1
        }
    );
    assert_eq!((seq.state(), seq.len(), seq.is_complete()), before);
    // with_prefix errors.
    assert_eq!(
        Sequence::with_prefix(t, &[b'a'.into(), 0xC0]).unwrap_err().kind(),
        ErrorKind::TokenNotAllowed {
            token: 0xC0,
            state: t.walk(&[b'a'.into()]).unwrap().state,
            at: 1
        }
    );
    assert_eq!(
        Sequence::with_prefix(t, &[b'a'.into(), b'b'.into(), 300])
            .unwrap_err()
            .kind(),
        ErrorKind::TokenOutOfRange {
            token: 300,
            vocab: 256,
            at: 2
        }
    );
    assert_eq!(
        Sequence::with_prefix(t, &[u32::from(b'a'); 17])
            .unwrap_err()
            .kind(),
        ErrorKind::PrefixTooLong { len: 17, max: 16 }
    );
    assert!(
        Sequence::with_prefix(t, &[u32::from(b'a'); 16]).is_ok(),
        "a prefix as long as the limit"
    );
    // Display text is for people: it names the numbers.
    let msg = Sequence::with_prefix(t, &[b'a'.into(), b'b'.into(), 300])
        .unwrap_err()
        .to_string();
    assert!(msg.contains("300") && msg.contains("256"), "{msg}");
}

#[test]
fn prefixes_may_end_inside_a_character() {
    // "a" + E3 | 80 80 = "a\u{3000}": stops on the last byte.
    let mut seq = Sequence::with_prefix(tables(), &[b'a'.into(), 0xE3]).unwrap();
    assert!(!seq.is_at_boundary());
    assert_eq!(
        seq.mask().iter().collect::<Vec<_>>(),
        (0x80..=0xBF).collect::<Vec<_>>()
    );
    assert!(!seq.step(0x80).unwrap());
    assert!(seq.step(0x80).unwrap());
    // E3 | 80 80 = "\u{3000}" alone: leading whitespace, no stop.
    let mut seq = Sequence::with_prefix(tables(), &[0xE3]).unwrap();
    assert!(!seq.step(0x80).unwrap() && !seq.step(0x80).unwrap());
    // The same through a batch row.
    let mut batch = WordBatch::new(tables(), 2).unwrap();
    batch.set_prefix(0, &[b'a'.into(), 0xE3]).unwrap();
    batch.set_prefix(1, &[0xE3]).unwrap();
    assert_eq!(batch.lengths(), [2, 1]);
    batch.advance(&mut [0x80, 0x80]).unwrap();
    batch.advance(&mut [0x80, 0x80]).unwrap();
    assert_eq!(batch.stopped(), [true, false]);
    assert_eq!(batch.finished(), [true, false]);
    assert_eq!(batch.running(), 1);
    // Restricted ranges: after ED only 80..9F (no surrogates); after F4 only 80..8F.
    for (lead, lo, hi) in [
        (0xED, 0x80, 0x9F),
        (0xE0, 0xA0, 0xBF),
        (0xF0, 0x90, 0xBF),
        (0xF4, 0x80, 0x8F),
    ] {
        let seq = Sequence::with_prefix(tables(), &[lead]).unwrap();
        assert_eq!(
            seq.mask().iter().collect::<Vec<_>>(),
            (lo..=hi).collect::<Vec<_>>(),
            "{lead:02x}"
        );
    }
}

/// Everything observable about a batch: states, lengths, stopped, finished, running, limit.
type Snapshot = (Vec<u16>, Vec<u32>, Vec<bool>, Vec<bool>, usize, u32);

/// Takes a [`Snapshot`], to check that an error changed nothing.
fn snapshot(b: &WordBatch<'_>) -> Snapshot {
    (
        b.states().to_vec(),
        b.lengths().to_vec(),
        b.stopped().to_vec(),
        b.finished().to_vec(),
        b.running(),
        b.max_word_len(),
    )
}

/// A batch of 4 rows: 0 = "a", 1 = "ab " (stopped), 2 = E3 (mid-character), 3 = "".
fn sample_batch() -> WordBatch<'static> {
    let mut b = WordBatch::new(tables(), 4).unwrap();
    b.set_prefix(0, &[]).unwrap();
    b.set_prefix(1, &toks(b"ab")).unwrap();
    b.advance(&mut [b'a'.into(), b' '.into(), 0xE3, b'x'.into()])
        .unwrap();
    b.reset_row(3).unwrap();
    assert_eq!(b.stopped(), [false, true, false, false]);
    assert_eq!(b.running(), 3);
    b
}

fn assert_unchanged(b: &WordBatch<'_>, before: &Snapshot, what: &str) {
    assert_eq!(&snapshot(b), before, "{what}: the batch changed");
}

#[test]
fn batch_errors_change_nothing() {
    let mut b = sample_batch();
    let before = snapshot(&b);
    let e_state = b.states()[2];

    // advance: a token past the vocabulary, a forbidden token (in a later row than a good
    // one, so a half-applied step would show), a tokens slice of the wrong length.
    for (mut tokens, kind) in [
        (
            vec![b'b'.into(), 0, 0x80, 256],
            ErrorKind::TokenOutOfRange {
                token: 256,
                vocab: 256,
                at: 3,
            },
        ),
        (
            vec![b'b'.into(), 0, 0x41, 0x41],
            ErrorKind::TokenNotAllowed {
                token: 0x41,
                state: e_state,
                at: 2,
            },
        ),
        (
            vec![0xFF, 0, 0x80, 0x41],
            ErrorKind::TokenNotAllowed {
                token: 0xFF,
                state: b.states()[0],
                at: 0,
            },
        ),
        (
            vec![b'b'.into(), 0, 0x80],
            ErrorKind::BatchSizeMismatch { expected: 4, got: 3 },
        ),
        (
            vec![b'b'.into(), 0, 0x80, 0x41, 0x41],
            ErrorKind::BatchSizeMismatch { expected: 4, got: 5 },
        ),
    ] {
        let copy = tokens.clone();
        let e: Error = b.advance(&mut tokens).unwrap_err();
        assert_eq!(e.kind(), kind);
        assert_eq!(tokens, copy, "{kind:?}: tokens rewritten");
        assert_unchanged(&b, &before, &format!("{kind:?}"));
    }

    // apply_mask: logits of the wrong length, a stride shorter than the vocabulary.
    for (len, stride, kind) in [
        (
            4 * 256 - 1,
            256,
            ErrorKind::LogitsSize {
                expected: 1024,
                got: 1023,
            },
        ),
        (
            4 * 256 + 1,
            256,
            ErrorKind::LogitsSize {
                expected: 1024,
                got: 1025,
            },
        ),
        (
            0,
            256,
            ErrorKind::LogitsSize {
                expected: 1024,
                got: 0,
            },
        ),
        (
            4 * 255,
            255,
            ErrorKind::StrideTooSmall {
                stride: 255,
                vocab: 256,
            },
        ),
        (
            4 * 300 - 1,
            300,
            ErrorKind::LogitsSize {
                expected: 1200,
                got: 1199,
            },
        ),
    ] {
        let mut logits = vec![1.5f32; len];
        let e = b.apply_mask_strided(&mut logits, stride).unwrap_err();
        assert_eq!(e.kind(), kind);
        assert!(logits.iter().all(|&x| x == 1.5), "{kind:?}: logits touched");
        assert_unchanged(&b, &before, &format!("{kind:?}"));
    }
    let mut logits = vec![0f64; 256];
    assert_eq!(
        b.apply_mask(&mut logits).unwrap_err().kind(),
        ErrorKind::LogitsSize {
            expected: 1024,
            got: 256
        }
    );

    // Rows out of range.
    let row = ErrorKind::RowOutOfRange { row: 4, batch: 4 };
    assert_eq!(b.mask(4).unwrap_err().kind(), row);
    assert_eq!(b.reset_row(4).unwrap_err().kind(), row);
    assert_eq!(b.set_prefix(4, &[]).unwrap_err().kind(), row);
    assert_eq!(
        b.set_prefix(usize::MAX, &[]).unwrap_err().kind(),
        ErrorKind::RowOutOfRange {
            row: usize::MAX,
            batch: 4
        }
    );
    assert_unchanged(&b, &before, "row out of range");

    // Prefixes: not valid UTF-8, past the vocabulary, longer than the limit, complete.
    for row in 0..4 {
        for (prefix, kind) in [
            (
                vec![b'a'.into(), 0xC0],
                ErrorKind::TokenNotAllowed {
                    token: 0xC0,
                    state: b.states()[0],
                    at: 1,
                },
            ),
            (
                vec![0xE3, 0x41],
                ErrorKind::TokenNotAllowed {
                    token: 0x41,
                    state: e_state,
                    at: 1,
                },
            ),
            (
                vec![0xED, 0xA0],
                ErrorKind::TokenNotAllowed {
                    token: 0xA0,
                    state: e_state_of(0xED),
                    at: 1,
                },
            ),
            (
                vec![b'a'.into(), 999],
                ErrorKind::TokenOutOfRange {
                    token: 999,
                    vocab: 256,
                    at: 1,
                },
            ),
            (
                vec![b'a'.into(); 17],
                ErrorKind::PrefixTooLong { len: 17, max: 16 },
            ),
            (toks(b"ab c"), ErrorKind::PrefixCompletesWord { at: 2 }),
            (toks(b"\x01"), ErrorKind::PrefixCompletesWord { at: 0 }),
            (toks(b"x\x03"), ErrorKind::PrefixCompletesWord { at: 1 }),
        ] {
            let e = b.set_prefix(row, &prefix).unwrap_err();
            assert_eq!(e.kind(), kind, "row {row}, prefix {prefix:?}");
            assert_unchanged(&b, &before, &format!("row {row}: {kind:?}"));
        }
    }

    // A zero word length.
    assert_eq!(
        b.set_max_word_len(0).unwrap_err().kind(),
        ErrorKind::ZeroWordLength
    );
    assert_unchanged(&b, &before, "zero word length");

    // An empty batch.
    assert_eq!(
        WordBatch::new(tables(), 0).unwrap_err().kind(),
        ErrorKind::EmptyBatch
    );
    assert_eq!(
        WordBatch::for_decoder::<Utf8Words>(0).unwrap_err().kind(),
        ErrorKind::EmptyBatch
    );
}

fn e_state_of(lead: u32) -> u16 {
    tables().walk(&[lead]).unwrap().state
}

#[test]
fn finished_rows_report_pad_and_keep_their_state() {
    let b = sample_batch();
    let stopped_state = b.states()[1];
    assert_eq!(b.mask(1).unwrap().count(), 0, "a finished row allows nothing");
    assert!(b.mask(0).unwrap().count() > 0);
    // Row 1 has stopped: its token is ignored, even one past the vocabulary or forbidden.
    for junk in [b'z'.into(), 0x80, 9999, u32::MAX] {
        let mut tokens = [b'b'.into(), junk, 0x80, b'y'.into()];
        let mut again = b.clone();
        again.advance(&mut tokens).unwrap();
        assert_eq!(
            tokens,
            [b'b'.into(), PAD, 0x80, b'y'.into()],
            "PAD for the finished row"
        );
        assert_eq!(again.states()[1], stopped_state);
        assert_eq!(again.lengths()[1], 3);
        assert_eq!(again.lengths()[0], 2);
    }
}

#[test]
fn the_word_length_limit_finishes_a_row_without_stopping_it() {
    let mut b = WordBatch::new(tables(), 2).unwrap();
    assert_eq!(b.max_word_len(), 16);
    b.set_max_word_len(3).unwrap();
    b.advance(&mut [b'a'.into(), b' '.into()]).unwrap();
    b.advance(&mut [b'b'.into(), b' '.into()]).unwrap();
    assert_eq!(b.running(), 2);
    assert_eq!(b.advance(&mut [b'c'.into(), b' '.into()]).unwrap(), 0);
    assert_eq!(b.finished(), [true, true]);
    assert_eq!(b.stopped(), [false, false], "the limit is not a stop");
    assert_eq!(b.lengths(), [3, 3]);
    assert!(b.is_done());
    // Finished at the limit and stopped on the same step: both.
    let mut b = WordBatch::new(tables(), 1).unwrap();
    b.set_max_word_len(2).unwrap();
    b.advance(&mut [b'a'.into()]).unwrap();
    b.advance(&mut [b' '.into()]).unwrap();
    assert_eq!((b.stopped(), b.finished()), (&[true][..], &[true][..]));
    // The default limit, 16 tokens.
    let mut b = WordBatch::new(tables(), 1).unwrap();
    for i in 0..16 {
        assert!(!b.is_done(), "after {i} tokens");
        b.advance(&mut [b'a'.into()]).unwrap();
    }
    assert!(b.is_done() && !b.stopped()[0]);
    // Lowering the limit below a running row's length finishes it; a prefix as long as the
    // limit leaves the row finished, not stopped.
    let mut b = WordBatch::new(tables(), 3).unwrap();
    b.set_prefix(0, &toks(b"abcd")).unwrap();
    b.set_prefix(1, &toks(b"ab")).unwrap();
    b.set_max_word_len(3).unwrap();
    assert_eq!(b.finished(), [true, false, false]);
    assert_eq!(b.running(), 2);
    b.set_prefix(2, &toks(b"xyz")).unwrap();
    assert_eq!(b.finished(), [true, false, true]);
    assert_eq!(b.stopped(), [false, false, false]);
    assert_eq!(b.running(), 1);
    assert_eq!(
        b.set_prefix(2, &toks(b"wxyz")).unwrap_err().kind(),
        ErrorKind::PrefixTooLong { len: 4, max: 3 }
    );
}

#[test]
fn reset_and_reset_row_start_new_words() {
    let mut b = sample_batch();
    // Row 1 (stopped) starts again.
    b.reset_row(1).unwrap();
    assert_eq!(b.stopped(), [false, false, false, false]);
    assert_eq!(b.finished(), [false, false, false, false]);
    assert_eq!(b.running(), 4);
    assert_eq!(b.lengths()[1], 0);
    assert_eq!(b.states()[1], tables().start());
    // A running row with a prefix, then reset: running count unchanged.
    b.set_prefix(0, &toks(b"xy")).unwrap();
    assert_eq!(b.running(), 4);
    b.reset_row(0).unwrap();
    assert_eq!((b.lengths()[0], b.states()[0]), (0, tables().start()));
    // Run the whole batch to the end, then reset everything.
    let mut steps = 0;
    while !b.is_done() {
        let mut tokens: Vec<u32> = (0..4)
            .map(|r| {
                if b.mask(r).unwrap().allows(0x80) {
                    0x80
                } else {
                    b' '.into()
                }
            })
            .collect();
        b.advance(&mut tokens).unwrap();
        steps += 1;
        assert!(steps <= 16);
    }
    assert_eq!(b.running(), 0);
    b.reset();
    assert_eq!(b.running(), 4);
    assert!(b.lengths().iter().all(|&l| l == 0));
    assert!(b.states().iter().all(|&s| s == tables().start()));
    assert!(b.stopped().iter().chain(b.finished()).all(|&f| !f));
    assert_eq!(b.max_word_len(), 16, "reset keeps the limit");
}

/// `restart_finished` does what `reset_row` on each finished row does, and only that, at
/// every step of a long run with rows finishing by stop, by EOS and by the length limit
/// (tokens drawn from each row's mask with a fixed seed).
#[test]
fn restart_finished_equals_reset_row_on_the_finished_rows() {
    let mut z = 7u64;
    let mut rand = move || {
        z ^= z << 13;
        z ^= z >> 7;
        z ^= z << 17;
        z
    };
    let mut fast = WordBatch::new(tables(), 7).unwrap();
    fast.set_max_word_len(6).unwrap();
    let mut slow = fast.clone();
    let (mut stops, mut limits) = (0, 0);
    for step in 0..2000 {
        let mut tokens: Vec<u32> = (0..7)
            .map(|r| {
                let allowed: Vec<u32> = fast.mask(r).unwrap().iter().collect();
                // Favour spaces, so that words stop often.
                if rand() % 4 == 0 && allowed.contains(&u32::from(b' ')) {
                    u32::from(b' ')
                } else {
                    allowed[rand() as usize % allowed.len()]
                }
            })
            .collect();
        let mut same = tokens.clone();
        fast.advance(&mut tokens).unwrap();
        slow.advance(&mut same).unwrap();
        assert_eq!(tokens, same);
        let finished: Vec<usize> = (0..7).filter(|&r| slow.finished()[r]).collect();
        stops += finished.iter().filter(|&&r| slow.stopped()[r]).count();
        limits += finished.iter().filter(|&&r| !slow.stopped()[r]).count();
        for &r in &finished {
            slow.reset_row(r).unwrap();
        }
        assert_eq!(fast.restart_finished(), finished.len(), "step {step}");
        assert_eq!(snapshot(&fast), snapshot(&slow), "step {step}");
        assert_eq!(fast.running(), 7);
    }
    assert!(stops > 100 && limits > 100, "stops {stops}, limits {limits}");
}

/// The same batch as masks over every logit type.
trait TestLogit: Logit + PartialEq + std::fmt::Debug {
    fn from_f32(x: f32) -> Self;
    fn is_neg_inf(self) -> bool;
}
impl TestLogit for f32 {
    fn from_f32(x: f32) -> Self {
        x
    }
    fn is_neg_inf(self) -> bool {
        self == f32::NEG_INFINITY
    }
}
impl TestLogit for f64 {
    fn from_f32(x: f32) -> Self {
        x.into()
    }
    fn is_neg_inf(self) -> bool {
        self == f64::NEG_INFINITY
    }
}
impl TestLogit for f16 {
    fn from_f32(x: f32) -> Self {
        f16::from_f32(x)
    }
    fn is_neg_inf(self) -> bool {
        self == f16::NEG_INFINITY
    }
}
impl TestLogit for bf16 {
    fn from_f32(x: f32) -> Self {
        bf16::from_f32(x)
    }
    fn is_neg_inf(self) -> bool {
        self == bf16::NEG_INFINITY
    }
}

/// Rows: "x", "ab", E3, F0 9F, "a " (finished), ED, "" — after one `advance`.
fn mixed_batch() -> WordBatch<'static> {
    let mut b = WordBatch::new(tables(), 7).unwrap();
    b.set_prefix(1, &toks(b"a")).unwrap();
    b.set_prefix(3, &[0xF0]).unwrap();
    b.set_prefix(4, &toks(b"a")).unwrap();
    b.advance(&mut [
        b'x'.into(),
        b'b'.into(),
        0xE3,
        0x9F,
        b' '.into(),
        0xED,
        b'q'.into(),
    ])
    .unwrap();
    b.reset_row(6).unwrap();
    assert_eq!(b.finished(), [false, false, false, false, true, false, false]);
    b
}

/// [`forbidden`] for f32, f64, f16 and bf16: each forbids exactly `expected`.
fn forbidden_in_every_type(b: &WordBatch<'_>, stride: usize, short: bool, expected: &[Vec<u32>]) {
    assert_eq!(
        forbidden::<f32>(b, stride, short),
        expected,
        "f32, stride {stride}"
    );
    assert_eq!(
        forbidden::<f64>(b, stride, short),
        expected,
        "f64, stride {stride}"
    );
    assert_eq!(
        forbidden::<f16>(b, stride, short),
        expected,
        "f16, stride {stride}"
    );
    assert_eq!(
        forbidden::<bf16>(b, stride, short),
        expected,
        "bf16, stride {stride}"
    );
}

/// Applies the batch's mask to logits of type `L` with `stride` (and a short last row if
/// `short`); checks padding columns, finished rows and allowed positions are untouched; returns
/// the forbidden positions of each row.
fn forbidden<L: TestLogit>(b: &WordBatch<'_>, stride: usize, short: bool) -> Vec<Vec<u32>> {
    let (rows, v) = (b.batch_size(), b.tables().vocab_size());
    let len = if short {
        (rows - 1) * stride + v
    } else {
        rows * stride
    };
    let value = |i: usize| L::from_f32((i % 13) as f32 - 6.0);
    let mut logits: Vec<L> = (0..len).map(value).collect();
    b.apply_mask_strided(&mut logits, stride).unwrap();
    let mut out = Vec::new();
    for row in 0..rows {
        let mask = b.mask(row).unwrap();
        let mut row_forbidden = Vec::new();
        for col in 0..stride {
            let i = row * stride + col;
            if i >= len {
                break;
            }
            let x = logits[i];
            if col >= v {
                assert_eq!(x, value(i), "padding column {col} of row {row} touched");
            } else if b.finished()[row] {
                assert_eq!(x, value(i), "finished row {row} touched at {col}");
            } else if mask.allows(col as u32) {
                assert_eq!(x, value(i), "row {row}: allowed token {col} changed");
            } else {
                assert!(x.is_neg_inf(), "row {row}: forbidden token {col} is {x:?}");
                row_forbidden.push(col as u32);
            }
        }
        out.push(row_forbidden);
    }
    out
}

#[test]
fn the_mask_forbids_the_same_tokens_for_every_logit_type() {
    let b = mixed_batch();
    let expected: Vec<Vec<u32>> = (0..b.batch_size())
        .map(|r| {
            if b.finished()[r] {
                Vec::new()
            } else {
                (0..256).filter(|&t| !b.mask(r).unwrap().allows(t)).collect()
            }
        })
        .collect();
    // Sanity: the rows are different and each forbids something.
    assert_eq!(
        expected[0].len(),
        256 - (128 + 51),
        "at a boundary: 00..7F and C2..F4 allowed"
    );
    assert_eq!(expected[2].len(), 256 - 64, "after E3: 80..BF");
    assert_eq!(expected[3].len(), 256 - 64, "after F0 9F: 80..BF");
    assert_eq!(expected[5].len(), 256 - 32, "after ED: 80..9F");
    assert!(expected[4].is_empty(), "finished row");
    for (stride, short) in [(256, false), (300, false), (300, true), (257, true), (512, false)] {
        forbidden_in_every_type(&b, stride, short, &expected);
    }
    // apply_mask is apply_mask_strided with stride V.
    let mut a = vec![0.25f32; 7 * 256];
    let mut s = a.clone();
    b.apply_mask(&mut a).unwrap();
    b.apply_mask_strided(&mut s, 256).unwrap();
    assert_eq!(a, s);
    // Mask::apply on one row agrees.
    let mut one = vec![0.25f32; 256];
    b.mask(2).unwrap().apply(&mut one).unwrap();
    assert_eq!(one, a[2 * 256..3 * 256]);
    assert_eq!(
        b.mask(2).unwrap().apply(&mut [0f32; 255]).unwrap_err().kind(),
        ErrorKind::LogitsSize {
            expected: 256,
            got: 255
        }
    );
}

#[test]
fn a_whole_generation_loop() {
    // Three rows generate "hi ", "\u{3000}x\x03" and "ok\u{85}" while masking f16 logits.
    let words: [&[u8]; 3] = [b"hi ", "\u{3000}x\x03".as_bytes(), "ok\u{85}".as_bytes()];
    let mut b = WordBatch::for_decoder::<Utf8Words>(3).unwrap();
    let mut logits = vec![f16::ZERO; 3 * 256];
    let mut emitted = vec![Vec::new(); 3];
    let mut step = 0;
    while !b.is_done() {
        b.apply_mask(&mut logits).unwrap();
        // Finished rows get junk: advance overwrites it with PAD.
        let mut tokens: Vec<u32> = words
            .iter()
            .map(|w| w.get(step).map_or(0xFF, |&x| x.into()))
            .collect();
        for (r, &t) in tokens.iter().enumerate() {
            if !b.finished()[r] {
                assert!(
                    !logits[r * 256 + t as usize].is_neg_inf(),
                    "row {r}: sampled a masked token"
                );
            }
        }
        b.advance(&mut tokens).unwrap();
        for (r, &t) in tokens.iter().enumerate() {
            emitted[r].push(t);
        }
        step += 1;
        logits.fill(f16::ZERO);
    }
    assert_eq!(b.stopped(), [true, true, true]);
    assert_eq!(b.lengths(), [3, 5, 4]);
    // Rows padded with PAD once finished, as Hugging Face generate does.
    assert_eq!(emitted[0], [b'h'.into(), b'i'.into(), b' '.into(), PAD, PAD]);
    assert_eq!(emitted[1], toks("\u{3000}x\x03".as_bytes()));
    assert_eq!(emitted[2], [b'o'.into(), b'k'.into(), 0xC2, 0x85, PAD]);
    // A stop is terminal: a stopped row is in the dead state.
    assert_eq!(b.states()[0], DEAD);
}

/// A vocabulary of 300 tokens (not a multiple of 64, so the last mask word is partial): the
/// 256 bytes, a special EOS (allowed at character boundaries only) and 43 other special tokens
/// (never allowed).
#[test]
fn the_mask_of_a_vocabulary_with_a_partial_last_word() {
    use kernels_gen::{DecoderSpec, Token, Vocabulary};
    let mut tokens: Vec<Token> = (0..=255u8).map(|b| Token::Bytes(vec![b])).collect();
    tokens.extend((0..44).map(|i| Token::Special(format!("<extra_{i}>"))));
    let vocab = Vocabulary::new("test: 256 bytes + 44 specials", tokens, Some(256), 257).unwrap();
    let blob = kernels_gen::generate(&DecoderSpec::new(vocab)).unwrap().to_blob();
    let t = Tables::from_bytes(&blob).unwrap();
    assert_eq!(t.vocab_size(), 300);
    let mut b = WordBatch::new(t, 4).unwrap();
    b.set_prefix(1, &[0xE3]).unwrap();
    b.set_prefix(2, &toks(b"ab")).unwrap();
    b.set_prefix(3, &toks(b"a")).unwrap();
    b.advance(&mut [u32::from(b'x'), 0x80, 256, u32::from(b' ')])
        .unwrap();
    assert_eq!(b.stopped(), [false, false, true, true], "EOS and \"a \" stop");
    b.reset_row(3).unwrap();
    let expected: Vec<Vec<u32>> = (0..4)
        .map(|r| {
            if b.finished()[r] {
                Vec::new()
            } else {
                (0..300).filter(|&x| !b.mask(r).unwrap().allows(x)).collect()
            }
        })
        .collect();
    // At a boundary: bytes 00..7F, C2..F4 and EOS; inside a character: 80..BF.
    assert_eq!(expected[0].len(), 300 - (128 + 51 + 1));
    assert_eq!(expected[1].len(), 300 - 64);
    assert!(expected[0].contains(&299) && !expected[0].contains(&256));
    for (stride, short) in [(300, false), (320, false), (320, true), (301, true)] {
        forbidden_in_every_type(&b, stride, short, &expected);
    }
}
