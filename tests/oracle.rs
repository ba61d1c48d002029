//! Parity with the Python reference (`tests/data/oracle_cases.jsonl`, 85,793 cases computed by
//! `UTF8ValidationLogitsProcessor` and `WordStoppingCriteria`), under SEMANTICS.md's rule: on
//! every sequence welt can generate, welt's mask is the reference mask AND the valid next
//! bytes, and welt's stop flag is the reference's OR "the last byte is EOS". What follows the
//! end of a word is welt's own choice (SEMANTICS.md accepts either): a stop is terminal, and
//! at the word length limit the word is finished, so the mask is then empty.
//!
//! The valid next bytes and reachability are computed here independently, with std's UTF-8
//! decoder and the rule of `common`; the `welt query` command is checked against the library
//! on the same file.

use crate::common::{hex, oracle_cases, reference_stop, word_complete, OracleCase, Spec, ValidNext, EOS};
use welt_runtime::{Decoder, Sequence, Utf8Words};

/// WeLT's `max_word_length` (SEMANTICS.md: 16 bytes by default): the default decoder's limit.
const MAX_WORD_LEN: usize = 16;

/// The number of oracle cases welt can generate (the length limit included). It is a property
/// of the oracle file and of the semantics: if it changes, either the file or the automaton
/// changed.
const REACHABLE_CASES: usize = 28_892;

fn tokens(bytes: &[u8]) -> Vec<u32> {
    bytes.iter().map(|&b| u32::from(b)).collect()
}

/// Whether welt can generate `bytes`, decided without welt: every byte is a valid next byte
/// (the whole sequence is a UTF-8 prefix), the spec stops on no proper prefix, and the word is
/// within the length limit.
fn reachable_independently(bytes: &[u8]) -> bool {
    matches!(Spec::of(bytes), Spec::Valid { .. })
        && (0..bytes.len()).all(|n| !reference_stop(&bytes[..n]))
        && bytes.len() <= MAX_WORD_LEN
}

#[test]
fn oracle_file_holds_every_short_prefix() {
    let cases = oracle_cases();
    assert_eq!(cases.len(), 85_793, "the oracle file lost or gained lines");
    let mut seen1 = [false; 256];
    let mut seen2 = vec![false; 65_536];
    let mut empty = 0;
    for c in &cases {
        match c.bytes[..] {
            [] => empty += 1,
            [a] => seen1[a as usize] = true,
            [a, b] => seen2[(a as usize) << 8 | b as usize] = true,
            _ => {}
        }
    }
    assert_eq!(empty, 1);
    assert!(seen1.iter().all(|&s| s), "a one-byte prefix is missing");
    assert!(seen2.iter().all(|&s| s), "a two-byte prefix is missing");
}

/// The test's own rule must agree with Python on every record, reachable or not (the
/// reference decodes with `errors="ignore"`): this is what makes it usable as a spec.
#[test]
fn independent_rule_agrees_with_the_reference_stop_on_every_case() {
    let mut disagree = Vec::new();
    for c in oracle_cases() {
        if word_complete(&crate::common::decode_ignore(&c.bytes)) != c.stop {
            disagree.push((c.line, c.bytes.clone(), c.stop));
        }
    }
    assert!(
        disagree.is_empty(),
        "{} disagreements, first: {:?}",
        disagree.len(),
        &disagree[..disagree.len().min(5)]
    );
}

fn check_case(c: &OracleCase, valid_next: &mut ValidNext) -> bool {
    let a = welt::query::answer(&Utf8Words::TABLES, &tokens(&c.bytes)).expect("byte tokens are in range");
    let reachable = reachable_independently(&c.bytes);
    assert_eq!(
        a.reachable, reachable,
        "line {}: reachable of {:02x?}",
        c.line, c.bytes
    );
    match Spec::of(&c.bytes) {
        Spec::Invalid => {
            // Never generated: the walk sits in the dead state.
            assert!(a.mask.iter().all(|&m| m == 0), "line {}: dead state mask", c.line);
            assert!(!a.stop, "line {}: dead state stop", c.line);
        }
        Spec::Valid { .. } => {
            let next = valid_next.after(&c.bytes);
            let stopped_before = (0..c.bytes.len()).any(|n| reference_stop(&c.bytes[..n]));
            let stop = c.stop || c.bytes.last() == Some(&EOS);
            if reachable {
                assert_eq!(a.stop, stop, "line {}: stop after {:02x?}", c.line, c.bytes);
                if stop || c.bytes.len() == MAX_WORD_LEN {
                    // The word is finished: a stop is terminal, and the limit ends the word.
                    assert!(
                        a.mask.iter().all(|&m| m == 0),
                        "line {}: mask after the finished word {:02x?}",
                        c.line,
                        c.bytes
                    );
                } else {
                    let expected: Vec<u8> = c.mask.iter().zip(&next).map(|(r, v)| r & v).collect();
                    assert_eq!(
                        hex(&a.mask),
                        hex(&expected),
                        "line {}: mask after {:02x?} (reference AND valid next)",
                        c.line,
                        c.bytes
                    );
                    // The reference is lenient, never stricter: on a generable sequence it
                    // allows every valid next byte, so welt's mask is exactly the valid next
                    // bytes.
                    assert_eq!(
                        hex(&a.mask),
                        hex(&next),
                        "line {}: reference forbids a valid byte",
                        c.line
                    );
                }
                // `Sequence` gives the same answer, step by step.
                let mut seq = Sequence::new(Utf8Words::TABLES);
                for (i, &b) in c.bytes.iter().enumerate() {
                    let s = seq
                        .step(b.into())
                        .unwrap_or_else(|e| panic!("line {}: {e}", c.line));
                    assert_eq!(
                        s,
                        i + 1 == c.bytes.len() && stop,
                        "line {}: Sequence stop",
                        c.line
                    );
                }
                assert_eq!(
                    seq.mask().as_bytes(),
                    &a.mask[..],
                    "line {}: Sequence mask",
                    c.line
                );
            } else {
                // Not generable: it went on after a stop, or past the length limit; the mask is
                // empty. After a stop the automaton is in the dead state and never stops again;
                // past the limit (with no stop before) the stop flag is still the rule's.
                assert!(
                    a.mask.iter().all(|&m| m == 0),
                    "line {}: mask after {:02x?}",
                    c.line,
                    c.bytes
                );
                let expected = !stopped_before && stop;
                assert_eq!(
                    a.stop, expected,
                    "line {}: stop after {:02x?} (not generable)",
                    c.line, c.bytes
                );
            }
        }
    }
    reachable
}

#[test]
fn welt_matches_the_reference_on_every_generable_case() {
    let cases = oracle_cases();
    let mut valid_next = ValidNext::default();
    let reachable = cases.iter().filter(|c| check_case(c, &mut valid_next)).count();
    assert_eq!(
        reachable,
        REACHABLE_CASES,
        "number of oracle cases welt can generate (of {})",
        cases.len()
    );
}

/// `welt query FILE` prints one line per case, equal to the library's answer, with the mask
/// in the oracle's hex format.
#[test]
fn welt_query_agrees_with_the_library() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_welt"))
        .arg("query")
        .arg(crate::common::ORACLE_PATH)
        .output()
        .expect("run welt");
    assert!(
        out.status.success(),
        "welt query failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stderr.is_empty());
    let stdout = String::from_utf8(out.stdout).expect("UTF-8 output");
    let cases = oracle_cases();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), cases.len(), "one output line per case");
    let mut reachable = 0;
    for (c, line) in cases.iter().zip(lines) {
        let v: serde_json::Value = serde_json::from_str(line).expect("output line is JSON");
        let obj = v.as_object().expect("an object");
        assert_eq!(obj.len(), 4, "line {}: fields {line}", c.line);
        let bytes: Vec<u8> = obj["bytes"]
            .as_array()
            .expect("bytes")
            .iter()
            .map(|x| x.as_u64().expect("int") as u8)
            .collect();
        assert_eq!(bytes, c.bytes, "line {}: bytes echoed", c.line);
        let a = welt::query::answer(&Utf8Words::TABLES, &tokens(&c.bytes)).unwrap();
        assert_eq!(
            obj["mask"].as_str(),
            Some(hex(&a.mask).as_str()),
            "line {}: mask",
            c.line
        );
        assert_eq!(obj["stop"].as_bool(), Some(a.stop), "line {}: stop", c.line);
        assert_eq!(
            obj["reachable"].as_bool(),
            Some(a.reachable),
            "line {}: reachable",
            c.line
        );
        reachable += usize::from(a.reachable);
    }
    assert_eq!(reachable, REACHABLE_CASES);
}
