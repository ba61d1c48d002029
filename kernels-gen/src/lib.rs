//! kernels-gen turns a tokenizer and WeLT's word rule into one minimal automaton and emits it
//! as tables (Rust source, a CUDA source and its C header) so that a decode loop does one table lookup per token.
//!
//! It runs at build time only: inside the `#[welt_decoder]` proc macro (`welt-macros`, a shim
//! over [`expand()`]) or a build script ([`build::DecoderBuild`]), and in the `welt` CLI. All
//! three read their options through one front end, [`DecoderOptions`]. Nothing here is linked
//! into a program that uses `welt-runtime`.
//!
//! The pipeline, one module per step:
//!
//! 1. [`spec`]: the vocabulary (token id -> bytes, EOS/PAD roles) and the word rule;
//! 2. [`byte_dfa`]: strict UTF-8 (Unicode Table 3-7) × the word rule over bytes, with
//!    multi-byte spaces resolved byte by byte, minimized by Moore's partition refinement
//!    ([`minimize`]), and its byte classes;
//! 3. [`lift`]: the automaton over tokens — walk each token's bytes from each state —
//!    minimized again;
//! 4. [`Tables`]: one entry per (state, token) holding next state and stop flag, one mask
//!    bitset per state, with [`Tables::validate`] and a fixed little-endian binary form;
//! 5. [`emit`]: Rust (`quote`), statistics, Graphviz DOT.
//!
//! ```
//! let tables = kernels_gen::generate(&kernels_gen::DecoderSpec::utf8_bytes()).unwrap();
//! // "é" is C3 A9: after C3 only A9's range is allowed, and nothing stops yet.
//! let (s, stop) = tables.step(tables.start(), 0xC3);
//! assert!(!stop && !tables.allows(s, b'a' as u32) && tables.allows(s, 0xA9));
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod build;
pub mod byte_dfa;
pub mod emit;
mod expand;
pub mod lift;
pub mod minimize;
pub mod options;
pub mod rng;
pub mod spec;
#[cfg(feature = "tokenizers")]
pub mod synthetic;
pub mod tables;
#[cfg(feature = "tokenizers")]
pub mod tokenizer;
pub mod unicode;
pub mod utf8;

use std::fmt;

pub use expand::expand;
pub use options::DecoderOptions;
pub use spec::{DecoderSpec, Layout, Token, Vocabulary, WordRule};
pub use tables::{Stats, Tables};

/// Generates the tables of a decoder.
pub fn generate(spec: &DecoderSpec) -> Result<Tables, Error> {
    if spec.max_word_len == 0 {
        return Err(Error::new("the maximum word length must be at least 1"));
    }
    let byte = byte_dfa::ByteDfa::build_forbidding(&spec.rule, spec.vocab.forbidden_chars());
    let token = lift::lift(&byte, &spec.vocab);
    Tables::new(spec, &byte, &token)
}

/// What went wrong while generating. The message is meant for a person (the proc macro shows
/// it as a compile error at the offending attribute).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    msg: String,
    subject: Subject,
}

/// Which input an [`Error`] is about, so a caller (the proc macro) can point at it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Subject {
    /// The spec as a whole (e.g. the automaton is too large).
    Spec,
    /// The tokenizer file (missing, malformed, unsupported).
    Tokenizer,
    /// The named EOS token.
    Eos,
    /// The named PAD token.
    Pad,
    /// The `i`-th named stop token.
    StopToken(usize),
    /// The word length limit.
    MaxWordLen,
    /// The entry table layout.
    Layout,
    /// The leading-whitespace option.
    ForbidLeadingWhitespace,
}

impl Subject {
    /// The option this is about, as [`options::OPTION_NAMES`] spells it (`None` for the spec
    /// as a whole).
    pub fn option_name(self) -> Option<&'static str> {
        Some(match self {
            Subject::Spec => return None,
            Subject::Tokenizer => "tokenizer",
            Subject::Eos => "eos",
            Subject::Pad => "pad",
            Subject::StopToken(_) => "stop_token",
            Subject::MaxWordLen => "max_word_len",
            Subject::Layout => "layout",
            Subject::ForbidLeadingWhitespace => "forbid_leading_whitespace",
        })
    }
}

impl Error {
    pub(crate) fn new(msg: impl Into<String>) -> Error {
        Error {
            msg: msg.into(),
            subject: Subject::Spec,
        }
    }
    pub(crate) fn about(mut self, subject: Subject) -> Error {
        self.subject = subject;
        self
    }
    /// The message.
    pub fn message(&self) -> &str {
        &self.msg
    }
    /// Which input the error is about.
    pub fn subject(&self) -> Subject {
        self.subject
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Error {}
