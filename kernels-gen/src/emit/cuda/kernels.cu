#include "welt_kernels.h"  /* the kernel ABI: the emitter puts the header text here */
#include "welt_decoder.cuh" /* generated: the table format's constants (WELT_STOP_BIT, ...), this decoder's sizes and its __constant__ tables */

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

/* ---- mask: a warp per 32 mask words (2,048 tokens), grid-stride over the words (x) and the
   batch (y) ----
   The cost follows the forbidden tokens, not V. Lane i of a warp loads the row's mask word
   32 g + i (one coalesced load for the warp) and a ballot tells the whole warp which of its
   32 words forbid anything (a word past WELT_MASK_WORDS forbids nothing). A fully allowed word
   costs that load and nothing else: at a word start of a large vocabulary, nearly every word.
   For each word that forbids a token (the ballot's set bits, in order) the warp takes the
   word from its lane with a shuffle and writes its 64 tokens in two passes of 32 lanes,
   consecutive lanes on consecutive tokens (coalesced stores), each lane only where its token is
   forbidden and below WELT_V (the mask's padding bits past V are clear, so the last word
   would forbid them). The logits are never read; the tokens written are exactly those whose
   bit is clear, as a thread per token would write them.
   Every branch before a ballot or shuffle is uniform across the warp (the row, the state and
   the group index depend on the warp only), so the full-warp masks are exact; blockDim.x must
   be a multiple of 32 (the host launches 256). gridDim.y is at most 65,535, so a block takes
   rows blockIdx.y, blockIdx.y + gridDim.y, ...; indices are 64-bit so that no stride wraps. */
template <typename E>
__device__ void welt_mask_impl(welt_tables t, typename E::T *logits, unsigned long long row_stride,
                               const unsigned short *states, const unsigned char *flags,
                               unsigned int batch) {
    if (row_stride < WELT_V || (blockDim.x & 31u) != 0) return;
    const unsigned lane = threadIdx.x & 31u;
    const size_t warps_per_block = blockDim.x >> 5;
    const size_t first_group = (size_t)blockIdx.x * warps_per_block + (threadIdx.x >> 5);
    const size_t group_stride = (size_t)gridDim.x * warps_per_block;
    const size_t groups = ((size_t)WELT_MASK_WORDS + 31) / 32;
    for (size_t row = blockIdx.y; row < batch; row += gridDim.y) {
        if (flags[row] & WELT_FLAG_FINISHED) continue;
        const unsigned short s = states[row];
        if (s >= WELT_STATES) continue;
        typename E::T *row_logits = logits + row * row_stride;
        for (size_t g = first_group; g < groups; g += group_stride) {
            const size_t w = g * 32 + lane;
            const unsigned long long forbid = w < WELT_MASK_WORDS ? ~WELT_MASK(t, s, w) : 0ull;
            unsigned dirty = __ballot_sync(0xffffffffu, forbid != 0ull);
            while (dirty != 0u) {
                const unsigned i = (unsigned)(__ffs((int)dirty) - 1);
                dirty &= dirty - 1u;
                const unsigned long long f = __shfl_sync(0xffffffffu, forbid, (int)i);
                const size_t first_tok = (g * 32 + i) * 64;
                for (unsigned half = 0; half < 2; ++half) {
                    const unsigned bit = half * 32u + lane;
                    const size_t tok = first_tok + bit;
                    if (((f >> bit) & 1ull) && tok < WELT_V) welt_neg_inf(E(), row_logits + tok);
                }
            }
        }
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
    const unsigned short e = s < WELT_STATES ? WELT_ENTRY(t, s, tok) : WELT_FORBIDDEN_ENTRY;
    const unsigned short next = e & WELT_NEXT_STATE;
    /* A forbidden token's entry leads to the dead state without the stop bit; a stop leads there
       with it, and is allowed. */
    if (e == WELT_FORBIDDEN_ENTRY) { atomicOr(error, WELT_ERR_NOT_ALLOWED); return WELT_PAD; }
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

/* ---- advance: one thread per row, grid-stride over the batch ---- */
extern "C" __global__ void welt_advance(welt_tables t, const unsigned int *tokens, unsigned int *next_tokens,
                                        unsigned short *states, unsigned short *lengths, unsigned char *flags,
                                        unsigned int batch, unsigned int max_word_len, unsigned int *running,
                                        unsigned int *error) {
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t row = (size_t)blockIdx.x * blockDim.x + threadIdx.x; row < batch; row += stride) {
        if (flags[row] & WELT_FLAG_FINISHED) { next_tokens[row] = WELT_PAD; continue; }
        next_tokens[row] = welt_advance_row(t, (unsigned)row, tokens[row], max_word_len, states, lengths, flags,
                                            running, error);
    }
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

/* The largest allowed `logit * scale` of a row over the block, packed as (key, ~token) so that
   the maximum is the largest value and, on ties, the lowest id; 0 if no allowed token has a
   value other than NaN or -inf. Every thread of the block gets the same answer. */
template <typename E>
__device__ unsigned long long welt_largest(welt_tables t, unsigned short s, const typename E::T *logits,
                                           unsigned lo, unsigned hi, float scale, unsigned long long *best) {
    __syncthreads(); /* every thread has read the last value of *best */
    if (threadIdx.x == 0) *best = 0;
    __syncthreads();
    unsigned long long mine = 0;
    for (unsigned tok = lo; tok < hi; ++tok) {
        if (!((WELT_MASK(t, s, tok >> 6) >> (tok & 63)) & 1ull)) continue;
        const float x = welt_to_float(E(), logits[tok]) * scale;
        if (x != x || x == __int_as_float(0xff800000)) continue; /* NaN or -inf: never chosen */
        const unsigned long long packed = ((unsigned long long)welt_key(x) << 32) | (0xffffffffu - tok);
        if (packed > mine) mine = packed;
    }
    if (mine) atomicMax(best, mine);
    __syncthreads();
    return *best;
}

/* ---- the fused step: one block of WELT_BLOCK threads per row ----
   Thread i owns the contiguous tokens [i * chunk, (i + 1) * chunk), so a prefix over threads
   is a prefix over token ids: the sampled token is the first whose running sum passes u.
   Every early return is taken by the whole block (its conditions are the row's, or read from
   shared memory after a barrier), so the block stays together for the next row. */
template <typename E>
__device__ void welt_step_row(const welt_step_params &p, const unsigned row) {
    __shared__ float fscratch[WELT_BLOCK / 32];
    __shared__ unsigned uscratch[WELT_BLOCK / 32];
    __shared__ float sums[WELT_BLOCK];
    __shared__ unsigned long long best;
    if (p.flags[row] & WELT_FLAG_FINISHED) {
        if (threadIdx.x == 0) p.next_tokens[row] = WELT_PAD;
        return;
    }
    const unsigned short s = p.states[row] < WELT_STATES ? p.states[row] : WELT_DEAD;
    const typename E::T *logits = (const typename E::T *)p.logits + (size_t)row * p.row_stride;
    const unsigned chunk = (WELT_V + WELT_BLOCK - 1) / WELT_BLOCK;
    const unsigned lo = threadIdx.x * chunk;
    const unsigned hi = min(lo + chunk, WELT_V);
    bool greedy = !(p.temperature > 0.0f);
    const float inv_t = greedy ? 1.0f : 1.0f / p.temperature;

    /* 1. mask + the largest allowed scaled logit (lowest id on ties, via the packed key). */
    unsigned long long top = welt_largest<E>(p.tables, s, logits, lo, hi, inv_t, &best);
    if (!greedy && (top == 0 || (unsigned)(top >> 32) == welt_key(__int_as_float(0x7f800000)))) {
        /* logit / T left f32: the largest scaled logit is +inf, or every allowed one is -inf
           though some logit is finite. The distribution at this temperature is then its limit,
           all of its mass on the largest logit, so the choice is the greedy one on the
           unscaled logits (as Sampler::choose on the CPU). */
        top = welt_largest<E>(p.tables, s, logits, lo, hi, 1.0f, &best);
        greedy = true;
    }
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

/* Block-stride over the batch: a grid of fewer blocks than rows (gridDim.x is bounded) takes
   rows blockIdx.x, blockIdx.x + gridDim.x, ... */
template <typename E>
__device__ void welt_step_impl(const welt_step_params &p) {
    if (p.row_stride < WELT_V || blockDim.x != WELT_BLOCK) return;
    for (size_t row = blockIdx.x; row < p.batch; row += gridDim.x) {
        welt_step_row<E>(p, (unsigned)row);
        __syncthreads(); /* the next row reuses the shared scratch and `best` */
    }
}

extern "C" __global__ void welt_step_f32(welt_step_params p) { welt_step_impl<welt_f32>(p); }
extern "C" __global__ void welt_step_f16(welt_step_params p) { welt_step_impl<welt_f16>(p); }
extern "C" __global__ void welt_step_bf16(welt_step_params p) { welt_step_impl<welt_bf16>(p); }
