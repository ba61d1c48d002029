//! The lift as it walked every token's bytes from every state, one token at a time: the
//! reference the lift over byte-class strings is checked against (same tables, bit for bit).

use std::collections::HashMap;

use super::TokenDfa;
use crate::byte_dfa::ByteDfa;
use crate::minimize::Mealy;
use crate::spec::{Token, Vocabulary};

enum Walk<'a> {
    Bytes(&'a [u8]),
    SpecialEos,
    Never,
}

fn walks<'a>(tokens: &'a [Token], vocab: &Vocabulary, first: bool) -> Vec<Walk<'a>> {
    tokens
        .iter()
        .enumerate()
        .map(|(id, t)| match t {
            // An empty token makes no progress, except as a first token: it then moves the word
            // past its first position (a SentencePiece "▁" whose space the decoder drops).
            Token::Bytes(b) if !b.is_empty() || first => Walk::Bytes(b),
            // EOS, or a special token named as a stop token (e.g. `<|eot_id|>`): it ends the word.
            Token::Special(_) if vocab.is_stop_token(id as u32) => Walk::SpecialEos,
            _ => Walk::Never,
        })
        .collect()
}

/// Lifts `dfa` to the tokens of `vocab`.
pub fn lift(dfa: &ByteDfa, vocab: &Vocabulary) -> TokenDfa {
    let rest = walks(vocab.tokens(), vocab, false);
    // Where first tokens decode differently, a token-level state also says whether the word
    // is still at its first token; otherwise that flag is always false.
    let first = vocab.first_tokens().map(|f| walks(f, vocab, true));
    let v = rest.len();
    let dead = dfa.mealy.dead;

    // Breadth-first over (byte state, at first token) reachable at token boundaries.
    type Key = (u32, bool);
    let start: Key = (dfa.mealy.start, first.is_some());
    let mut index: HashMap<Key, u32> = HashMap::new();
    let mut states: Vec<Key> = vec![(dead, false), start];
    index.insert((dead, false), 0);
    index.insert(start, 1);
    let mut rows: Vec<(u32, bool)> = vec![(0, false); v]; // dead row
    let mut stops = Vec::new();
    let mut head = 1;
    while head < states.len() {
        let (s, at_first) = states[head];
        head += 1;
        let table = if at_first {
            first.as_ref().expect("first-token walks")
        } else {
            &rest
        };
        for (id, w) in table.iter().enumerate() {
            let (t, stop): (Key, bool) = match w {
                Walk::Never => ((dead, false), false),
                Walk::SpecialEos if dfa.boundary[s as usize] => ((dead, false), true),
                Walk::SpecialEos => ((dead, false), false),
                Walk::Bytes([]) => ((s, false), vocab.is_stop_token(id as u32)),
                // The byte walk fails on a byte after a stop, so a stop can only be the last.
                Walk::Bytes(bytes) => match dfa.walk(s, bytes, &mut stops) {
                    Some(t) => (
                        (t, false),
                        stops[stops.len() - 1] || vocab.is_stop_token(id as u32),
                    ),
                    None => ((dead, false), false),
                },
            };
            // Terminal: a stop leads to the dead state.
            let t = if stop { (dead, false) } else { t };
            let t = if t.0 == dead {
                0
            } else {
                *index.entry(t).or_insert_with(|| {
                    states.push(t);
                    states.len() as u32 - 1
                })
            };
            rows.push((t, stop));
        }
    }
    let n = states.len();

    // Dead ends: a state from which no token is allowed (a character that no token of the
    // vocabulary can finish, say) would leave a row with an empty mask. A token leading only
    // to dead ends is not allowed either, and so on: keep the largest set of states that each
    // allow a token into the set or a stopping token (where EOS exists, every boundary state
    // is in it), and make every other transition forbidden. Stopping transitions stay: they
    // lead to the dead state by design.
    let mut live = vec![true; n];
    live[0] = false;
    loop {
        let mut changed = false;
        for s in 1..n {
            if live[s]
                && !rows[s * v..(s + 1) * v]
                    .iter()
                    .any(|&(t, stop)| stop || live[t as usize])
            {
                live[s] = false;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    for row in rows.iter_mut() {
        if !row.1 && !live[row.0 as usize] {
            row.0 = 0;
        }
    }

    // Token classes: equal columns.
    let mut class_of = vec![0u32; v];
    let mut reps: Vec<usize> = Vec::new();
    {
        let mut seen: HashMap<Vec<(u32, bool)>, u32> = HashMap::new();
        for (id, class) in class_of.iter_mut().enumerate() {
            let col: Vec<(u32, bool)> = (0..n).map(|s| rows[s * v + id]).collect();
            *class = *seen.entry(col).or_insert_with(|| {
                reps.push(id);
                reps.len() as u32 - 1
            });
        }
    }
    let k = reps.len();
    let mut next = Vec::with_capacity(n * k);
    let mut stop = Vec::with_capacity(n * k);
    for s in 0..n {
        for &id in &reps {
            let (t, st) = rows[s * v + id];
            next.push(t);
            stop.push(st);
        }
    }
    let by_class = Mealy {
        inputs: k,
        next,
        stop,
        dead: 0,
        start: 1,
    };
    let (min, map) = by_class.minimize_with_map();

    let m = min.len();
    let mut boundary = vec![true; m];
    boundary[0] = false;
    for (old, &new) in map.iter().enumerate() {
        if new != u32::MAX && new != 0 {
            boundary[new as usize] &= dfa.boundary[states[old].0 as usize];
        }
    }
    // Merging states can make more columns equal: recompute the classes on the minimal table.
    let mut remap: Vec<u32> = Vec::with_capacity(k);
    let mut final_reps: Vec<usize> = Vec::new();
    {
        let mut seen: HashMap<Vec<(u32, bool)>, u32> = HashMap::new();
        for c in 0..k {
            let col: Vec<(u32, bool)> = (0..m)
                .map(|s| (min.next[s * k + c], min.stop[s * k + c]))
                .collect();
            remap.push(*seen.entry(col).or_insert_with(|| {
                final_reps.push(c);
                final_reps.len() as u32 - 1
            }));
        }
    }
    let kc = final_reps.len();
    let mut next = Vec::with_capacity(m * kc);
    let mut stop = Vec::with_capacity(m * kc);
    for s in 0..m {
        for &c in &final_reps {
            next.push(min.next[s * k + c]);
            stop.push(min.stop[s * k + c]);
        }
    }
    TokenDfa {
        classes: Mealy {
            inputs: kc,
            next,
            stop,
            dead: 0,
            start: min.start,
        },
        class_of: class_of.iter().map(|&c| remap[c as usize]).collect(),
        boundary,
    }
}
