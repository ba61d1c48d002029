//! Statistics as text.

use crate::Tables;

/// The statistics report, with the generated-file header.
pub fn emit(tables: &Tables) -> String {
    format!("{}{}\n", super::header(tables, "statistics"), tables.stats())
}
