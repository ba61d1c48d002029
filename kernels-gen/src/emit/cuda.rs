//! The CUDA emitter: a `.cu` source with the decoder's tables and `extern "C"` kernels, and a C
//! header describing the kernel ABI.
//!
//! The kernels and the header are C files next to this one, `cuda/kernels.cu` and
//! `cuda/welt_kernels.h`, embedded with `include_str!`; only the decoder's sizes and tables are
//! generated here.
//!
//! Design:
//!
//! - **State stays on the device.** Per row the device holds the automaton state, the word
//!   length and two flags (stopped, finished); the host never reads them per token.
//! - **Tables**: when entries and masks fit in 60 KiB they are emitted as `__constant__` data
//!   (the default decoder: 17 KiB); mask reads are uniform across a row's block, which is what
//!   the constant cache broadcasts. Larger decoders read the same blob layout from global
//!   memory through the read-only cache, uploaded once from the runtime's tables. Either way
//!   the bytes come from the same [`Tables`], so the CPU and the GPU cannot disagree.
//! - **Kernels**, all bounds-checked against the batch size, the vocabulary and the row stride,
//!   with 64-bit indices, and each looping over the rows its grid does not cover (a grid
//!   dimension is bounded: `gridDim.y` by 65,535), so any `u32` batch runs:
//!   - `welt_mask_{f32,f16,bf16}`: `-inf` into the forbidden logits of every running row, at
//!     a cost that follows the forbidden tokens rather than V: a warp takes 32 mask words
//!     (2,048 tokens), one word per lane in one coalesced load, and a ballot tells it which
//!     words forbid anything; a fully allowed word is never touched, and each other word is
//!     written by the whole warp in two passes of 32 consecutive tokens (coalesced stores,
//!     a lane writing only where its token is forbidden and below V). Half types are written
//!     as bit patterns, so no CUDA header is needed;
//!   - `welt_advance`: next state, stop flag, length limit and PAD for finished rows, from the
//!     sampled tokens;
//!   - `welt_step_{f32,f16,bf16}`: the fused step, one block per row: mask, choose (greedy,
//!     or seeded temperature / top-k / top-p sampling with Philox-4x32-10, a counter-based RNG
//!     keyed by seed, row and step, so runs reproduce), advance, stop, length limit, PAD,
//!     write the next input token, and count running rows in device memory (the "all rows
//!     done" flag), with no host synchronization.
//! - The ABI (`welt_tables`, `welt_step_params`, flag bits) is in the header, which the source
//!   includes verbatim; the Rust side gets its declarations from that header with bindgen.

use std::fmt::Write;

use crate::Tables;

/// Largest table size (entries + masks) emitted as `__constant__` data.
pub const CONSTANT_LIMIT_BYTES: usize = 60 << 10;

/// The C header of the kernel ABI (shared by every decoder).
pub fn header(tables: &Tables) -> String {
    let mut out = super::header(tables, "CUDA kernel ABI header");
    out.push('\n');
    out.push_str(ABI);
    out
}

/// The kernel ABI header as written (`cuda/welt_kernels.h`), without the generated-file
/// header: what bindgen reads in welt-runtime's build script.
pub const ABI: &str = include_str!("cuda/welt_kernels.h");

/// The kernels (`cuda/kernels.cu`). Its first two lines are `#include`s that [`source`]
/// replaces: the ABI header by its text (NVRTC compiles one self-contained source) and
/// `welt_decoder.cuh`, which exists nowhere, by this decoder's sizes and tables.
const KERNELS: &str = include_str!("cuda/kernels.cu");
const INCLUDE_ABI: &str = "#include \"welt_kernels.h\"";
const INCLUDE_DECODER: &str = "#include \"welt_decoder.cuh\"";

/// The `.cu` source for `tables`.
pub fn source(tables: &Tables) -> String {
    let mut out = super::header(tables, "CUDA kernels");
    let v = tables.vocab_size();
    let n = tables.num_states();
    let direct = tables.is_direct();
    let width = if direct { v } else { tables.num_token_classes() };
    let mask_words = v.div_ceil(64);
    let table_bytes = n * width * 2 + if direct { 0 } else { v * 2 } + n * mask_words * 8;
    let constant = table_bytes <= CONSTANT_LIMIT_BYTES;
    let mut decoder = format_constants();
    let _ = write!(
        decoder,
        r#"
/* ---- this decoder ---- */
#define WELT_V {v}u
#define WELT_STATES {n}u
#define WELT_WIDTH {width}u             /* entries per state */
#define WELT_DIRECT {direct}
#define WELT_MASK_WORDS {mask_words}u
#define WELT_PAD {pad}u
#define WELT_TABLES_IN_CONSTANT {constant}
"#,
        direct = u8::from(direct),
        pad = tables.pad(),
        constant = u8::from(constant),
    );
    if constant {
        decoder.push_str(&constant_tables(tables, width));
    }
    out.push('\n');
    splice(
        &mut out,
        KERNELS,
        &[(INCLUDE_ABI, ABI), (INCLUDE_DECODER, &decoder)],
    );
    out
}

/// The table format's constants the kernels use, printed from `welt_format` so that the
/// writer, the reader and the kernels share one definition.
fn format_constants() -> String {
    let forbidden = welt_format::entry(welt_format::DEAD, false);
    format!(
        r#"
/* ---- welt's table format (welt_format) ---- */
#define WELT_STOP_BIT {stop:#06x}u        /* entry bit: the transition completes the word */
#define WELT_NEXT_STATE {next:#06x}u      /* entry bits: the next state */
#define WELT_DEAD {dead}u                 /* the dead state: nothing leaves it */
#define WELT_FORBIDDEN_ENTRY {forbidden:#06x}u /* the entry of a forbidden token: to the dead state, no stop */
"#,
        stop = welt_format::STOP_BIT,
        next = welt_format::NEXT_STATE,
        dead = welt_format::DEAD,
    )
}

/// Appends `template` to `out` with every line that starts with one of the `#include`s
/// replaced, whole, by its text.
fn splice(out: &mut String, template: &str, includes: &[(&str, &str)]) {
    for line in template.split_inclusive('\n') {
        match includes.iter().find(|(inc, _)| line.starts_with(inc)) {
            Some((_, text)) => out.push_str(text),
            None => out.push_str(line),
        }
    }
}

fn constant_tables(tables: &Tables, width: usize) -> String {
    let blob = tables.to_blob();
    let n = tables.num_states();
    let v = tables.vocab_size();
    let mut out = String::new();
    // Read the blob back rather than the in-memory form: the GPU gets exactly its bytes.
    let entries_at = crate::tables::HEADER_LEN + if tables.is_direct() { 0 } else { 2 * v };
    let u16_at = |i: usize| u16::from_le_bytes([blob[i], blob[i + 1]]);
    if !tables.is_direct() {
        let _ = write!(out, "__constant__ unsigned short welt_class_of[{v}] = {{");
        for t in 0..v {
            let _ = write!(
                out,
                "{}{}",
                if t % 16 == 0 { "\n  " } else { "" },
                u16_at(crate::tables::HEADER_LEN + 2 * t)
            );
            out.push(',');
        }
        out.push_str("\n};\n");
    }
    let _ = write!(
        out,
        "__constant__ unsigned short welt_entries[{}] = {{",
        n * width
    );
    for i in 0..n * width {
        let _ = write!(
            out,
            "{}0x{:04x},",
            if i % 16 == 0 { "\n  " } else { "" },
            u16_at(entries_at + 2 * i)
        );
    }
    out.push_str("\n};\n");
    let masks_at = entries_at + 2 * n * width;
    let w = v.div_ceil(64);
    let _ = write!(out, "__constant__ unsigned long long welt_masks[{}] = {{", n * w);
    for i in 0..n * w {
        let at = masks_at + 8 * i;
        let word = u64::from_le_bytes(blob[at..at + 8].try_into().expect("8 bytes"));
        let _ = write!(out, "{}0x{word:016x}ull,", if i % 4 == 0 { "\n  " } else { "" });
    }
    out.push_str("\n};\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each placeholder `#include` of `kernels.cu` is one line and is replaced; the source
    /// NVRTC compiles includes nothing, and the header's text appears once, whole.
    #[test]
    fn the_kernels_file_is_spliced_whole() {
        for inc in [INCLUDE_ABI, INCLUDE_DECODER] {
            assert_eq!(KERNELS.lines().filter(|l| l.starts_with(inc)).count(), 1, "{inc}");
        }
        let tables = crate::generate(&crate::DecoderSpec::utf8_bytes()).unwrap();
        let src = source(&tables);
        assert!(!src.contains("#include"));
        assert_eq!(src.matches(ABI).count(), 1);
        assert!(src.contains("\n/* ---- this decoder ---- */\n#define WELT_V 256u\n"));
        assert!(src.contains("\n/* ---- welt's table format (welt_format) ---- */\n"));
        assert!(header(&tables).ends_with(ABI));
    }

    /// The format's constants come from `welt_format`, printed once into the source: the
    /// kernels file defines none of them and spells no entry bit as a number.
    #[test]
    fn the_format_constants_are_welt_formats() {
        let tables = crate::generate(&crate::DecoderSpec::utf8_bytes()).unwrap();
        let src = source(&tables);
        for (name, value) in [
            ("WELT_STOP_BIT", u32::from(welt_format::STOP_BIT)),
            ("WELT_NEXT_STATE", u32::from(welt_format::NEXT_STATE)),
            ("WELT_DEAD", u32::from(welt_format::DEAD)),
            (
                "WELT_FORBIDDEN_ENTRY",
                u32::from(welt_format::entry(welt_format::DEAD, false)),
            ),
        ] {
            let define = format!("#define {name} ");
            let lines: Vec<&str> = src.lines().filter(|l| l.starts_with(&define)).collect();
            assert_eq!(lines.len(), 1, "{name}: {lines:?}");
            let number = lines[0][define.len()..].split_whitespace().next().unwrap();
            let number = number.trim_end_matches('u');
            let parsed = match number.strip_prefix("0x") {
                Some(hex) => u32::from_str_radix(hex, 16),
                None => number.parse(),
            };
            assert_eq!(parsed, Ok(value), "{}", lines[0]);
            assert!(!KERNELS.contains(&define), "kernels.cu defines {name} itself");
        }
        let numbers = KERNELS.split(|c: char| !c.is_ascii_alphanumeric());
        for n in numbers.map(|n| n.trim_end_matches(['u', 'U']).to_ascii_lowercase()) {
            assert!(
                !["0x8000", "0x7fff", "32768", "32767"].contains(&n.as_str()),
                "kernels.cu spells an entry bit as `{n}`"
            );
        }
        assert!(
            !KERNELS.contains("<< 15"),
            "kernels.cu shifts an entry bit into place"
        );
    }

    /// Where `logit / T` leaves f32 the step kernel chooses as `Sampler::choose` does: the
    /// largest *unscaled* logit, greedily. (Text-level: running the kernel needs a GPU, and
    /// `welt gpu-check` compares it with the CPU on such logits.) The fallback is taken when
    /// the scaled maximum is +inf or no scaled logit is left, and rescans with scale 1.
    #[test]
    fn the_step_kernel_falls_back_to_the_unscaled_argmax_where_scaling_overflows() {
        let body = KERNELS
            .split("__device__ void welt_step_row(")
            .nth(1)
            .and_then(|rest| rest.split("\n}\n").next())
            .expect("welt_step_row");
        let scaled = body
            .find("welt_largest<E>(p.tables, s, logits, lo, hi, inv_t, &best)")
            .expect("the scaled maximum");
        let test = body
            .find(
                "if (!greedy && (top == 0 || (unsigned)(top >> 32) == welt_key(__int_as_float(0x7f800000))))",
            )
            .expect("the overflow test: no scaled maximum, or +inf");
        let unscaled = body
            .find("top = welt_largest<E>(p.tables, s, logits, lo, hi, 1.0f, &best);")
            .expect("the unscaled rescan");
        let greedy = body[unscaled..].find("greedy = true;").map(|i| i + unscaled);
        let no_token = body.find("if (top == 0) {").expect("the no-token exit");
        assert!(
            scaled < test && test < unscaled && greedy.is_some_and(|g| g < no_token),
            "{body}"
        );
        assert!(
            body[greedy.unwrap()..].find("if (!greedy) {").is_some(),
            "sampling is skipped after the fallback"
        );
    }

    /// A grid dimension is bounded (gridDim.y by 65,535): no kernel may take its row from a
    /// block index alone, every one loops from it over the batch.
    #[test]
    fn every_kernel_loops_over_the_rows_past_the_grid() {
        let rows: Vec<&str> = KERNELS
            .lines()
            .map(str::trim)
            .filter(|l| l.contains("blockIdx") && l.contains("row = "))
            .collect();
        assert_eq!(rows.len(), 3, "{rows:#?}"); // mask, advance, step
        for l in rows {
            assert!(
                l.starts_with("for (size_t row = ") && l.contains("row < ") && l.contains("row += "),
                "a row taken from a grid index without a loop: `{l}`"
            );
        }
    }
}
