//! Structural invariants of the generated decoder, checked on the tables the runtime uses:
//! every live state allows a token; a stop is terminal (every stopping entry, in the default
//! decoder and in every tokenizer fixture's, leads to the dead state); EOS is allowed at every
//! character boundary; the automaton
//! is minimal (an independent table-filling check) and every state is reachable; generation
//! is deterministic; the macro, the build script and `kernels_gen::generate` give the same
//! bytes; a corrupted blob is an `Err` from `Tables::from_bytes`, never a panic; and the sizes
//! are pinned so that growth shows up in review.

use std::collections::VecDeque;
use std::panic::catch_unwind;

use crate::common::SplitMix64;
use kernels_gen::DecoderSpec;
use welt_format::{NEXT_STATE, STOP_BIT};
use welt_runtime::{Decoder, ErrorKind, Tables, Utf8Words, DEAD};

const EOS: u32 = 0x03;

fn tables() -> Tables<'static> {
    Utf8Words::TABLES
}

fn states(t: &Tables<'_>) -> std::ops::Range<u16> {
    0..t.num_states() as u16
}

fn step(t: &Tables<'_>, s: u16, tok: u32) -> (u16, bool) {
    t.step(s, tok).expect("in range")
}

/// Breadth-first search from the start over allowed tokens that do not stop (a stop ends the
/// word in the dead state): a shortest token path to every state found.
fn shortest_paths(t: &Tables<'_>) -> Vec<Option<Vec<u8>>> {
    let mut path: Vec<Option<Vec<u8>>> = vec![None; t.num_states()];
    path[t.start() as usize] = Some(Vec::new());
    let mut queue = VecDeque::from([t.start()]);
    while let Some(s) = queue.pop_front() {
        for tok in t.mask(s).iter() {
            let (next, stop) = step(t, s, tok);
            if !stop && path[next as usize].is_none() {
                let mut p = path[s as usize].clone().unwrap();
                p.push(tok as u8);
                path[next as usize] = Some(p);
                queue.push_back(next);
            }
        }
    }
    path
}

#[test]
fn the_decoder_is_welts_byte_tokenizer() {
    let t = tables();
    assert_eq!(t.vocab_size(), 256);
    assert_eq!(t.eos(), Some(EOS));
    assert_eq!(t.pad(), 0);
    assert_eq!(t.max_word_len(), 16, "WeLT's default max_word_length");
    assert_eq!(t.start(), 1);
}

#[test]
fn every_live_state_allows_a_token_and_the_dead_state_none() {
    let t = tables();
    for s in states(&t) {
        let mask = t.mask(s);
        // Allowed: the entry leads to a live state, or it stops (and then leads to DEAD).
        let allowed: Vec<u32> = (0..256)
            .filter(|&tok| step(&t, s, tok) != (DEAD, false))
            .collect();
        assert_eq!(
            mask.iter().collect::<Vec<_>>(),
            allowed,
            "state {s}: mask = tokens whose entry is not (DEAD, no stop)"
        );
        assert_eq!(mask.count(), allowed.len());
        if s == DEAD {
            assert_eq!(mask.count(), 0, "the dead state allows nothing");
            assert!(
                (0..256).all(|tok| step(&t, DEAD, tok) == (DEAD, false)),
                "the dead state absorbs"
            );
        } else {
            assert!(mask.count() > 0, "live state {s} allows no token");
        }
    }
    // States past the table and tokens past the vocabulary are errors or empty, not panics.
    assert_eq!(t.mask(t.num_states() as u16).count(), 0);
    assert!(t.step(t.num_states() as u16, 0).is_err());
    assert!(matches!(
        t.step(1, 256).unwrap_err().kind(),
        ErrorKind::TokenOutOfRange { token: 256, .. }
    ));
}

/// Each state's boundary flag agrees with std on a path to it, on every edge (so on every
/// path, inductively), and EOS is allowed exactly where a character is complete.
#[test]
fn eos_is_allowed_at_every_character_boundary() {
    let t = tables();
    let paths = shortest_paths(&t);
    let mut boundaries = 0;
    for s in 1..t.num_states() as u16 {
        let p = paths[s as usize].as_ref().expect("reachable");
        let complete = std::str::from_utf8(p).is_ok();
        assert_eq!(t.is_boundary(s), complete, "state {s} (path {p:02x?})");
        assert_eq!(
            t.mask(s).allows(EOS),
            complete,
            "EOS in state {s} (path {p:02x?})"
        );
        for tok in t.mask(s).iter() {
            let mut q = p.clone();
            q.push(tok as u8);
            let (next, stop) = step(&t, s, tok);
            if stop {
                // Nothing follows a stop (checked in `a_stop_is_terminal_in_every_decoder`).
                continue;
            }
            assert_eq!(
                t.is_boundary(next),
                std::str::from_utf8(&q).is_ok(),
                "edge {s} --{tok:02x}--> {next}"
            );
        }
        boundaries += usize::from(complete);
    }
    assert!(!t.is_boundary(DEAD));
    assert!(
        boundaries >= 3,
        "empty, in a word, and after the word can no longer match"
    );
}

/// Live states that no token path from the start reaches.
fn unreachable_states(t: &Tables<'_>) -> Vec<usize> {
    let paths = shortest_paths(t);
    (1..t.num_states()).filter(|&s| paths[s].is_none()).collect()
}

#[test]
fn every_state_is_reachable_from_the_start() {
    let t = tables();
    assert_eq!(unreachable_states(&t), Vec::<usize>::new());
    // The dead state only through a forbidden token or a stop.
    assert!(shortest_paths(&t)[DEAD as usize].is_none());
    assert_eq!(step(&t, t.start(), 0x80), (DEAD, false));
    assert_eq!(step(&t, t.start(), EOS), (DEAD, true));
}

/// A stop is terminal, in every mode: in every state of the default decoder and of each
/// tokenizer fixture's (byte mode and token mode; first tokens, EOS and the word rule), every
/// entry with the stop flag leads to the dead state, whose mask is empty and which never
/// stops; and each decoder has stopping entries, so the check is not empty.
#[test]
fn a_stop_is_terminal_in_every_decoder() {
    let fixture = |file: &str| {
        let path = format!("{}/tests/fixtures/{file}.json", env!("CARGO_MANIFEST_DIR"));
        let vocab = kernels_gen::tokenizer::load_file(path.as_ref(), &Default::default()).unwrap();
        let tables = kernels_gen::generate(&DecoderSpec::new(vocab)).unwrap();
        welt_runtime::OwnedTables::from_bytes(tables.to_blob()).unwrap()
    };
    let owned: Vec<(&str, welt_runtime::OwnedTables)> =
        ["byt5_like", "bpe_bytelevel", "sp_bpe_bytefallback", "sp_unigram"]
            .into_iter()
            .map(|f| (f, fixture(f)))
            .collect();
    let decoders =
        std::iter::once(("default", Utf8Words::TABLES)).chain(owned.iter().map(|(f, o)| (*f, o.as_tables())));
    for (name, t) in decoders {
        t.validate_masks().unwrap();
        let v = t.vocab_size() as u32;
        let mut stops = 0;
        for s in states(&t) {
            for tok in 0..v {
                let (next, stop) = step(&t, s, tok);
                if stop {
                    assert_eq!(next, DEAD, "{name}: state {s} token {tok} stops and runs on");
                    assert!(
                        t.mask(s).allows(tok),
                        "{name}: state {s} token {tok} stops unallowed"
                    );
                    stops += 1;
                }
            }
        }
        assert!(stops > 0, "{name}: no stopping entry");
        assert_eq!(t.mask(DEAD).count(), 0, "{name}: the dead state allows a token");
        assert!(
            (0..v).all(|tok| step(&t, DEAD, tok) == (DEAD, false)),
            "{name}: the dead state leaves or stops"
        );
        // EOS, where there is one, is a stop at the start too (a first token).
        if let Some(eos) = t.eos() {
            assert_eq!(step(&t, t.start(), eos), (DEAD, true), "{name}: EOS at the start");
        }
    }
}

/// Table filling (Hopcroft–Ullman): mark pairs whose mask or stop flags differ, then pairs
/// with a marked pair of successors, until nothing changes. Returns the unmarked pairs: the
/// equivalent states.
fn equivalent_pairs(t: &Tables<'_>) -> Vec<(usize, usize)> {
    let n = t.num_states();
    let row = |s: usize| -> Vec<(bool, bool)> {
        (0..256)
            .map(|tok| {
                let (next, stop) = step(t, s as u16, tok);
                (next != DEAD || stop, stop)
            })
            .collect()
    };
    let rows: Vec<_> = (0..n).map(row).collect();
    let mut distinct = vec![vec![false; n]; n];
    for p in 0..n {
        for q in 0..n {
            distinct[p][q] = rows[p] != rows[q];
        }
    }
    loop {
        let mut changed = false;
        for p in 0..n {
            for q in 0..n {
                if p == q || distinct[p][q] {
                    continue;
                }
                if (0..256).any(|tok| {
                    let a = step(t, p as u16, tok).0 as usize;
                    let b = step(t, q as u16, tok).0 as usize;
                    distinct[a][b]
                }) {
                    distinct[p][q] = true;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    (0..n)
        .flat_map(|p| (p + 1..n).map(move |q| (p, q)))
        .filter(|&(p, q)| !distinct[p][q])
        .collect()
}

#[test]
fn no_two_states_are_equivalent() {
    assert_eq!(
        equivalent_pairs(&tables()),
        [],
        "equivalent states: the automaton is not minimal"
    );
}

/// The two checks above can fail: a blob with a copy of state `k` (valid for `from_bytes`)
/// has an unreachable state, and once an edge is redirected to the copy, an equivalent pair.
#[test]
fn the_minimality_and_reachability_checks_catch_a_duplicated_state() {
    let t = tables();
    let (k, _) = step(&t, t.start(), b'a'.into());
    let k = k as usize;
    let copy = with_copy_of_state(k, None);
    let doctored = Tables::from_bytes(&copy).expect("a valid blob");
    assert_eq!(unreachable_states(&doctored), [N]);
    assert_eq!(equivalent_pairs(&doctored), [(k, N)]);
    let copy = with_copy_of_state(k, Some((t.start() as usize, b'a' as usize)));
    let doctored = Tables::from_bytes(&copy).expect("a valid blob");
    assert_eq!(unreachable_states(&doctored), Vec::<usize>::new());
    assert_eq!(equivalent_pairs(&doctored), [(k, N)]);
}

/// The byte decoder's blob with one more state, `N`, a copy of state `k`; optionally the
/// entry `(state, token)` is redirected to the copy.
fn with_copy_of_state(k: usize, redirect: Option<(usize, usize)>) -> Vec<u8> {
    let b = blob();
    let mut out = b[..HEADER].to_vec();
    set_u32(&mut out, 20, N as u32 + 1);
    let (entries, masks) = (&b[HEADER..MASKS], &b[MASKS..BOUNDARY]);
    out.extend_from_slice(entries);
    out.extend_from_slice(&entries[k * V * 2..(k + 1) * V * 2]);
    out.extend_from_slice(masks);
    out.extend_from_slice(&masks[k * 32..(k + 1) * 32]);
    let mut bits = b[BOUNDARY..].to_vec();
    bits.push(b[BOUNDARY + k / 8] >> (k % 8) & 1); // state N = 32: bit 0 of byte 4
    out.extend_from_slice(&bits);
    if let Some((s, tok)) = redirect {
        let at = HEADER + 2 * (s * V + tok);
        let e = u16::from_le_bytes([out[at], out[at + 1]]);
        assert_eq!(e & NEXT_STATE, k as u16);
        out[at..at + 2].copy_from_slice(&((e & STOP_BIT) | N as u16).to_le_bytes());
    }
    out
}

/// The same inputs give byte-identical outputs (each generation uses fresh, randomly seeded
/// hash maps, so iteration-order leaks would show).
#[test]
fn generation_is_deterministic() {
    let spec = DecoderSpec::utf8_bytes();
    let a = kernels_gen::generate(&spec).unwrap();
    let b = kernels_gen::generate(&spec).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.to_blob(), b.to_blob());
    let src = |t| kernels_gen::emit::rust::decoder_file(t, "Utf8Words", "doc").unwrap();
    assert_eq!(src(&a), src(&b));
    assert_eq!(kernels_gen::emit::dot::emit(&a), kernels_gen::emit::dot::emit(&b));
    assert_eq!(
        kernels_gen::emit::stats::emit(&a),
        kernels_gen::emit::stats::emit(&b)
    );
    let c = std::thread::spawn(move || kernels_gen::generate(&spec).unwrap().to_blob())
        .join()
        .unwrap();
    assert_eq!(a.to_blob(), c, "another thread");
}

/// The class layout (one entry per state and token class, for large vocabularies) of the
/// same decoder behaves exactly like the direct layout the byte decoder uses.
#[test]
fn the_class_layout_agrees_with_the_direct_layout() {
    let mut spec = DecoderSpec::utf8_bytes();
    spec.layout = kernels_gen::Layout::Classes;
    let blob = kernels_gen::generate(&spec).unwrap().to_blob();
    let classes = Tables::from_bytes(&blob).expect("a valid class-layout blob");
    let direct = tables();
    assert!(
        direct.token_classes().is_none(),
        "the byte decoder uses the direct layout"
    );
    let k = classes.token_classes().expect("class layout");
    assert!(k < 256, "{k} token classes");
    assert_eq!(classes.num_states(), direct.num_states());
    assert_eq!(classes.start(), direct.start());
    for s in states(&direct) {
        assert_eq!(classes.mask(s), direct.mask(s), "mask of state {s}");
        assert_eq!(classes.is_boundary(s), direct.is_boundary(s));
        for tok in 0..256 {
            assert_eq!(
                step(&classes, s, tok),
                step(&direct, s, tok),
                "state {s} token {tok}"
            );
        }
    }
}

#[test]
fn the_runtime_uses_the_generated_tables() {
    let generated = kernels_gen::generate(&DecoderSpec::utf8_bytes()).unwrap();
    let blob = generated.to_blob();
    assert!(
        Utf8Words::TABLES.as_bytes() == blob,
        "#[welt_decoder] differs from kernels_gen::generate"
    );
    assert!(
        crate::common::build_script_blob(
            &kernels_gen::build::DecoderBuild::new("Utf8WordsBuildScript"),
            "Utf8WordsBuildScript"
        ) == blob,
        "the build-script API differs from kernels_gen::generate"
    );
    // And the generator's own view agrees with the runtime's, entry by entry.
    let t = tables();
    assert_eq!(generated.num_states(), t.num_states());
    assert_eq!(generated.start(), t.start());
    for s in states(&t) {
        assert_eq!(generated.is_boundary(s), t.is_boundary(s));
        for tok in 0..256 {
            assert_eq!(generated.step(s, tok), step(&t, s, tok));
            assert_eq!(generated.allows(s, tok), t.mask(s).allows(tok));
        }
    }
}

/// The decoder must stay small: its entry table is read once per generated token, on the CPU
/// and later from GPU shared memory (32 states x 256 tokens x 2 bytes = 16 KiB). If a change
/// makes it grow, that is a design decision: update these numbers in the same commit and say
/// why.
#[test]
fn sizes_are_pinned() {
    let t = tables();
    assert_eq!(t.num_states(), 32, "state count (dead state included)");
    assert_eq!(
        t.as_bytes().len(),
        17_476,
        "blob bytes = 64 header + 16,384 entries + 1,024 masks + 4"
    );
    let stats = kernels_gen::generate(&DecoderSpec::utf8_bytes())
        .unwrap()
        .stats()
        .clone();
    assert_eq!(stats.states, 32);
    assert_eq!(stats.entry_bytes, 16_384);
    assert_eq!(stats.mask_bytes, 1_024);
    assert_eq!(stats.blob_bytes, 17_476);
}

// ---- corrupted blobs ----

const HEADER: usize = 64;
const N: usize = 32;
const V: usize = 256;
const MASKS: usize = HEADER + N * V * 2;
const BOUNDARY: usize = MASKS + N * 32;

fn blob() -> Vec<u8> {
    tables().as_bytes().to_vec()
}

fn entry_at(s: usize, tok: usize) -> usize {
    HEADER + 2 * (s * V + tok)
}

fn set_entry(b: &mut [u8], s: usize, tok: usize, e: u16) {
    b[entry_at(s, tok)..entry_at(s, tok) + 2].copy_from_slice(&e.to_le_bytes());
}

fn set_mask_bit(b: &mut [u8], s: usize, tok: usize, on: bool) {
    let at = MASKS + s * 32 + tok / 8;
    if on {
        b[at] |= 1 << (tok % 8);
    } else {
        b[at] &= !(1 << (tok % 8));
    }
}

fn set_u32(b: &mut [u8], at: usize, x: u32) {
    b[at..at + 4].copy_from_slice(&x.to_le_bytes());
}

/// `from_bytes` on `bytes`, with a panic turned into a test failure naming the case.
fn read(bytes: &[u8], what: &str) -> Result<(), welt_runtime::Error> {
    let bytes = bytes.to_vec();
    catch_unwind(move || Tables::from_bytes(&bytes).map(|_| ()))
        .unwrap_or_else(|_| panic!("Tables::from_bytes panicked on {what}"))
}

fn assert_rejected(bytes: &[u8], what: &str) {
    match read(bytes, what) {
        Err(e) => assert!(matches!(e.kind(), ErrorKind::InvalidTables(_)), "{what}: {e}"),
        Ok(()) => panic!("{what}: accepted a corrupted blob"),
    }
}

#[test]
fn the_intact_blob_is_accepted() {
    read(&blob(), "the intact blob").expect("the generated blob is valid");
    assert_eq!(blob().len(), BOUNDARY + N / 8);
}

#[test]
fn corrupted_blobs_are_rejected() {
    let t = tables();
    // The start state (a boundary), and an allowed and a forbidden token in it.
    let s = 1usize;
    assert!(t.is_boundary(s as u16));
    let allowed = b'a' as usize;
    let forbidden = 0x80usize;
    assert!(t.mask(1).allows(allowed as u32) && !t.mask(1).allows(forbidden as u32));

    type Corruption = Box<dyn Fn(&mut Vec<u8>)>;
    let cases: Vec<(&str, Corruption)> = vec![
        ("magic", Box::new(|b| b[0] ^= 0xFF)),
        ("magic, last byte", Box::new(|b| b[7] = b'T')),
        ("version", Box::new(|b| set_u32(b, 8, 2))),
        ("header length", Box::new(|b| set_u32(b, 12, 65))),
        ("vocabulary 0", Box::new(|b| set_u32(b, 16, 0))),
        ("vocabulary 255", Box::new(|b| set_u32(b, 16, 255))),
        ("vocabulary huge", Box::new(|b| set_u32(b, 16, u32::MAX))),
        ("states 1", Box::new(|b| set_u32(b, 20, 1))),
        ("states 33", Box::new(|b| set_u32(b, 20, 33))),
        ("states huge", Box::new(|b| set_u32(b, 20, 1 << 20))),
        ("start 0", Box::new(|b| set_u32(b, 24, 0))),
        ("start past the table", Box::new(|b| set_u32(b, 24, 32))),
        ("dead state not 0", Box::new(|b| set_u32(b, 28, 1))),
        ("EOS past the vocabulary", Box::new(|b| set_u32(b, 32, 256))),
        ("PAD past the vocabulary", Box::new(|b| set_u32(b, 36, 1000))),
        ("word length 0", Box::new(|b| set_u32(b, 40, 0))),
        ("word length > u16", Box::new(|b| set_u32(b, 40, 70_000))),
        ("mask width", Box::new(|b| set_u32(b, 44, 5))),
        ("unknown layout", Box::new(|b| set_u32(b, 48, 2))),
        ("class layout without classes", Box::new(|b| set_u32(b, 48, 1))),
        ("classes in the direct layout", Box::new(|b| set_u32(b, 52, 28))),
        ("reserved byte 56", Box::new(|b| b[56] = 1)),
        ("reserved byte 63", Box::new(|b| b[63] = 0x80)),
        (
            "next state past the table",
            Box::new(move |b| set_entry(b, s, allowed, 100)),
        ),
        (
            "next state NEXT_STATE (0x7FFF, the largest)",
            Box::new(move |b| set_entry(b, s, allowed, NEXT_STATE)),
        ),
        (
            "allowed entry made dead",
            Box::new(move |b| set_entry(b, s, allowed, 0)),
        ),
        (
            "forbidden entry made live",
            Box::new(move |b| set_entry(b, s, forbidden, 2)),
        ),
        (
            "a forbidden token made a stop (its mask bit stays clear)",
            Box::new(move |b| set_entry(b, s, forbidden, STOP_BIT)),
        ),
        (
            "a stop that runs on (mask bits agree)",
            Box::new(move |b| set_entry(b, s, EOS as usize, STOP_BIT | s as u16)),
        ),
        ("dead state leaves", Box::new(|b| set_entry(b, 0, 5, 1))),
        ("dead state stops", Box::new(|b| set_entry(b, 0, 5, STOP_BIT))),
        (
            "mask bit set",
            Box::new(move |b| set_mask_bit(b, s, forbidden, true)),
        ),
        (
            "mask bit cleared",
            Box::new(move |b| set_mask_bit(b, s, allowed, false)),
        ),
        ("dead state mask bit", Box::new(|b| set_mask_bit(b, 0, 7, true))),
        (
            "EOS forbidden at a boundary",
            Box::new(move |b| {
                set_entry(b, s, EOS as usize, 0);
                set_mask_bit(b, s, EOS as usize, false);
            }),
        ),
        (
            "a live state allowing nothing",
            Box::new(|b| {
                let s = 5; // whatever it is, make it a non-boundary state that allows nothing
                for tok in 0..V {
                    set_entry(b, s, tok, 0);
                    set_mask_bit(b, s, tok, false);
                }
                b[BOUNDARY + s / 8] &= !(1 << (s % 8));
            }),
        ),
        ("dead state marked boundary", Box::new(|b| b[BOUNDARY] |= 1)),
        (
            "truncated by one byte",
            Box::new(|b| {
                b.pop();
            }),
        ),
        ("truncated to the header", Box::new(|b| b.truncate(HEADER))),
        (
            "truncated inside the header",
            Box::new(|b| b.truncate(HEADER - 1)),
        ),
        ("empty", Box::new(|b| b.clear())),
        ("one byte too many", Box::new(|b| b.push(0))),
    ];
    for (what, corrupt) in &cases {
        let mut b = blob();
        corrupt(&mut b);
        assert_ne!(b, blob(), "{what}: the corruption changed nothing");
        assert_rejected(&b, what);
    }
}

/// Random corruption anywhere never panics; what is accepted still steps without panicking
/// and stays inside the table.
#[test]
fn random_corruption_never_panics() {
    let mut rng = SplitMix64::new(0xC0_22_07);
    let mut rejected = 0;
    let tries = 600;
    for i in 0..tries {
        let mut b = blob();
        let flips = 1 + rng.index(4);
        for _ in 0..flips {
            // Half of the flips in the header, where every byte matters.
            let at = if rng.chance(1, 2) {
                rng.index(HEADER)
            } else {
                rng.index(b.len())
            };
            b[at] ^= 1 << rng.index(8);
        }
        if rng.chance(1, 10) {
            b.truncate(rng.index(b.len()));
        }
        let what = format!("random corruption #{i}");
        let copy = b.clone();
        let ok = catch_unwind(move || {
            let Ok(t) = Tables::from_bytes(&copy) else {
                return false;
            };
            for s in 0..t.num_states() as u16 {
                for tok in t.mask(s).iter() {
                    let (next, stop) = t.step(s, tok).unwrap();
                    assert!((next as usize) < t.num_states() && (next != DEAD || stop));
                }
            }
            true
        })
        .unwrap_or_else(|_| panic!("{what} panicked"));
        rejected += usize::from(!ok);
    }
    // Most single-bit corruptions must be caught (the ones that are not change a stop flag,
    // the word length, a reserved byte or an allowed target to another live state).
    assert!(
        rejected > tries / 2,
        "only {rejected} of {tries} corrupted blobs rejected"
    );
}

/// With token classes, `from_bytes` (const, at compile time) checks every index but leaves the
/// O(states x V) mask/entry agreement to `validate_masks`: a flipped mask bit gets through the
/// first and is caught by the second. In the direct layout `from_bytes` catches it itself.
#[test]
fn validate_masks_catches_a_flipped_mask_bit_in_the_class_layout() {
    let mut spec = kernels_gen::DecoderSpec::utf8_bytes();
    spec.layout = kernels_gen::Layout::Classes;
    let tables = kernels_gen::generate(&spec).unwrap();
    let blob = tables.to_blob();
    let ok = welt_runtime::Tables::from_bytes(&blob).unwrap();
    assert_eq!(ok.token_classes(), Some(tables.num_token_classes()));
    ok.validate_masks().unwrap();

    let (v, n, c) = (
        tables.vocab_size(),
        tables.num_states(),
        tables.num_token_classes(),
    );
    let masks_at = 64 + 2 * v + 2 * n * c;
    // State 1 (the start) allows `a` (0x61): clear that bit.
    let byte = masks_at + 4 * 8 + 0x61 / 8;
    let mut bad = blob.clone();
    bad[byte] &= !(1 << (0x61 % 8));
    let t = welt_runtime::Tables::from_bytes(&bad).expect("indices are all in range");
    assert!(t.validate_masks().is_err());

    let direct = kernels_gen::generate(&kernels_gen::DecoderSpec::utf8_bytes())
        .unwrap()
        .to_blob();
    let mut bad = direct.clone();
    let masks_at = 64 + 2 * n * v;
    bad[masks_at + 4 * 8 + 0x61 / 8] &= !(1 << (0x61 % 8));
    assert!(welt_runtime::Tables::from_bytes(&bad).is_err());
}
