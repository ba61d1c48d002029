//! `welt query`: the automaton's mask and stop flag after given byte sequences, as JSONL.
//!
//! Input: one JSON object per line with a `"bytes"` array of integers 0..=255 (other fields
//! are ignored, so the oracle file can be fed as it is; blank lines are skipped). Output: one
//! line per input, `{"bytes": [...], "mask": "<64 hex>", "stop": bool, "reachable": bool}`:
//!
//! - `mask`: the allowed next bytes after the sequence, little-endian hex (SEMANTICS.md);
//! - `stop`: the stop flag of the last byte (the word rule, or the byte is EOS 0x03);
//! - `reachable`: whether welt could have generated the sequence — each byte allowed at its
//!   step and no stop before the last byte.
//!
//! Any byte array is valid input. For an unreachable one the automaton runs on: after a stop
//! it continues as if the row had not stopped, and after a byte its mask forbids it is in the
//! dead state, whose mask is empty (all zeros) and whose stop flag is false.

use std::fmt;
use std::io::{BufRead, Write};

use serde_json::Value;
use welt_runtime::Tables;

/// A malformed input line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for QueryError {}

/// The answer for one sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The allowed next tokens as `ceil(V / 8)` little-endian bytes.
    pub mask: Vec<u8>,
    /// The stop flag of the last token.
    pub stop: bool,
    /// Whether welt could have generated the sequence.
    pub reachable: bool,
}

/// Mask, stop and reachability after `tokens` (token ids; bytes for the byte decoder).
pub fn answer(tables: &Tables<'_>, tokens: &[u32]) -> Result<Answer, welt_runtime::Error> {
    let walk = tables.walk(tokens)?;
    Ok(Answer {
        mask: tables.mask(walk.state).as_bytes().to_vec(),
        stop: walk.stop,
        reachable: walk.reachable,
    })
}

/// Parses one input line into its byte array.
pub fn parse_line(text: &str) -> Result<Vec<u8>, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let arr = v
        .as_object()
        .ok_or("expected a JSON object")?
        .get("bytes")
        .ok_or("missing \"bytes\"")?
        .as_array()
        .ok_or("\"bytes\" must be an array")?;
    arr.iter()
        .enumerate()
        .map(|(i, x)| {
            x.as_u64()
                .filter(|&b| b <= 255)
                .map(|b| b as u8)
                .ok_or_else(|| format!("\"bytes\"[{i}] = {x} is not an integer in 0..=255"))
        })
        .collect()
}

/// The output line for `bytes` (without the newline).
pub fn format_answer(bytes: &[u8], a: &Answer) -> String {
    let list: Vec<String> = bytes.iter().map(|b| b.to_string()).collect();
    format!(
        "{{\"bytes\":[{}],\"mask\":\"{}\",\"stop\":{},\"reachable\":{}}}",
        list.join(","),
        crate::to_hex(&a.mask),
        a.stop,
        a.reachable
    )
}

/// Answers every line of `input` into one output string. Reads everything first: on a
/// malformed line nothing is written and the error names the line.
pub fn run(tables: &Tables<'_>, input: impl BufRead) -> Result<String, Box<dyn std::error::Error>> {
    let mut out = String::new();
    for (i, line) in input.lines().enumerate() {
        let line = line.map_err(|e| QueryError {
            line: i + 1,
            message: format!("cannot read: {e}"),
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let bytes = parse_line(&line).map_err(|message| QueryError { line: i + 1, message })?;
        let tokens: Vec<u32> = bytes.iter().map(|&b| u32::from(b)).collect();
        let a = answer(tables, &tokens).map_err(|e| QueryError {
            line: i + 1,
            message: e.to_string(),
        })?;
        out.push_str(&format_answer(&bytes, &a));
        out.push('\n');
    }
    Ok(out)
}

/// [`run`], then writes the whole answer.
pub fn run_to(
    tables: &Tables<'_>,
    input: impl BufRead,
    mut output: impl Write,
) -> Result<(), Box<dyn std::error::Error>> {
    let out = run(tables, input)?;
    output.write_all(out.as_bytes())?;
    output.flush()?;
    Ok(())
}
