//! The runtime's error type: bad input is an `Err`, never a panic.

use std::fmt;

/// What went wrong. Match on [`Error::kind`]; the `Display` text is meant for a person.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
}

/// The kinds of [`Error`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
#[allow(missing_docs)] // the fields are named for what they hold; each variant says the rest
pub enum ErrorKind {
    /// A table blob failed validation (what failed is in the message).
    InvalidTables(&'static str),
    /// A token id is not in the vocabulary. `at` is the row of a batch or the index in a prefix.
    TokenOutOfRange { token: u32, vocab: u32, at: usize },
    /// A token that the current state's mask forbids (not valid UTF-8 there, or a special
    /// token). `at` is the row of a batch or the index in a prefix.
    TokenNotAllowed { token: u32, state: u16, at: usize },
    /// A step on a sequence whose word is already complete.
    WordComplete,
    /// A prefix whose word is complete at index `at`: there is nothing to continue.
    PrefixCompletesWord { at: usize },
    /// A prefix longer than the word length limit.
    PrefixTooLong { len: usize, max: u32 },
    /// A batch of zero rows.
    EmptyBatch,
    /// A batch of more rows than memory can hold.
    BatchTooLarge { rows: usize },
    /// A batch of more rows than the GPU kernels count (`limit`: `u32::MAX`).
    TooManyRows { rows: usize, limit: u32 },
    /// A word length limit of zero.
    ZeroWordLength,
    /// A per-row buffer whose length is not the batch size.
    BatchSizeMismatch { expected: usize, got: usize },
    /// A logits buffer of the wrong length for the batch, vocabulary and row stride.
    LogitsSize { expected: usize, got: usize },
    /// A row stride shorter than the vocabulary.
    StrideTooSmall { stride: usize, vocab: u32 },
    /// A row index past the batch.
    RowOutOfRange { row: usize, batch: usize },
    /// A model whose vocabulary is not the decoder's.
    VocabMismatch { decoder: usize, model: usize },
    /// Sampling settings out of their range (which one is in the message); see
    /// `Sampler::check`.
    InvalidSampler(&'static str),
    /// A word length limit above what the batch can count (`limit`: 65,535 on the GPU).
    WordLengthTooLong { max_len: u32, limit: u32 },
}

impl Error {
    pub(crate) const fn new(kind: ErrorKind) -> Error {
        Error { kind }
    }
    /// The kind of error.
    pub const fn kind(&self) -> ErrorKind {
        self.kind
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ErrorKind::InvalidTables(why) => write!(f, "invalid welt tables: {why}"),
            ErrorKind::TokenOutOfRange { token, vocab, at } => {
                write!(
                    f,
                    "token {token} at {at} is outside the vocabulary of {vocab} tokens"
                )
            }
            ErrorKind::TokenNotAllowed { token, state, at } => write!(
                f,
                "token {token} at {at} is not allowed in state {state} (its mask forbids it)"
            ),
            ErrorKind::WordComplete => write!(f, "the word is already complete"),
            ErrorKind::PrefixCompletesWord { at } => {
                write!(
                    f,
                    "the prefix completes the word at token {at}: nothing is left to continue"
                )
            }
            ErrorKind::PrefixTooLong { len, max } => {
                write!(
                    f,
                    "the prefix has {len} tokens, more than the word length limit of {max}"
                )
            }
            ErrorKind::EmptyBatch => write!(f, "a batch needs at least one row"),
            ErrorKind::BatchTooLarge { rows } => {
                write!(f, "a batch of {rows} rows does not fit in memory")
            }
            ErrorKind::TooManyRows { rows, limit } => {
                write!(f, "a batch of {rows} rows is more than the {limit} rows the GPU kernels count")
            }
            ErrorKind::ZeroWordLength => write!(f, "the word length limit must be at least 1"),
            ErrorKind::BatchSizeMismatch { expected, got } => {
                write!(f, "expected one value per row ({expected} rows), got {got}")
            }
            ErrorKind::LogitsSize { expected, got } => {
                write!(f, "the logits buffer has {got} elements, expected {expected}")
            }
            ErrorKind::StrideTooSmall { stride, vocab } => {
                write!(f, "row stride {stride} is shorter than the vocabulary ({vocab})")
            }
            ErrorKind::RowOutOfRange { row, batch } => {
                write!(f, "row {row} is past the batch of {batch} rows")
            }
            ErrorKind::VocabMismatch { decoder, model } => write!(
                f,
                "the model has a vocabulary of {model} tokens but the decoder has {decoder}: they must be the same"
            ),
            ErrorKind::InvalidSampler(why) => write!(f, "invalid sampling settings: {why}"),
            ErrorKind::WordLengthTooLong { max_len, limit } => write!(
                f,
                "a word length limit of {max_len} tokens is more than this batch can count (at most {limit})"
            ),
        }
    }
}

impl std::error::Error for Error {}
