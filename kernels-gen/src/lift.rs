//! Lifting the byte automaton to tokens.
//!
//! For each state and token the token's bytes are walked through the byte automaton. The
//! token is allowed iff the walk never leaves valid UTF-8 (a token may end inside a
//! character) and the word is not completed before the token's last byte; its entry is the
//! state reached and the stop flag of the last byte, or'ed with "this token always ends the
//! word" (EOS and named stop tokens). A special EOS token with no bytes is allowed exactly at
//! character boundaries and keeps the state; other special tokens and empty tokens are never
//! allowed. Only states reachable at token boundaries are kept, and the result is minimized
//! again over tokens (a vocabulary can make byte states indistinguishable). To keep that
//! cheap for large vocabularies it runs over token classes — tokens whose columns are equal
//! in every state — which are typically far fewer than tokens.

use std::collections::HashMap;

use crate::byte_dfa::ByteDfa;
use crate::minimize::Mealy;
use crate::spec::{Token, Vocabulary};

/// The minimal token-level automaton.
#[derive(Clone, Debug)]
pub struct TokenDfa {
    /// Over token ids (dead = 0, start = 1, breadth-first numbering).
    pub mealy: Mealy,
    /// Whether each state is at a character boundary.
    pub boundary: Vec<bool>,
    /// Number of token classes (tokens with equal columns).
    pub token_classes: usize,
}

enum Walk<'a> {
    Bytes(&'a [u8]),
    SpecialEos,
    Never,
}

/// Lifts `dfa` to the tokens of `vocab`.
pub fn lift(dfa: &ByteDfa, vocab: &Vocabulary) -> TokenDfa {
    let walks: Vec<Walk<'_>> = vocab
        .tokens()
        .iter()
        .enumerate()
        .map(|(id, t)| match t {
            Token::Bytes(b) if !b.is_empty() => Walk::Bytes(b),
            Token::Special(_) if vocab.eos() == Some(id as u32) => Walk::SpecialEos,
            _ => Walk::Never,
        })
        .collect();
    let v = walks.len();
    let dead = dfa.mealy.dead;

    // Breadth-first over byte states reachable at token boundaries.
    let mut index: HashMap<u32, u32> = HashMap::new();
    let mut states: Vec<u32> = vec![dead, dfa.mealy.start];
    index.insert(dead, 0);
    index.insert(dfa.mealy.start, 1);
    let mut rows: Vec<(u32, bool)> = vec![(0, false); v]; // dead row
    let mut stops = Vec::new();
    let mut head = 1;
    while head < states.len() {
        let s = states[head];
        head += 1;
        for (id, w) in walks.iter().enumerate() {
            let (t, stop) = match w {
                Walk::Never => (dead, false),
                Walk::SpecialEos if dfa.boundary[s as usize] => (s, true),
                Walk::SpecialEos => (dead, false),
                Walk::Bytes(bytes) => match dfa.walk(s, bytes, &mut stops) {
                    Some(t) if !stops[..stops.len() - 1].contains(&true) => {
                        (t, stops[stops.len() - 1] || vocab.is_stop_token(id as u32))
                    }
                    _ => (dead, false),
                },
            };
            let t = if t == dead {
                0
            } else {
                *index.entry(t).or_insert_with(|| {
                    states.push(t);
                    states.len() as u32 - 1
                })
            };
            rows.push((t, stop && t != 0));
        }
    }
    let n = states.len();

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
            boundary[new as usize] &= dfa.boundary[states[old] as usize];
        }
    }
    // Expand classes back to tokens.
    let mut next = Vec::with_capacity(m * v);
    let mut stop = Vec::with_capacity(m * v);
    for s in 0..m {
        for &c in &class_of {
            next.push(min.next[s * k + c as usize]);
            stop.push(min.stop[s * k + c as usize]);
        }
    }
    TokenDfa {
        mealy: Mealy {
            inputs: v,
            next,
            stop,
            dead: 0,
            start: min.start,
        },
        boundary,
        token_classes: k,
    }
}
