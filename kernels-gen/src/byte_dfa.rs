//! The byte automaton: strict UTF-8 × the word rule.
//!
//! A state is (word phase, position inside the current character, and — while the partial
//! character could still become a space or control character — the bytes of it seen so far).
//! Phases:
//!
//! * `Empty`: nothing decoded yet;
//! * `InWord`: one or more word characters (`W+`);
//! * `Never`: the decoded text can no longer match the rule (it began with a space, or contains
//!   a control after other text).
//!
//! A stop is terminal: the transition that completes the word stops and leads to the dead
//! state, so nothing follows a complete word (see [`crate::minimize::Mealy::allowed`]).
//!
//! Multi-byte space characters (U+0085, U+00A0, U+1680, U+2000–200A, ...) are resolved byte by
//! byte: the partial bytes are kept only while they are a prefix of the encoding of some
//! non-word character, so a state never remembers more than it needs. The automaton is then
//! minimized; byte classes are the columns of its table that are equal.
//!
//! A vocabulary may also forbid characters ([`crate::Vocabulary::forbid_chars`]): the byte
//! completing one of them is not allowed, in any phase.

use std::collections::{BTreeSet, HashMap};

use crate::minimize::Mealy;
use crate::spec::WordRule;
use crate::unicode::CharClass;
use crate::utf8::{Utf8Pos, Utf8Step};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Phase {
    Empty,
    InWord,
    Never,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    phase: Phase,
    pos: Utf8Pos,
    /// The current character's bytes so far, while they may still form a non-word character.
    partial: Option<Vec<u8>>,
}

/// The minimized byte automaton with its byte classes.
#[derive(Clone, Debug)]
pub struct ByteDfa {
    /// The automaton over the 256 byte values (dead = 0, start = 1).
    pub mealy: Mealy,
    /// For each state, whether it is at a character boundary.
    pub boundary: Vec<bool>,
    /// States before minimization (reachable ones, dead included).
    pub states_before_minimization: usize,
    /// Class of each byte: bytes with equal columns share a class, numbered by first byte.
    pub byte_class: [u8; 256],
    /// Number of byte classes.
    pub byte_classes: usize,
}

/// Word phase after one complete character, or `None` if that character completes the word.
fn rule(phase: Phase, class: CharClass) -> Option<Phase> {
    match phase {
        // Exactly one control character is a complete word; a leading space never completes.
        Phase::Empty if class.control => None,
        Phase::Empty if class.space => Some(Phase::Never),
        Phase::Empty => Some(Phase::InWord),
        // W+ then one space completes; a control after word characters never completes.
        Phase::InWord if class.space => None,
        Phase::InWord if class.control => Some(Phase::Never),
        Phase::InWord => Some(Phase::InWord),
        Phase::Never => Some(Phase::Never),
    }
}

impl ByteDfa {
    /// Builds and minimizes the byte automaton for `rule`, where the characters of `forbidden`
    /// are never allowed.
    pub fn build_forbidding(word_rule: &WordRule, forbidden: &BTreeSet<char>) -> ByteDfa {
        // Proper prefixes of the encodings of every multi-byte non-word or forbidden character.
        let mut prefixes: BTreeSet<Vec<u8>> = BTreeSet::new();
        let mut buf = [0u8; 4];
        // With forbidden characters, characters are followed after the word can no longer
        // complete too.
        let track_never = !forbidden.is_empty();
        for c in word_rule.special_chars().chain(forbidden.iter().copied()) {
            let enc = c.encode_utf8(&mut buf).as_bytes();
            for n in 1..enc.len() {
                prefixes.insert(enc[..n].to_vec());
            }
        }
        let char_of = |bytes: &[u8]| -> char {
            let s = std::str::from_utf8(bytes).expect("validator completed a valid character");
            s.chars().next().expect("one character")
        };
        // `None`: the byte is not allowed; `Some((None, true))`: it completes the word, which
        // is terminal (the dead state, with the stop flag).
        let step = |k: &Key, b: u8| -> Option<(Option<Key>, bool)> {
            let full = k.partial.as_ref().map(|p| {
                let mut v = p.clone();
                v.push(b);
                v
            });
            match k.pos.step(b) {
                Utf8Step::Invalid => None,
                Utf8Step::Complete => {
                    let c = full.map(|f| char_of(&f));
                    if c.is_some_and(|c| forbidden.contains(&c)) {
                        return None;
                    }
                    let class = c.map_or(CharClass::WORD, |c| word_rule.classify(c));
                    // A character that would trap the word, where the rule forbids it first.
                    if k.phase == Phase::Empty && word_rule.forbids_first(class) {
                        return None;
                    }
                    Some(match rule(k.phase, class) {
                        None => (None, true),
                        Some(phase) => (Some(Key::boundary(phase, track_never)), false),
                    })
                }
                Utf8Step::Partial(pos) => {
                    let partial = full.filter(|f| prefixes.contains(f));
                    Some((
                        Some(Key {
                            phase: k.phase,
                            pos,
                            partial,
                        }),
                        false,
                    ))
                }
            }
        };

        // Breadth-first construction; index 0 is the dead state.
        let mut index: HashMap<Key, u32> = HashMap::new();
        let mut keys: Vec<Option<Key>> = vec![None];
        let start = Key::boundary(Phase::Empty, track_never);
        index.insert(start.clone(), 1);
        keys.push(Some(start));
        let mut next = vec![0u32; 256];
        let mut stop = vec![false; 256];
        let mut head = 1;
        while head < keys.len() {
            let k = keys[head].clone().expect("live");
            head += 1;
            for b in 0..=255u8 {
                let (t, s) = match step(&k, b) {
                    None => (0, false),
                    Some((None, s)) => (0, s),
                    Some((Some(nk), s)) => {
                        let id = match index.get(&nk) {
                            Some(&id) => id,
                            None => {
                                let id = keys.len() as u32;
                                index.insert(nk.clone(), id);
                                keys.push(Some(nk));
                                id
                            }
                        };
                        (id, s)
                    }
                };
                next.push(t);
                stop.push(s);
            }
        }
        let raw = Mealy {
            inputs: 256,
            next,
            stop,
            dead: 0,
            start: 1,
        };
        let states_before_minimization = raw.len();
        let mealy = raw.minimize();

        // A state is at a boundary iff a byte of 00..7F is allowed from it (ASCII can only start
        // a character, and not all of it is forbidden); the table validation checks this agrees
        // with the construction.
        let boundary = (0..mealy.len())
            .map(|s| s != 0 && (0..0x80).any(|b| mealy.allowed(s * 256 + b)))
            .collect();

        let mut byte_class = [0u8; 256];
        let mut seen: HashMap<Vec<(u32, bool)>, u8> = HashMap::new();
        for (b, class) in byte_class.iter_mut().enumerate() {
            let col: Vec<(u32, bool)> = (0..mealy.len())
                .map(|s| (mealy.next[s * 256 + b], mealy.stop[s * 256 + b]))
                .collect();
            let fresh = seen.len() as u8;
            *class = *seen.entry(col).or_insert(fresh);
        }
        ByteDfa {
            boundary,
            states_before_minimization,
            byte_classes: seen.len(),
            byte_class,
            mealy,
        }
    }

    /// Runs `bytes` from `state`: `None` if some byte is not allowed (a byte after a stop
    /// never is), else the state reached (the dead state if the last byte stops) and the stop
    /// flag of every step.
    pub fn walk(&self, mut state: u32, bytes: &[u8], stops: &mut Vec<bool>) -> Option<u32> {
        stops.clear();
        for &b in bytes {
            let i = state as usize * 256 + b as usize;
            if !self.mealy.allowed(i) {
                return None;
            }
            state = self.mealy.next[i];
            stops.push(self.mealy.stop[i]);
        }
        Some(state)
    }
}

impl Key {
    fn boundary(phase: Phase, track_never: bool) -> Key {
        let partial = if phase == Phase::Never && !track_never {
            None
        } else {
            Some(Vec::new())
        };
        Key {
            phase,
            pos: Utf8Pos::BOUNDARY,
            partial,
        }
    }
}
