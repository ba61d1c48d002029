//! The CUDA emitter: a `.cu` source with the decoder's tables and `extern "C"` kernels, and a C
//! header describing the kernel ABI.
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
//! - **Kernels**, all bounds-checked against the batch size, the vocabulary and the row stride:
//!   - `welt_mask_{f32,f16,bf16}`: `-inf` into the forbidden logits of every running row, one
//!     thread per token with coalesced stores (half types are written as bit patterns, so no
//!     CUDA header is needed);
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
    out.push_str(ABI);
    out
}

/// The ABI text without the generated-file header (what the `.cu` source embeds).
pub const ABI: &str = r#"
#ifndef WELT_KERNELS_H
#define WELT_KERNELS_H

/* Row flags (one byte per row). */
#define WELT_FLAG_STOPPED 1u  /* the word is complete (rule matched or EOS) */
#define WELT_FLAG_FINISHED 2u /* stopped, or reached the word length limit */

/* Error bits (welt_step_params.error, welt_advance's error word). */
#define WELT_ERR_TOKEN_RANGE 1u   /* a sampled token id was >= the vocabulary */
#define WELT_ERR_NOT_ALLOWED 2u   /* a sampled token was forbidden by the mask */
#define WELT_ERR_NO_TOKEN 4u      /* a running row had no allowed token with finite logit */

/* Device pointers to the tables, in the layout of welt's table blob (little-endian u16/u64).
   NULL where the decoder's tables are compiled in as __constant__ data. */
typedef struct welt_tables {
    const unsigned short *entries;      /* states x width entries: next | stop << 15 */
    const unsigned short *class_of;     /* V token classes, or NULL in the direct layout */
    const unsigned long long *masks;    /* states x mask_words bitsets */
} welt_tables;

/* Arguments of the fused step kernels (passed by value). */
typedef struct welt_step_params {
    welt_tables tables;
    void *logits;                     /* [batch x row_stride] f32, f16 or bf16 */
    unsigned long long row_stride;    /* elements between rows, >= V */
    unsigned int batch;
    unsigned int max_word_len;        /* tokens */
    unsigned short *states;           /* [batch] automaton state */
    unsigned short *lengths;          /* [batch] tokens in the current word */
    unsigned char *flags;             /* [batch] WELT_FLAG_* */
    unsigned int *next_tokens;        /* [batch] out: chosen token, PAD for finished rows */
    unsigned int *running;            /* [1] rows not finished; 0 = all rows done */
    unsigned int *error;              /* [1] WELT_ERR_* bits, or'ed */
    float temperature;                /* <= 0: greedy (argmax, lowest id on ties) */
    unsigned int top_k;               /* 0: off */
    float top_p;                      /* >= 1: off */
    unsigned long long seed;          /* Philox key */
    unsigned int *draws;              /* [batch] per-row count of random draws: with the row,
                                         the Philox counter, so a replayed graph never repeats */
} welt_step_params;

#endif /* WELT_KERNELS_H */
"#;

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
    out.push_str(ABI);
    let _ = write!(
        out,
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
        out.push_str(&constant_tables(tables, width));
    }
    out.push_str(KERNELS);
    out
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

const KERNELS: &str = r#"
/* ---- table access ---- */
#if WELT_TABLES_IN_CONSTANT
#  if WELT_DIRECT
#    define WELT_COL(t, tok) (tok)
#  else
#    define WELT_COL(t, tok) ((unsigned)welt_class_of[(tok)])
#  endif
#  define WELT_ENTRY(t, s, tok) welt_entries[(unsigned)(s) * WELT_WIDTH + WELT_COL(t, tok)]
#  define WELT_MASK(t, s, w) welt_masks[(unsigned)(s) * WELT_MASK_WORDS + (w)]
#else
#  if WELT_DIRECT
#    define WELT_COL(t, tok) (tok)
#  else
#    define WELT_COL(t, tok) ((unsigned)__ldg(&(t).class_of[(tok)]))
#  endif
#  define WELT_ENTRY(t, s, tok) __ldg(&(t).entries[(size_t)(s) * WELT_WIDTH + WELT_COL(t, tok)])
#  define WELT_MASK(t, s, w) __ldg(&(t).masks[(size_t)(s) * WELT_MASK_WORDS + (w)])
#endif

#define WELT_STOP_BIT 0x8000u
#define WELT_BLOCK 256

/* Element types: the value written for a forbidden token, and a conversion to float. Half
   types are handled as bits so that no CUDA header is needed. */
struct welt_f32 { typedef float T; };
struct welt_f16 { typedef unsigned short T; };
struct welt_bf16 { typedef unsigned short T; };

__device__ __forceinline__ void welt_set_neg_inf(float *p) { *p = __int_as_float(0xff800000); }
__device__ __forceinline__ void welt_set_neg_inf_f16(unsigned short *p) { *p = 0xfc00; }
__device__ __forceinline__ void welt_set_neg_inf_bf16(unsigned short *p) { *p = 0xff80; }

__device__ __forceinline__ float welt_to_float(welt_f32, float x) { return x; }
__device__ __forceinline__ float welt_to_float(welt_f16, unsigned short x) {
    float f;
    asm("{ cvt.f32.f16 %0, %1; }" : "=f"(f) : "h"(x));
    return f;
}
__device__ __forceinline__ float welt_to_float(welt_bf16, unsigned short x) {
    return __int_as_float(((unsigned)x) << 16);
}
__device__ __forceinline__ void welt_neg_inf(welt_f32, float *p) { welt_set_neg_inf(p); }
__device__ __forceinline__ void welt_neg_inf(welt_f16, unsigned short *p) { welt_set_neg_inf_f16(p); }
__device__ __forceinline__ void welt_neg_inf(welt_bf16, unsigned short *p) { welt_set_neg_inf_bf16(p); }

/* ---- mask: grid (any x, batch), one thread per token, grid-stride over the row ----
   Consecutive threads own consecutive tokens, so the stores of a warp are coalesced and the
   mask word they test is the same for 64 tokens (one cached load). Only forbidden tokens are
   written; the logits are never read. */
template <typename E>
__device__ void welt_mask_impl(welt_tables t, typename E::T *logits, unsigned long long row_stride,
                               const unsigned short *states, const unsigned char *flags,
                               unsigned int batch) {
    const unsigned row = blockIdx.y;
    if (row >= batch || row_stride < WELT_V) return;
    if (flags[row] & WELT_FLAG_FINISHED) return;
    const unsigned short s = states[row];
    if (s >= WELT_STATES) return;
    typename E::T *row_logits = logits + (size_t)row * row_stride;
    for (unsigned tok = blockIdx.x * blockDim.x + threadIdx.x; tok < WELT_V; tok += gridDim.x * blockDim.x) {
        if (!((WELT_MASK(t, s, tok >> 6) >> (tok & 63)) & 1ull)) welt_neg_inf(E(), row_logits + tok);
    }
}

extern "C" __global__ void welt_mask_f32(welt_tables t, float *logits, unsigned long long row_stride,
                                         const unsigned short *states, const unsigned char *flags,
                                         unsigned int batch) {
    welt_mask_impl<welt_f32>(t, logits, row_stride, states, flags, batch);
}
extern "C" __global__ void welt_mask_f16(welt_tables t, unsigned short *logits, unsigned long long row_stride,
                                         const unsigned short *states, const unsigned char *flags,
                                         unsigned int batch) {
    welt_mask_impl<welt_f16>(t, logits, row_stride, states, flags, batch);
}
extern "C" __global__ void welt_mask_bf16(welt_tables t, unsigned short *logits, unsigned long long row_stride,
                                          const unsigned short *states, const unsigned char *flags,
                                          unsigned int batch) {
    welt_mask_impl<welt_bf16>(t, logits, row_stride, states, flags, batch);
}

/* ---- advance one row with its token (shared by welt_advance and the fused step) ---- */
__device__ __forceinline__ unsigned welt_advance_row(welt_tables t, unsigned row, unsigned tok,
                                                     unsigned max_word_len, unsigned short *states,
                                                     unsigned short *lengths, unsigned char *flags,
                                                     unsigned int *running, unsigned int *error) {
    if (tok >= WELT_V) { atomicOr(error, WELT_ERR_TOKEN_RANGE); return WELT_PAD; }
    const unsigned short s = states[row];
    const unsigned short e = s < WELT_STATES ? WELT_ENTRY(t, s, tok) : 0;
    const unsigned short next = e & ~WELT_STOP_BIT;
    /* Entry 0 is a forbidden token; a stop leads to state 0 with the stop bit, and is allowed. */
    if (e == 0) { atomicOr(error, WELT_ERR_NOT_ALLOWED); return WELT_PAD; }
    const unsigned short len = lengths[row] + 1;
    states[row] = next;
    lengths[row] = len;
    const bool stop = (e & WELT_STOP_BIT) != 0;
    if (stop || len >= max_word_len) {
        flags[row] = (unsigned char)((stop ? WELT_FLAG_STOPPED : 0u) | WELT_FLAG_FINISHED);
        if (running) atomicSub(running, 1u);
    }
    return tok;
}

/* ---- advance: one thread per row ---- */
extern "C" __global__ void welt_advance(welt_tables t, const unsigned int *tokens, unsigned int *next_tokens,
                                        unsigned short *states, unsigned short *lengths, unsigned char *flags,
                                        unsigned int batch, unsigned int max_word_len, unsigned int *running,
                                        unsigned int *error) {
    const unsigned row = blockIdx.x * blockDim.x + threadIdx.x;
    if (row >= batch) return;
    if (flags[row] & WELT_FLAG_FINISHED) { next_tokens[row] = WELT_PAD; return; }
    next_tokens[row] = welt_advance_row(t, row, tokens[row], max_word_len, states, lengths, flags, running, error);
}

/* ---- Philox-4x32-10 (Salmon et al., SC'11): counter (row, draw) keyed by the seed ---- */
__device__ __forceinline__ float welt_uniform(unsigned long long seed, unsigned row, unsigned draw) {
    unsigned c0 = row, c1 = draw, c2 = 0, c3 = 0x77656c74u; /* "welt" */
    unsigned k0 = (unsigned)seed, k1 = (unsigned)(seed >> 32);
    #pragma unroll
    for (int i = 0; i < 10; ++i) {
        const unsigned hi0 = __umulhi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
        const unsigned hi1 = __umulhi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
        c0 = hi1 ^ c1 ^ k0; c1 = lo1; c2 = hi0 ^ c3 ^ k1; c3 = lo0;
        k0 += 0x9E3779B9u; k1 += 0xBB67AE85u;
    }
    return (float)(c0 >> 8) * (1.0f / 16777216.0f); /* [0, 1) with 24 random bits */
}

/* Order-preserving key of a float (larger float -> larger key). */
__device__ __forceinline__ unsigned welt_key(float x) {
    const unsigned u = __float_as_uint(x);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

__device__ __forceinline__ float welt_block_sum(float v, float *scratch) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = 0.0f;
    for (int i = 0; i < WELT_BLOCK / 32; ++i) v += scratch[i]; /* same order in every thread */
    return v;
}

__device__ __forceinline__ unsigned welt_block_count(unsigned v, unsigned *scratch) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = 0;
    for (int i = 0; i < WELT_BLOCK / 32; ++i) v += scratch[i];
    return v;
}

/* ---- the fused step: one block of WELT_BLOCK threads per row ----
   Thread i owns the contiguous tokens [i * chunk, (i + 1) * chunk), so a prefix over threads
   is a prefix over token ids: the sampled token is the first whose running sum passes u. */
template <typename E>
__device__ void welt_step_impl(const welt_step_params &p) {
    __shared__ float fscratch[WELT_BLOCK / 32];
    __shared__ unsigned uscratch[WELT_BLOCK / 32];
    __shared__ float sums[WELT_BLOCK];
    __shared__ unsigned long long best;
    const unsigned row = blockIdx.x;
    if (row >= p.batch || p.row_stride < WELT_V || blockDim.x != WELT_BLOCK) return;
    if (p.flags[row] & WELT_FLAG_FINISHED) {
        if (threadIdx.x == 0) p.next_tokens[row] = WELT_PAD;
        return;
    }
    const unsigned short s = p.states[row] < WELT_STATES ? p.states[row] : 0;
    const typename E::T *logits = (const typename E::T *)p.logits + (size_t)row * p.row_stride;
    const unsigned chunk = (WELT_V + WELT_BLOCK - 1) / WELT_BLOCK;
    const unsigned lo = threadIdx.x * chunk;
    const unsigned hi = min(lo + chunk, WELT_V);
    const bool greedy = !(p.temperature > 0.0f);
    const float inv_t = greedy ? 1.0f : 1.0f / p.temperature;

    /* 1. mask + the largest allowed scaled logit (lowest id on ties, via the packed key). */
    if (threadIdx.x == 0) best = 0;
    __syncthreads();
    unsigned long long mine = 0;
    for (unsigned tok = lo; tok < hi; ++tok) {
        if (!((WELT_MASK(p.tables, s, tok >> 6) >> (tok & 63)) & 1ull)) continue;
        const float x = welt_to_float(E(), logits[tok]) * inv_t;
        if (x != x || x == __int_as_float(0xff800000)) continue; /* NaN or -inf: never chosen */
        const unsigned long long packed = ((unsigned long long)welt_key(x) << 32) | (0xffffffffu - tok);
        if (packed > mine) mine = packed;
    }
    if (mine) atomicMax(&best, mine);
    __syncthreads();
    const unsigned long long top = best;
    if (top == 0) { /* nothing allowed has a finite logit */
        if (threadIdx.x == 0) { atomicOr(p.error, WELT_ERR_NO_TOKEN); p.next_tokens[row] = WELT_PAD; }
        return;
    }
    unsigned chosen = 0xffffffffu - (unsigned)(top & 0xffffffffu);

    if (!greedy) {
        const unsigned kmax = (unsigned)(top >> 32);
        float m;
        { const unsigned u = kmax & 0x80000000u ? kmax & 0x7fffffffu : ~kmax; m = __uint_as_float(u); }
        /* 2. top-k: the k-th largest key, by a bitwise search over keys (ties are kept). */
        unsigned kth = 0;
        if (p.top_k > 0 && p.top_k < WELT_V) {
            for (int bit = 31; bit >= 0; --bit) {
                const unsigned cand = kth | (1u << bit);
                unsigned c = 0;
                for (unsigned tok = lo; tok < hi; ++tok) {
                    if (!((WELT_MASK(p.tables, s, tok >> 6) >> (tok & 63)) & 1ull)) continue;
                    const float x = welt_to_float(E(), logits[tok]) * inv_t;
                    if (x == x && welt_key(x) >= cand) ++c;
                }
                if (welt_block_count(c, uscratch) >= p.top_k) kth = cand;
            }
        }
        /* 3. weights exp(x - m) of the kept tokens. */
        float z = 0.0f;
        for (unsigned tok = lo; tok < hi; ++tok) {
            if (!((WELT_MASK(p.tables, s, tok >> 6) >> (tok & 63)) & 1ull)) continue;
            const float x = welt_to_float(E(), logits[tok]) * inv_t;
            if (x == x && welt_key(x) >= kth) z += __expf(x - m);
        }
        z = welt_block_sum(z, fscratch);
        /* 4. top-p: the largest key whose tail mass is still >= p (bitwise search). */
        unsigned pth = kth;
        if (p.top_p > 0.0f && p.top_p < 1.0f) {
            const float need = p.top_p * z;
            unsigned acc = 0;
            for (int bit = 31; bit >= 0; --bit) {
                const unsigned cand = acc | (1u << bit);
                float tail = 0.0f;
                for (unsigned tok = lo; tok < hi; ++tok) {
                    if (!((WELT_MASK(p.tables, s, tok >> 6) >> (tok & 63)) & 1ull)) continue;
                    const float x = welt_to_float(E(), logits[tok]) * inv_t;
                    if (x == x && welt_key(x) >= kth && welt_key(x) >= cand) tail += __expf(x - m);
                }
                if (welt_block_sum(tail, fscratch) >= need) acc = cand;
            }
            pth = acc > kth ? acc : kth;
        }
        /* 5. inverse CDF in token order over the kept tokens. */
        float part = 0.0f;
        for (unsigned tok = lo; tok < hi; ++tok) {
            if (!((WELT_MASK(p.tables, s, tok >> 6) >> (tok & 63)) & 1ull)) continue;
            const float x = welt_to_float(E(), logits[tok]) * inv_t;
            if (x == x && welt_key(x) >= pth) part += __expf(x - m);
        }
        __syncthreads();
        sums[threadIdx.x] = part;
        __syncthreads();
        if (threadIdx.x == 0) {
            float total = 0.0f;
            for (int i = 0; i < WELT_BLOCK; ++i) total += sums[i];
            const float target = welt_uniform(p.seed, row, p.draws[row]++) * total;
            float run = 0.0f;
            unsigned pick = chosen; /* the argmax, if rounding leaves the target past the end */
            for (int i = 0; i < WELT_BLOCK && pick == chosen; ++i) {
                if (run + sums[i] <= target) { run += sums[i]; continue; }
                const unsigned a = i * chunk, b = min(a + chunk, WELT_V);
                for (unsigned tok = a; tok < b; ++tok) {
                    if (!((WELT_MASK(p.tables, s, tok >> 6) >> (tok & 63)) & 1ull)) continue;
                    const float x = welt_to_float(E(), logits[tok]) * inv_t;
                    if (!(x == x && welt_key(x) >= pth)) continue;
                    run += __expf(x - m);
                    if (run > target) { pick = tok; break; }
                }
                break;
            }
            best = pick;
        }
        __syncthreads();
        chosen = (unsigned)best;
    }

    /* 6. advance, stop, length limit, next input token. */
    if (threadIdx.x == 0) {
        p.next_tokens[row] = welt_advance_row(p.tables, row, chosen, p.max_word_len, p.states, p.lengths,
                                              p.flags, p.running, p.error);
    }
}

extern "C" __global__ void welt_step_f32(welt_step_params p) { welt_step_impl<welt_f32>(p); }
extern "C" __global__ void welt_step_f16(welt_step_params p) { welt_step_impl<welt_f16>(p); }
extern "C" __global__ void welt_step_bf16(welt_step_params p) { welt_step_impl<welt_bf16>(p); }
"#;
