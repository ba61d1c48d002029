//! Graphviz DOT: one node per live state (double circle at character boundaries), one edge per
//! (target, stop) pair labelled with the tokens that take it, as hex ranges for byte-sized
//! vocabularies and as a count otherwise. Stopping edges are bold red and end in a `stop` node
//! (a stop is terminal: it leads to the dead state). The dead state and the forbidden tokens
//! are left out.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::Tables;

/// The automaton as a DOT digraph.
pub fn emit(tables: &Tables) -> String {
    let mut out = super::header(tables, "Graphviz DOT");
    let v = tables.vocab_size() as u32;
    out.push_str("digraph welt {\n  rankdir=LR;\n  node [shape=circle, fontname=\"monospace\"];\n");
    let _ = writeln!(out, "  init [shape=point];\n  init -> s{};", tables.start());
    out.push_str("  stop [shape=box, label=\"stop\"];\n");
    for s in 1..tables.num_states() as u16 {
        let shape = if tables.is_boundary(s) {
            "doublecircle"
        } else {
            "circle"
        };
        let _ = writeln!(out, "  s{s} [shape={shape}, label=\"{s}\"];");
        let mut edges: BTreeMap<(u16, bool), Vec<u32>> = BTreeMap::new();
        for t in 0..v {
            let (next, stop) = tables.step(s, t);
            if next != 0 || stop {
                edges.entry((next, stop)).or_default().push(t);
            }
        }
        for ((next, stop), toks) in edges {
            let label = if v <= 256 {
                ranges(&toks)
            } else {
                format!("{} tokens", toks.len())
            };
            let style = if stop {
                ", color=red, fontcolor=red, style=bold"
            } else {
                ""
            };
            let stop_mark = if stop { " / stop" } else { "" };
            let to = if next == 0 {
                "stop".to_string()
            } else {
                format!("s{next}")
            };
            let _ = writeln!(out, "  s{s} -> {to} [label=\"{label}{stop_mark}\"{style}];");
        }
    }
    out.push_str("}\n");
    out
}

fn ranges(toks: &[u32]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let mut j = i;
        while j + 1 < toks.len() && toks[j + 1] == toks[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            format!("{:02x}", toks[i])
        } else {
            format!("{:02x}-{:02x}", toks[i], toks[j])
        });
        i = j + 1;
    }
    parts.join(",")
}
