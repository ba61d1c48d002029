//! Lifting the byte automaton to tokens.
//!
//! For each state and token the token's bytes are walked through the byte automaton. The
//! token is allowed iff the walk never leaves valid UTF-8 (a token may end inside a
//! character) and the word is not completed before the token's last byte; its entry is the
//! state reached and the stop flag of the last byte, or'ed with "this token always ends the
//! word" (EOS and named stop tokens). A special token that ends the word (EOS, or one named as
//! a stop token) has no bytes: it is allowed exactly at character boundaries; other special
//! tokens and empty tokens are never allowed. A stop is terminal, whatever caused it (the word
//! rule, EOS, a named stop token; first token or not): its entry leads to the dead state with
//! the stop flag, so nothing is allowed after it. A token that leads only to
//! dead ends (a character that no token can finish) is not allowed either. Only states
//! reachable at token boundaries are kept, and the result is minimized again over tokens (a
//! vocabulary can make byte states indistinguishable). To keep that
//! cheap for large vocabularies it runs over token classes — tokens whose columns are equal
//! in every state — which are typically far fewer than tokens.
//!
//! The walks themselves run over byte classes, not bytes: bytes of one class have equal
//! columns in the byte automaton, so tokens that spell the same string of byte classes (and
//! play the same role) behave alike from every state. Those strings go into a trie, and each
//! state walks the trie once, node by node, so a prefix shared by many tokens is walked once.
//! The work per state is the trie's size (tens of thousands of nodes for a 128k vocabulary)
//! rather than every byte of every token; it matters most where this runs unoptimized, in a
//! proc macro of a debug build.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::byte_dfa::ByteDfa;
use crate::minimize::Mealy;
use crate::spec::{Token, Vocabulary};

#[cfg(test)]
mod reference;

/// The minimal token-level automaton, over token classes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenDfa {
    /// Over token classes (dead = 0, start = 1, breadth-first numbering).
    pub classes: Mealy,
    /// The class of each token id: tokens of one class have equal columns in every state.
    /// Classes are numbered in order of their first token.
    pub class_of: Vec<u32>,
    /// Whether each state is at a character boundary.
    pub boundary: Vec<bool>,
}

impl TokenDfa {
    /// Number of states (dead included).
    pub fn len(&self) -> usize {
        self.classes.len()
    }
    /// Never true for a built automaton.
    pub fn is_empty(&self) -> bool {
        self.classes.is_empty()
    }
    /// `(next, stop)` for a state and a token id.
    pub fn step(&self, state: u32, token: u32) -> (u32, bool) {
        let i = state as usize * self.classes.inputs + self.class_of[token as usize] as usize;
        (self.classes.next[i], self.classes.stop[i])
    }
}

/// What a token does from any state, as a number: [`NEVER`], [`SPECIAL_EOS`], or
/// `BYTES + 2 * node + stop` for a token whose byte classes spell the trie node `node`
/// (`stop`: it is a stop token). Tokens with one code behave alike in every state.
type Code = u32;
const NEVER: Code = 0;
const SPECIAL_EOS: Code = 1;
const BYTES: Code = 2;
/// A walk that left the byte automaton (a byte not allowed).
const FAIL: u32 = u32::MAX;

/// The byte-class strings of the tokens, with shared prefixes shared. Every node is pushed
/// after its parent, so one pass in node order walks every string from a state.
struct Trie {
    classes: usize,
    /// `child[node * classes + class]`; 0 is no child (the root is no one's child).
    child: Vec<u32>,
    parent: Vec<u32>,
    /// The byte class on the edge into each node (the root's is unused).
    class: Vec<u8>,
}

impl Trie {
    fn new(classes: usize) -> Trie {
        Trie {
            classes,
            child: vec![0; classes],
            parent: vec![0],
            class: vec![0],
        }
    }
    fn insert(&mut self, byte_class: &[u8; 256], bytes: &[u8]) -> u32 {
        let mut node = 0usize;
        for &b in bytes {
            let i = node * self.classes + byte_class[b as usize] as usize;
            if self.child[i] == 0 {
                self.child[i] = self.parent.len() as u32;
                self.parent.push(node as u32);
                self.class.push(byte_class[b as usize]);
                self.child.resize(self.child.len() + self.classes, 0);
            }
            node = self.child[i] as usize;
        }
        node as u32
    }
    fn len(&self) -> usize {
        self.parent.len()
    }
}

fn codes(
    tokens: &[Token],
    vocab: &Vocabulary,
    first: bool,
    trie: &mut Trie,
    byte_class: &[u8; 256],
) -> Vec<Code> {
    tokens
        .iter()
        .enumerate()
        .map(|(id, t)| match t {
            // An empty token makes no progress, except as a first token: it then moves the word
            // past its first position (a SentencePiece "▁" whose space the decoder drops).
            Token::Bytes(b) if !b.is_empty() || first => {
                BYTES + 2 * trie.insert(byte_class, b) + u32::from(vocab.is_stop_token(id as u32))
            }
            // EOS, or a special token named as a stop token (e.g. `<|eot_id|>`): it ends the word.
            Token::Special(_) if vocab.is_stop_token(id as u32) => SPECIAL_EOS,
            _ => NEVER,
        })
        .collect()
}

/// Tokens with the same codes (elsewhere, and as a first token) form a group; groups are
/// numbered in order of their first token. Returns the group of each token and the codes of
/// each group.
fn groups(rest: &[Code], first: Option<&[Code]>) -> (Vec<u32>, Vec<Code>, Vec<Code>) {
    let mut group_of = Vec::with_capacity(rest.len());
    let (mut rest_code, mut first_code) = (Vec::new(), Vec::new());
    match first {
        None => {
            let max = rest.iter().copied().max().unwrap_or(0) as usize;
            let mut by_code = vec![u32::MAX; max + 1];
            for &c in rest {
                let g = &mut by_code[c as usize];
                if *g == u32::MAX {
                    *g = rest_code.len() as u32;
                    rest_code.push(c);
                }
                group_of.push(*g);
            }
        }
        Some(first) => {
            let mut by_codes: HashMap<(Code, Code), u32, BuildHasherDefault<PairHasher>> = HashMap::default();
            for (&r, &f) in rest.iter().zip(first) {
                let next = rest_code.len() as u32;
                let g = *by_codes.entry((r, f)).or_insert(next);
                if g == next {
                    rest_code.push(r);
                    first_code.push(f);
                }
                group_of.push(g);
            }
        }
    }
    (group_of, rest_code, first_code)
}

/// A multiplicative hash for pairs of codes (std's SipHash costs more than the lift's other
/// work per token in an unoptimized build, which is how a proc macro runs).
#[derive(Default)]
struct PairHasher(u64);

impl Hasher for PairHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

/// The state and last stop flag of every trie node's string walked from byte state `s`
/// ([`FAIL`] where a byte is not allowed; a byte after a stop never is).
fn walk_trie(dfa: &ByteDfa, trie: &Trie, rep_byte: &[u8], s: u32) -> (Vec<u32>, Vec<bool>) {
    let n = trie.len();
    let (mut state, mut stop) = (vec![FAIL; n], vec![false; n]);
    state[0] = s;
    for node in 1..n {
        let p = state[trie.parent[node] as usize];
        if p == FAIL {
            continue;
        }
        let i = p as usize * 256 + rep_byte[trie.class[node] as usize] as usize;
        if dfa.mealy.allowed(i) {
            state[node] = dfa.mealy.next[i];
            stop[node] = dfa.mealy.stop[i];
        }
    }
    (state, stop)
}

/// Lifts `dfa` to the tokens of `vocab`.
pub fn lift(dfa: &ByteDfa, vocab: &Vocabulary) -> TokenDfa {
    // Bytes of one class have equal columns in the byte automaton, so only a token's string of
    // byte classes matters: tokens are grouped by it, and every state walks each distinct
    // string once, prefixes shared through the trie.
    let mut trie = Trie::new(dfa.byte_classes);
    let rest = codes(vocab.tokens(), vocab, false, &mut trie, &dfa.byte_class);
    // Where first tokens decode differently, a token-level state also says whether the word
    // is still at its first token; otherwise that flag is always false.
    let first = vocab
        .first_tokens()
        .map(|f| codes(f, vocab, true, &mut trie, &dfa.byte_class));
    let v = rest.len();
    let (group_of, rest_code, first_code) = groups(&rest, first.as_deref());
    let g = rest_code.len();
    let mut rep_byte = vec![0u8; dfa.byte_classes];
    for b in (0..=255u8).rev() {
        rep_byte[dfa.byte_class[b as usize] as usize] = b;
    }
    let dead = dfa.mealy.dead;
    let byte_states = dfa.mealy.len();
    let mut walked: Vec<Option<(Vec<u32>, Vec<bool>)>> = vec![None; byte_states];

    // Breadth-first over (byte state, at first token) reachable at token boundaries, taking
    // new states in order of the first token that reaches them (groups are in that order).
    type Key = (u32, bool);
    let slot = |(s, at_first): Key| s as usize * 2 + usize::from(at_first);
    let start: Key = (dfa.mealy.start, first.is_some());
    let mut index = vec![u32::MAX; byte_states * 2];
    let mut states: Vec<Key> = vec![(dead, false), start];
    index[slot((dead, false))] = 0;
    index[slot(start)] = 1;
    let mut rows: Vec<(u32, bool)> = vec![(0, false); g]; // dead row
    let mut head = 1;
    while head < states.len() {
        let (s, at_first) = states[head];
        head += 1;
        let table = if at_first { &first_code } else { &rest_code };
        let (node_state, node_stop) =
            walked[s as usize].get_or_insert_with(|| walk_trie(dfa, &trie, &rep_byte, s));
        for &code in table {
            let (t, stop): (Key, bool) = match code {
                NEVER => ((dead, false), false),
                SPECIAL_EOS => ((dead, false), dfa.boundary[s as usize]),
                _ => {
                    let node = ((code - BYTES) / 2) as usize;
                    match node_state[node] {
                        FAIL => ((dead, false), false),
                        t => ((t, false), node_stop[node] || (code - BYTES) % 2 == 1),
                    }
                }
            };
            // Terminal: a stop leads to the dead state.
            let t = if stop { (dead, false) } else { t };
            let t = if t.0 == dead {
                0
            } else {
                let i = &mut index[slot(t)];
                if *i == u32::MAX {
                    *i = states.len() as u32;
                    states.push(t);
                }
                *i
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
                && !rows[s * g..(s + 1) * g]
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

    // Token classes: equal columns. Tokens of one group have one column, and groups are in
    // order of their first token, so numbering classes over groups numbers them in order of
    // their first token.
    let mut class_of_group = vec![0u32; g];
    let mut reps: Vec<usize> = Vec::new();
    {
        let mut seen: HashMap<Vec<(u32, bool)>, u32> = HashMap::new();
        for (gi, class) in class_of_group.iter_mut().enumerate() {
            let col: Vec<(u32, bool)> = (0..n).map(|s| rows[s * g + gi]).collect();
            *class = *seen.entry(col).or_insert_with(|| {
                reps.push(gi);
                reps.len() as u32 - 1
            });
        }
    }
    let class_of: Vec<u32> = group_of.iter().map(|&gi| class_of_group[gi as usize]).collect();
    debug_assert_eq!(class_of.len(), v);
    let k = reps.len();
    let mut next = Vec::with_capacity(n * k);
    let mut stop = Vec::with_capacity(n * k);
    for s in 0..n {
        for &gi in &reps {
            let (t, st) = rows[s * g + gi];
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::byte_dfa::ByteDfa;
    use crate::spec::{DecoderSpec, WordRule};
    use crate::Tables;

    /// The lift and the reference give the same automaton, and the same blob.
    fn same_as_reference(spec: &DecoderSpec) {
        let byte = ByteDfa::build_forbidding(&spec.rule, spec.vocab.forbidden_chars());
        let ours = lift(&byte, &spec.vocab);
        let theirs = reference::lift(&byte, &spec.vocab);
        assert_eq!(ours, theirs, "{}", spec.vocab.label());
        let a = Tables::new(spec, &byte, &ours).map(|t| t.to_blob());
        let b = Tables::new(spec, &byte, &theirs).map(|t| t.to_blob());
        assert_eq!(a, b, "{}", spec.vocab.label());
    }

    fn both_rules(vocab: Vocabulary) {
        for forbid in [false, true] {
            same_as_reference(&DecoderSpec {
                rule: WordRule::default().forbid_leading_whitespace(forbid),
                ..DecoderSpec::new(vocab.clone())
            });
        }
    }

    #[test]
    fn utf8_bytes_as_the_reference() {
        both_rules(Vocabulary::utf8_bytes());
    }

    /// Empty tokens, specials, stop tokens with and without bytes, first tokens that differ,
    /// forbidden characters, and tokens that end inside a character or after a stop.
    #[test]
    fn hand_made_vocabularies_as_the_reference() {
        let mut tokens: Vec<Token> = (0..=255u8).map(|b| Token::Bytes(vec![b])).collect();
        for t in [
            &b"ab"[..],
            b" x",
            b"a ",
            b"a b",
            b"\xc3",
            b"\xc3\xa9",
            b"\xe3\x80\x80",
            b"\xe3\x80",
            b"\x80\x80",
            b"",
            b"\xc2\xa0z",
            b"zz\n",
            b"\x1c",
            b"ab",
        ] {
            tokens.push(Token::Bytes(t.to_vec()));
        }
        tokens.push(Token::Special("<eos>".into()));
        tokens.push(Token::Special("<stop>".into()));
        tokens.push(Token::Special("<other>".into()));
        let n = tokens.len() as u32;
        let mut first = tokens.clone();
        first[0x20] = Token::Bytes(Vec::new());
        first[257] = Token::Bytes(b"x".to_vec());
        first[258] = Token::Special("never first".into());
        let mut v = Vocabulary::new("hand-made", tokens, Some(n - 3), 0).unwrap();
        both_rules(v.clone());
        v.add_stop_token(n - 2).unwrap();
        v.add_stop_token(256).unwrap();
        both_rules(v.clone());
        v.forbid_chars(['\u{e9}', '\u{3000}']);
        both_rules(v.clone());
        v.set_first_tokens(first).unwrap();
        assert!(v.first_tokens().is_some());
        both_rules(v.clone());
        // No EOS: states with no way out are dead ends.
        let mut v = Vocabulary::new("no EOS", v.tokens().to_vec(), None, 0).unwrap();
        both_rules(v.clone());
        v.forbid_chars(['a']);
        both_rules(v);
    }

    #[cfg(feature = "tokenizers")]
    #[test]
    fn fixtures_as_the_reference() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
        for file in [
            "byt5_like.json",
            "bpe_bytelevel.json",
            "sp_bpe_bytefallback.json",
            "sp_unigram.json",
        ] {
            let vocab = crate::tokenizer::load_file(&dir.join(file), &Default::default()).unwrap();
            both_rules(vocab);
        }
    }

    #[cfg(feature = "tokenizers")]
    #[test]
    fn synthetic_128k_as_the_reference() {
        let json = crate::synthetic::byte_level_bpe_json(131_072, 7);
        let vocab = crate::tokenizer::load_str("synthetic.json", &json, &Default::default()).unwrap();
        same_as_reference(&DecoderSpec::new(vocab));
    }
}
