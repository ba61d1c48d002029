//! Statistics as text.

use crate::{Tables, Vocabulary};

/// The statistics report, with the generated-file header.
pub fn emit(tables: &Tables) -> String {
    format!("{}{}\n", super::header(tables, "statistics"), tables.stats())
}

/// [`emit`], followed by which tokens of `vocab` (the one `tables` were generated from) are
/// EOS, PAD and stop tokens, and how they were chosen.
pub fn emit_with_roles(tables: &Tables, vocab: &Vocabulary) -> String {
    format!("{}special tokens:       {}\n", emit(tables), vocab.roles())
}
