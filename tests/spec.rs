//! `Utf8Words::TABLES` implements SEMANTICS.md: checked against an independent statement of
//! the spec (`common`: std's UTF-8 decoder, the 29 whitespace code points and the control set
//! written out, "exactly one control, or W+ then exactly one S", EOS stops, the strict
//! valid-next-byte mask)
//!
//! - on every byte string of length 0 to 3 (16.8 million),
//! - on millions of random longer words, at every prefix,
//! - on the encoding of every Unicode scalar value from every character-boundary state,
//!
//! comparing the mask, the stop flag and reachability (could welt have generated it).
//!
//! For any sequence the automaton is expected to do what `Tables::walk` documents: on a valid
//! UTF-8 prefix on which the spec did not stop before the last byte, the stop flag is the
//! spec's when the last byte completes a character (false inside one), and the mask is the
//! valid next bytes, or empty after a stop (a stop is terminal: the dead state); on anything
//! else (not UTF-8, or bytes after a stop) it is in the dead state. On sequences welt can
//! generate this is exactly SEMANTICS.md's stop flag (checked too). Reachability also counts
//! WeLT's word length limit.

use crate::common::{has, is_control, is_space, word_complete, Spec, SplitMix64, ValidNext, PYTHON_SPACES};
use welt_runtime::{Decoder, Tables, Utf8Words, DEAD};

/// WeLT's `max_word_length` (SEMANTICS.md: 16 bytes by default): the default decoder's limit.
const MAX_WORD_LEN: usize = 16;

fn tables() -> Tables<'static> {
    Utf8Words::TABLES
}

/// What welt says about one sequence, computed incrementally from its parent's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Welt {
    state: u16,
    stop: bool,
    reachable: bool,
    len: usize,
}

impl Welt {
    fn start(t: &Tables<'_>) -> Welt {
        Welt {
            state: t.start(),
            stop: false,
            reachable: true,
            len: 0,
        }
    }
    /// SEMANTICS.md's "welt can generate it": each byte allowed by welt's own mask at its
    /// step, no stop before the last byte, and at most the word length limit of bytes.
    fn child(self, t: &Tables<'_>, b: u8) -> Welt {
        let allowed = t.mask(self.state).allows(u32::from(b));
        let (state, stop) = t
            .step(self.state, u32::from(b))
            .expect("byte tokens are in range");
        Welt {
            state,
            stop,
            reachable: self.reachable && !self.stop && allowed && self.len < MAX_WORD_LEN,
            len: self.len + 1,
        }
    }
}

/// What the spec says, computed from scratch, plus "the spec stopped on a proper prefix"
/// carried down from the parent.
#[derive(Clone, Copy, Debug)]
struct Expected {
    spec: Spec,
    stopped_before: bool,
    len: usize,
}

impl Expected {
    fn of(bytes: &[u8], parent: Option<Expected>) -> Expected {
        let stopped_before = parent.is_some_and(|p| p.stopped_before || p.stop());
        Expected {
            spec: Spec::of(bytes),
            stopped_before,
            len: bytes.len(),
        }
    }
    fn stop(&self) -> bool {
        matches!(self.spec, Spec::Valid { stop: true, .. })
    }
    fn reachable(&self) -> bool {
        matches!(self.spec, Spec::Valid { .. }) && !self.stopped_before && self.len <= MAX_WORD_LEN
    }
}

/// Compares welt with the spec on one sequence.
fn check(t: &Tables<'_>, bytes: &[u8], w: Welt, e: Expected, valid_next: &mut ValidNext) {
    assert_eq!(w.reachable, e.reachable(), "reachable after {bytes:02x?}");
    let mask = t.mask(w.state);
    match e.spec {
        Spec::Invalid => {
            assert_eq!(w.state, DEAD, "{bytes:02x?} is not UTF-8: dead state");
            assert!(!w.stop, "{bytes:02x?}: no stop in the dead state");
            assert_eq!(mask.count(), 0, "{bytes:02x?}: empty mask in the dead state");
        }
        Spec::Valid { .. } if e.stopped_before => {
            // A stop is terminal: whatever follows it is in the dead state.
            assert_eq!(w.state, DEAD, "{bytes:02x?} goes on after a stop: dead state");
            assert!(!w.stop, "{bytes:02x?}: no stop in the dead state");
            assert_eq!(mask.count(), 0, "{bytes:02x?}: empty mask after a stop");
        }
        Spec::Valid { complete, stop } => {
            let expected = if complete == bytes.len() { stop } else { false };
            assert_eq!(w.stop, expected, "stop after {bytes:02x?}");
            if w.reachable {
                // On generable sequences that is SEMANTICS.md's stop flag itself.
                assert_eq!(w.stop, stop, "stop after {bytes:02x?} (generable)");
            }
            if w.stop {
                assert_eq!(w.state, DEAD, "{bytes:02x?} stops: a stop is terminal");
                assert_eq!(mask.count(), 0, "{bytes:02x?}: empty mask after a stop");
                return;
            }
            assert_ne!(w.state, DEAD, "{bytes:02x?} is a UTF-8 prefix");
            let next = valid_next.after_tail(&bytes[complete..]);
            assert_eq!(mask.as_bytes(), &next[..], "mask after {bytes:02x?}");
            assert_eq!(
                t.is_boundary(w.state),
                complete == bytes.len(),
                "boundary after {bytes:02x?}"
            );
        }
    }
}

/// The sets of `common` are the ones SEMANTICS.md lists; S is Unicode's White_Space plus
/// U+001C–001F (Python also counts bidi class B and S), a second derivation of the same set.
#[test]
fn character_sets_are_as_specified() {
    let spaces: Vec<u32> = (0..=0x10FFFF)
        .filter_map(char::from_u32)
        .filter(|&c| is_space(c))
        .map(u32::from)
        .collect();
    assert_eq!(spaces, PYTHON_SPACES);
    let white_space: Vec<u32> = (0..=0x10FFFF)
        .filter_map(char::from_u32)
        .filter(|&c| c.is_whitespace() || ('\u{1C}'..='\u{1F}').contains(&c))
        .map(u32::from)
        .collect();
    assert_eq!(white_space, PYTHON_SPACES);
    let controls: Vec<u32> = (0..=0x10FFFF)
        .filter_map(char::from_u32)
        .filter(|&c| is_control(c))
        .map(u32::from)
        .collect();
    let expected: Vec<u32> = (0x01..=0x08).chain(0x0E..=0x1F).chain([0x7F]).collect();
    assert_eq!(controls, expected);
    // SEMANTICS.md's consequences, on the rule alone.
    for (t, stop) in [
        ("ab ", true),
        ("a\t", true),
        ("a\n", true),
        ("a\u{3000}", true),
        ("\0 ", true),
        (" ab ", false),
        ("  ", false),
        ("ab  ", false),
        ("ab\r\n", false),
        ("\x01", true),
        ("\x7f", true),
        ("a\x01", false),
        ("\x03", true),
        ("ab\x03", false),
        ("a\u{85}", true),
        ("a\u{200b}", false),
        ("\x1c", true),
        ("a\x1c", true),
        ("", false),
        ("a", false),
        (" ", false),
    ] {
        assert_eq!(word_complete(t), stop, "{t:?}");
    }
}

/// Every string of length 0..=3 whose first byte is in `firsts`, by depth-first search
/// carrying welt's state down. A string of length 3 also checks its mask, i.e. whether each
/// possible 4th byte is allowed: together the parts cover every 4-byte sequence whose first
/// three bytes are a valid prefix, and rejection is prefix-closed (the dead state absorbs
/// everything; `invariants.rs` and `Tables::from_bytes` check that), so no longer invalid
/// sequence can be accepted either.
fn exhaustive(firsts: impl Iterator<Item = u8>) -> usize {
    let t = tables();
    let mut vn = ValidNext::default();
    let root = Welt::start(&t);
    let root_e = Expected::of(&[], None);
    check(&t, &[], root, root_e, &mut vn);
    let mut n = 1;
    for a in firsts {
        let wa = root.child(&t, a);
        let ea = Expected::of(&[a], Some(root_e));
        check(&t, &[a], wa, ea, &mut vn);
        assert_eq!(t.walk(&[a.into()]).unwrap(), walk_of(wa));
        for b in 0..=255u8 {
            let wb = wa.child(&t, b);
            let eb = Expected::of(&[a, b], Some(ea));
            check(&t, &[a, b], wb, eb, &mut vn);
            assert_eq!(
                t.walk(&[a.into(), b.into()]).unwrap(),
                walk_of(wb),
                "{a:02x} {b:02x}"
            );
            for c in 0..=255u8 {
                let wc = wb.child(&t, c);
                let ec = Expected::of(&[a, b, c], Some(eb));
                check(&t, &[a, b, c], wc, ec, &mut vn);
            }
            n += 256;
        }
        n += 257;
    }
    n
}

fn walk_of(w: Welt) -> welt_runtime::Walk {
    welt_runtime::Walk {
        state: w.state,
        stop: w.stop,
        reachable: w.reachable,
    }
}

/// The length limit counts in reachability: a word of `MAX_WORD_LEN` bytes is generable, one
/// byte more is not, and the automaton itself does not know the limit.
#[test]
fn reachability_counts_the_word_length_limit() {
    let t = tables();
    assert_eq!(usize::from(t.max_word_len()), MAX_WORD_LEN);
    let word = vec![u32::from(b'a'); MAX_WORD_LEN + 1];
    let at_limit = t.walk(&word[..MAX_WORD_LEN]).unwrap();
    let past = t.walk(&word).unwrap();
    assert!(at_limit.reachable && !past.reachable);
    assert_eq!(at_limit.state, past.state, "`a` loops in the word phase");
}

// Four parts so that the test harness runs them in parallel.
#[test]
fn exhaustive_up_to_3_bytes_part_0() {
    assert_eq!(
        exhaustive((0..=255).filter(|b| b % 4 == 0)),
        1 + 64 * (1 + 256 + 256 * 256)
    );
}
#[test]
fn exhaustive_up_to_3_bytes_part_1() {
    exhaustive((0..=255).filter(|b| b % 4 == 1));
}
#[test]
fn exhaustive_up_to_3_bytes_part_2() {
    exhaustive((0..=255).filter(|b| b % 4 == 2));
}
#[test]
fn exhaustive_up_to_3_bytes_part_3() {
    exhaustive((0..=255).filter(|b| b % 4 == 3));
}

/// Draws a word biased towards what matters: valid UTF-8 made of letters, scripts, spaces
/// (ASCII and multi-byte), controls, NUL and EOS, with some invalid bytes and cut characters.
fn random_word(rng: &mut SplitMix64, out: &mut Vec<u8>) {
    const WORDS: &[char] = &[
        'a',
        'b',
        'z',
        'Q',
        '7',
        '.',
        'é',
        'ß',
        'ж',
        'α',
        'ש',
        'ع',
        'क',
        '中',
        '語',
        'ㄱ',
        '😀',
        '𝄞',
        '\u{10FFFF}',
        '\u{FEFF}',
        '\u{200B}',
        '\u{D7FF}',
        '\u{E000}',
        '\u{FFFD}',
    ];
    const SPECIALS: &[u8] = &[
        0x00, 0x03, 0x03, 0x01, 0x02, 0x7F, 0x1C, 0x1F, b' ', b' ', b'\t', b'\n', b'\r',
    ];
    out.clear();
    let len = 1 + rng.index(24);
    let mut buf = [0u8; 4];
    while out.len() < len {
        match rng.index(100) {
            0..=34 => out.push(b'a' + rng.index(26) as u8),
            35..=49 => out.extend_from_slice(rng.pick(WORDS).encode_utf8(&mut buf).as_bytes()),
            50..=64 => out.push(*rng.pick(SPECIALS)),
            65..=74 => {
                let c = char::from_u32(*rng.pick(&PYTHON_SPACES)).unwrap();
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
            75..=84 => {
                // Any scalar value, weighted towards short encodings.
                let limit = [0x80, 0x800, 0x10000, 0x110000][rng.index(4)];
                let c = loop {
                    if let Some(c) = char::from_u32(rng.index(limit) as u32) {
                        break c;
                    }
                };
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
            85..=92 => {
                // A cut character: a proper prefix of a multi-byte encoding.
                let c = char::from_u32(0x80 + rng.index(0x10FF80) as u32).unwrap_or('\u{3000}');
                let e = c.encode_utf8(&mut buf).as_bytes();
                out.extend_from_slice(&e[..1 + rng.index(e.len() - 1)]);
            }
            _ => out.push(rng.next_u64() as u8),
        }
    }
    out.truncate(len);
}

fn random_words(seed: u64, count: usize) {
    let t = tables();
    let mut vn = ValidNext::default();
    let mut rng = SplitMix64::new(seed);
    let mut word = Vec::new();
    let (mut reachable_words, mut stops) = (0, 0);
    for _ in 0..count {
        random_word(&mut rng, &mut word);
        let mut w = Welt::start(&t);
        let mut e = Expected::of(&[], None);
        for n in 1..=word.len() {
            w = w.child(&t, word[n - 1]);
            e = Expected::of(&word[..n], Some(e));
            check(&t, &word[..n], w, e, &mut vn);
            if w.reachable && w.stop {
                stops += 1;
            }
        }
        reachable_words += usize::from(w.reachable);
        let tokens: Vec<u32> = word.iter().map(|&b| b.into()).collect();
        assert_eq!(t.walk(&tokens).unwrap(), walk_of(w), "walk of {word:02x?}");
    }
    // The generator must produce interesting words, or the test proves little.
    assert!(
        reachable_words > count / 5,
        "{reachable_words} generable words of {count}"
    );
    assert!(stops > count / 5, "{stops} generable stops in {count} words");
}

#[test]
fn random_words_part_0() {
    random_words(0x5EED_0001, 1_000_000);
}
#[test]
fn random_words_part_1() {
    random_words(0x5EED_0002, 1_000_000);
}

/// Words before the character under test; their states cover every boundary state.
const CONTEXTS: &[&str] = &["", "a", "ab", " ", "a\x01", "\u{3000}", "x\u{200B}", "\0"];

/// Complete words: after each, a stop is terminal and nothing is allowed.
const STOPPED: &[&str] = &["ab ", "\x01", "ab\x03", "\x03", "a\u{3000}", "a\u{85}"];

#[test]
fn nothing_follows_a_complete_word() {
    let t = tables();
    for w in STOPPED {
        let tokens: Vec<u32> = w.bytes().map(u32::from).collect();
        let walk = t.walk(&tokens).unwrap();
        assert!(walk.reachable && walk.stop, "{w:?} stops");
        assert_eq!(walk.state, DEAD, "{w:?}: a stop is terminal");
        assert_eq!(
            t.mask(walk.state).count(),
            0,
            "{w:?}: nothing is allowed after it"
        );
    }
}

/// The encoding of every scalar value is accepted from every boundary state, stopping exactly
/// where the spec says (only on its last byte); after every proper prefix of it, the mask is
/// exactly the valid next bytes, so every invalid continuation is rejected.
#[test]
fn every_scalar_value_from_every_boundary_state() {
    let t = tables();
    let mut vn = ValidNext::default();
    let mut boundary_states = std::collections::BTreeSet::new();
    let mut buf = [0u8; 4];
    let mut text = String::new();
    for ctx in CONTEXTS {
        let ctx_tokens: Vec<u32> = ctx.bytes().map(u32::from).collect();
        let start = t.walk(&ctx_tokens).unwrap();
        assert!(t.is_boundary(start.state), "{ctx:?} ends at a boundary");
        boundary_states.insert(start.state);
        assert!(
            (0..=ctx.len()).all(|n| !crate::common::reference_stop(&ctx.as_bytes()[..n])),
            "{ctx:?} does not stop"
        );
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            let enc = c.encode_utf8(&mut buf).as_bytes();
            let mut s = start.state;
            for (i, &b) in enc.iter().enumerate() {
                assert!(t.mask(s).allows(b.into()), "{ctx:?} + {c:?}: byte {i} rejected");
                let (next, stop) = t.step(s, b.into()).unwrap();
                if i + 1 < enc.len() {
                    assert!(!stop, "{ctx:?} + {c:?}: stop inside the character");
                    assert!(!t.is_boundary(next));
                } else {
                    text.clear();
                    text.push_str(ctx);
                    text.push(c);
                    let expected = c == '\x03' || word_complete(&text);
                    assert_eq!(stop, expected, "{ctx:?} + {c:?}: stop");
                    // A stop is terminal (the dead state); otherwise the character is complete.
                    assert_eq!(t.is_boundary(next), !stop, "{ctx:?} + {c:?}: boundary");
                }
                s = next;
            }
        }
        // Rejection: after every valid proper prefix of a character (lead byte and 0 to 2
        // continuation bytes), the mask is exactly the valid next bytes.
        let full = vn.after_tail(&[]);
        assert_eq!(
            t.mask(start.state).as_bytes(),
            &full[..],
            "{ctx:?}: boundary mask"
        );
        for a in (0..=255u8).filter(|&a| has(&full, a) && a >= 0x80) {
            let sa = t.step(start.state, a.into()).unwrap().0;
            let na = vn.after_tail(&[a]);
            assert_eq!(t.mask(sa).as_bytes(), &na[..], "{ctx:?} + {a:02x}");
            for b in
                (0..=255u8).filter(|&b| has(&na, b) && crate::common::valid_prefix_len(&[a, b]) == Some(0))
            {
                let sb = t.step(sa, b.into()).unwrap().0;
                let nb = vn.after_tail(&[a, b]);
                assert_eq!(t.mask(sb).as_bytes(), &nb[..], "{ctx:?} + {a:02x} {b:02x}");
                for c in (0..=255u8)
                    .filter(|&c| has(&nb, c) && crate::common::valid_prefix_len(&[a, b, c]) == Some(0))
                {
                    let sc = t.step(sb, c.into()).unwrap().0;
                    let nc = vn.after_tail(&[a, b, c]);
                    assert_eq!(
                        t.mask(sc).as_bytes(),
                        &nc[..],
                        "{ctx:?} + {a:02x} {b:02x} {c:02x}"
                    );
                }
            }
        }
    }
    let all: std::collections::BTreeSet<u16> =
        (1..t.num_states() as u16).filter(|&s| t.is_boundary(s)).collect();
    assert_eq!(boundary_states, all, "the contexts reach every boundary state");
}
