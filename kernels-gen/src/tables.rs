//! The one in-memory form of a generated decoder, and its binary layout.
//!
//! Every emitter works from [`Tables`]. The binary form (the "blob") is what the Rust emitter
//! embeds and what `welt_runtime::Tables::from_bytes` reads; its layout is defined once, in the
//! `welt-format` crate (header, sections, entry bits), for this writer and that reader.
//!
//! An entry is a `u16`: next state in bits 0..15, the stop flag in bit 15. In the direct
//! layout advancing a row is one load; with token classes it is two dependent loads, and the
//! entry table shrinks from N x V to N x C (C is typically a few hundred where V is 128k).

use std::fmt;

use crate::byte_dfa::ByteDfa;
use crate::lift::TokenDfa;
use crate::spec::{DecoderSpec, Layout, DIRECT_LIMIT_BYTES};
use crate::Error;

pub use welt_format::{FORMAT_VERSION, HEADER_LEN, MAGIC, MAX_CLASSES, MAX_STATES, NO_EOS, STOP_BIT};

/// A generated decoder: the token-level automaton as tables, plus what it was made from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tables {
    vocab_size: usize,
    states: usize,
    start: u16,
    eos: Option<u32>,
    pad: u32,
    max_word_len: u16,
    direct: bool,
    /// Class of each token.
    class_of: Vec<u32>,
    /// `entries[s * C + class]`.
    entries: Vec<u16>,
    classes: usize,
    /// `masks[s * W + w]`.
    masks: Vec<u64>,
    boundary: Vec<bool>,
    byte_class: [u8; 256],
    stats: Stats,
    provenance: String,
}

/// Sizes of a generated decoder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stats {
    /// Reachable states of the byte automaton before minimization (dead included).
    pub byte_states_before_minimization: usize,
    /// States of the minimal byte automaton (dead included).
    pub byte_states: usize,
    /// Byte classes of the minimal byte automaton.
    pub byte_classes: usize,
    /// States of the minimal token automaton (dead included): the rows of the tables.
    pub states: usize,
    /// Token classes: tokens whose columns are equal in every state.
    pub token_classes: usize,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// "direct" or "token classes".
    pub layout: &'static str,
    /// Bytes of the entry table (and the token class table, in that layout).
    pub entry_bytes: usize,
    /// Bytes of the mask table.
    pub mask_bytes: usize,
    /// Bytes of the whole blob.
    pub blob_bytes: usize,
}

impl Tables {
    pub(crate) fn new(spec: &DecoderSpec, byte: &ByteDfa, token: &TokenDfa) -> Result<Tables, Error> {
        let v = spec.vocab.len();
        let n = token.len();
        let c = token.classes.inputs;
        if n > MAX_STATES {
            return Err(Error::new(format!(
                "the automaton has {n} states; entries hold at most {MAX_STATES}"
            )));
        }
        let direct = match spec.layout {
            Layout::Direct => true,
            Layout::Classes => false,
            Layout::Auto => n * v * 2 <= DIRECT_LIMIT_BYTES,
        };
        if !direct && c > MAX_CLASSES {
            return Err(Error::new(format!(
                "the vocabulary has {c} token classes; the class layout holds at most {MAX_CLASSES}"
            )));
        }
        if (0..c).all(|k| !token.classes.allowed(token.classes.start as usize * c + k)) {
            return Err(Error::new(
                "no token of the vocabulary can begin a word (none is valid UTF-8 there, and there is no EOS)",
            ));
        }
        let w = v.div_ceil(64);
        let entries: Vec<u16> = (0..n * c)
            .map(|i| welt_format::entry(token.classes.next[i] as u16, token.classes.stop[i]))
            .collect();
        let mut masks = vec![0u64; n * w];
        for (row, mask) in entries.chunks_exact(c).zip(masks.chunks_exact_mut(w)) {
            for (t, &cl) in token.class_of.iter().enumerate() {
                if row[cl as usize] != 0 {
                    mask[t / 64] |= 1 << (t % 64);
                }
            }
        }
        let entry_bytes = if direct { n * v * 2 } else { v * 2 + n * c * 2 };
        let stats = Stats {
            byte_states_before_minimization: byte.states_before_minimization,
            byte_states: byte.mealy.len(),
            byte_classes: byte.byte_classes,
            states: n,
            token_classes: c,
            vocab_size: v,
            layout: if direct { "direct" } else { "token classes" },
            entry_bytes,
            mask_bytes: masks.len() * 8,
            blob_bytes: HEADER_LEN + entry_bytes + masks.len() * 8 + n.div_ceil(8),
        };
        let rule = spec.rule.describe();
        let provenance = format!(
            "kernels-gen {} from vocabulary {} ({} tokens); {}; max word length {}",
            env!("CARGO_PKG_VERSION"),
            crate::emit::escape(spec.vocab.label()),
            v,
            rule,
            spec.max_word_len
        );
        let tables = Tables {
            vocab_size: v,
            states: n,
            start: token.classes.start as u16,
            eos: spec.vocab.eos(),
            pad: spec.vocab.pad(),
            max_word_len: spec.max_word_len,
            direct,
            class_of: token.class_of.clone(),
            entries,
            classes: c,
            masks,
            boundary: token.boundary.clone(),
            byte_class: byte.byte_class,
            stats,
            provenance,
        };
        tables.validate()?;
        Ok(tables)
    }

    /// Checks every invariant the runtime relies on:
    /// sizes agree; the dead state is 0 and absorbs everything with no stop; every stop leads
    /// to the dead state (a stop is terminal); a mask bit is set
    /// iff its entry is not 0 (it leads to a live state, or it stops and leads to the dead
    /// state); mask bits past the vocabulary are clear; every live state allows at least one
    /// token; EOS (if any) is allowed at every character boundary.
    pub fn validate(&self) -> Result<(), Error> {
        let (v, n, c) = (self.vocab_size, self.states, self.classes);
        let w = v.div_ceil(64);
        let bad = |m: String| Err(Error::new(format!("invalid tables: {m}")));
        if !(2..=MAX_STATES).contains(&n) {
            return bad(format!("{n} states"));
        }
        if self.entries.len() != n * c
            || self.class_of.len() != v
            || self.masks.len() != n * w
            || self.boundary.len() != n
        {
            return bad("table sizes disagree".into());
        }
        if self.class_of.iter().any(|&k| k as usize >= c) {
            return bad("a token class out of range".into());
        }
        if self.start == 0 || self.start as usize >= n {
            return bad(format!("start state {}", self.start));
        }
        if self.pad as usize >= v || self.eos.is_some_and(|e| e as usize >= v) {
            return bad("PAD or EOS outside the vocabulary".into());
        }
        if self.boundary[0] {
            return bad("dead state marked as a boundary".into());
        }
        for s in 0..n {
            for k in 0..c {
                let e = self.entries[s * c + k];
                let next = (e & !STOP_BIT) as usize;
                if next >= n {
                    return bad(format!("state {s} class {k}: next state {next} out of range"));
                }
                if s == 0 && e != 0 {
                    return bad(format!("dead state leaves on class {k}"));
                }
                if next != 0 && e & STOP_BIT != 0 {
                    return bad(format!(
                        "state {s} class {k}: a stop that does not lead to the dead state"
                    ));
                }
            }
            // An entry is (0, no stop) iff it is 0; indexing directly keeps this loop over
            // every (state, token) cheap where it runs unoptimized (a proc macro).
            let row = &self.entries[s * c..(s + 1) * c];
            let mask = &self.masks[s * w..(s + 1) * w];
            let mut any = false;
            for (t, &k) in self.class_of.iter().enumerate() {
                let allowed = mask[t / 64] >> (t % 64) & 1 == 1;
                if allowed != (row[k as usize] != 0) {
                    return bad(format!("state {s} token {t}: mask and entry disagree"));
                }
                any |= allowed;
            }
            if v % 64 != 0 && self.masks[s * w + w - 1] >> (v % 64) != 0 {
                return bad(format!("state {s}: mask bits past the vocabulary"));
            }
            if s != 0 && !any {
                return bad(format!("live state {s} allows no token"));
            }
            if let (Some(eos), true) = (self.eos, self.boundary[s]) {
                if !self.allows(s as u16, eos) {
                    return bad(format!("EOS not allowed at boundary state {s}"));
                }
            }
        }
        Ok(())
    }

    /// Vocabulary size.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }
    /// Number of states, dead state (0) included.
    pub fn num_states(&self) -> usize {
        self.states
    }
    /// The start state (the empty word).
    pub fn start(&self) -> u16 {
        self.start
    }
    /// The EOS token.
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }
    /// The PAD token.
    pub fn pad(&self) -> u32 {
        self.pad
    }
    /// Default word length limit in tokens.
    pub fn max_word_len(&self) -> u16 {
        self.max_word_len
    }
    /// Whether the blob uses the direct layout (else token classes).
    pub fn is_direct(&self) -> bool {
        self.direct
    }
    /// Number of token classes.
    pub fn num_token_classes(&self) -> usize {
        self.classes
    }
    /// The class of each token.
    pub fn token_classes(&self) -> &[u32] {
        &self.class_of
    }
    /// `(next state, stop)` for `state` and `token`.
    pub fn step(&self, state: u16, token: u32) -> (u16, bool) {
        let e = self.entries[state as usize * self.classes + self.class_of[token as usize] as usize];
        (welt_format::next_state(e), welt_format::stops(e))
    }
    /// Whether `token` is allowed in `state`.
    pub fn allows(&self, state: u16, token: u32) -> bool {
        let w = self.vocab_size.div_ceil(64);
        self.masks[state as usize * w + token as usize / 64] >> (token % 64) & 1 == 1
    }
    /// The mask row of `state` as u64 words.
    pub fn mask_words(&self, state: u16) -> &[u64] {
        let w = self.vocab_size.div_ceil(64);
        &self.masks[state as usize * w..(state as usize + 1) * w]
    }
    /// Whether `state` is at a character boundary.
    pub fn is_boundary(&self, state: u16) -> bool {
        self.boundary[state as usize]
    }
    /// The byte classes of the byte automaton (class of each byte value).
    pub fn byte_classes(&self) -> &[u8; 256] {
        &self.byte_class
    }
    /// Sizes.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }
    /// One line saying what these tables were generated from (used in generated-file headers).
    pub fn provenance(&self) -> &str {
        &self.provenance
    }

    /// The binary form, as documented in this module.
    pub fn to_blob(&self) -> Vec<u8> {
        let header = welt_format::Header {
            vocab: self.vocab_size as u32,
            states: self.states as u32,
            start: u32::from(self.start),
            eos: self.eos.unwrap_or(NO_EOS),
            pad: self.pad,
            max_word_len: u32::from(self.max_word_len),
            classes: if self.direct { 0 } else { self.classes as u32 },
        };
        let mut out = Vec::with_capacity(self.stats.blob_bytes);
        out.extend_from_slice(&header.to_bytes());
        if self.direct {
            for s in 0..self.states {
                for &k in &self.class_of {
                    out.extend_from_slice(&self.entries[s * self.classes + k as usize].to_le_bytes());
                }
            }
        } else {
            for &k in &self.class_of {
                out.extend_from_slice(&(k as u16).to_le_bytes());
            }
            for e in &self.entries {
                out.extend_from_slice(&e.to_le_bytes());
            }
        }
        for m in &self.masks {
            out.extend_from_slice(&m.to_le_bytes());
        }
        let mut bits = vec![0u8; self.states.div_ceil(8)];
        for (s, &b) in self.boundary.iter().enumerate() {
            bits[s / 8] |= u8::from(b) << (s % 8);
        }
        out.extend_from_slice(&bits);
        debug_assert_eq!(out.len(), self.stats.blob_bytes);
        debug_assert_eq!(Ok(out.len()), header.sections().map(|s| s.end));
        out
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "vocabulary:           {} tokens", self.vocab_size)?;
        writeln!(
            f,
            "byte automaton:       {} states before minimization, {} after (Moore), {} byte classes",
            self.byte_states_before_minimization, self.byte_states, self.byte_classes
        )?;
        writeln!(
            f,
            "token automaton:      {} states (dead state included), {} token classes",
            self.states, self.token_classes
        )?;
        writeln!(f, "layout:               {}", self.layout)?;
        writeln!(f, "entry table:          {} bytes", self.entry_bytes)?;
        writeln!(f, "mask table:           {} bytes", self.mask_bytes)?;
        write!(f, "blob:                 {} bytes", self.blob_bytes)
    }
}
