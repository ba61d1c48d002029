//! Causal attention over the KV cache, as one candle op.

use candle_core::{CpuStorage, Layout, Shape};
use rayon::prelude::*;

/// Causal attention of `t` new positions over the KV cache, as one candle op:
/// `q` `[b, t, heads, head_dim]` (rotated), the cache buffers `[b, kv_heads, capacity,
/// head_dim]` with positions `..pos + t` filled, out `[b, t, heads, head_dim]`.
///
/// Written as plain loops because at these sizes (a few heads of 64, at most a few dozen
/// positions) candle's general ops cost more than the arithmetic: one small gemm per (row,
/// head) for the scores and another for the weighted sum, plus the scale, the mask and the
/// softmax as separate passes — about a fifth of a step at B = 32. Query head `h` reads
/// key/value head `h / (heads / kv_heads)` (grouped-query attention) without repeating k and
/// v; position `pos + i` sees keys `0..=pos + i`. Scores and softmax are f32, as in Hugging
/// Face.
pub(super) struct CachedAttention {
    /// Position of the first new query.
    pub(super) pos: usize,
}

impl candle_core::CustomOp3 for CachedAttention {
    fn name(&self) -> &'static str {
        "welt-cached-attention"
    }

    fn cpu_fwd(
        &self,
        q: &CpuStorage,
        q_l: &Layout,
        k: &CpuStorage,
        k_l: &Layout,
        v: &CpuStorage,
        v_l: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(q), CpuStorage::F32(k), CpuStorage::F32(v)) = (q, k, v) else {
            candle_core::bail!("cached attention is implemented for f32 only");
        };
        let (b, t, nh, hd) = q_l.shape().dims4()?;
        let (kb, nkv, cap, khd) = k_l.shape().dims4()?;
        let pos = self.pos;
        if k_l.shape() != v_l.shape() || kb != b || khd != hd || nh % nkv != 0 || pos + t > cap {
            candle_core::bail!(
                "cached attention: q {:?}, k {:?}, v {:?} at position {pos} do not fit together",
                q_l.shape(),
                k_l.shape(),
                v_l.shape()
            );
        }
        let (Some((q0, q1)), Some((k0, k1)), Some((v0, v1))) = (
            q_l.contiguous_offsets(),
            k_l.contiguous_offsets(),
            v_l.contiguous_offsets(),
        ) else {
            candle_core::bail!("cached attention needs contiguous inputs");
        };
        let (q, k, v) = (&q[q0..q1], &k[k0..k1], &v[v0..v1]);
        let rep = nh / nkv;
        let scale = 1.0 / (hd as f32).sqrt();
        let mut out = vec![0f32; b * t * nh * hd];
        // One row (a batch entry) per task: rows are independent and equally long.
        out.par_chunks_mut(t * nh * hd).enumerate().for_each(|(r, out)| {
            let mut weights = vec![0f32; pos + t];
            for i in 0..t {
                let seen = pos + i + 1;
                for h in 0..nh {
                    let q = &q[((r * t + i) * nh + h) * hd..][..hd];
                    let base = (r * nkv + h / rep) * cap * hd;
                    let keys = k[base..][..seen * hd].chunks_exact(hd);
                    let mut max = f32::NEG_INFINITY;
                    for (w, key) in weights.iter_mut().zip(keys) {
                        *w = dot(q, key) * scale;
                        max = max.max(*w);
                    }
                    let mut sum = 0.0;
                    for w in &mut weights[..seen] {
                        *w = (*w - max).exp();
                        sum += *w;
                    }
                    let out = &mut out[(i * nh + h) * hd..][..hd];
                    for (w, value) in weights[..seen]
                        .iter()
                        .zip(v[base..][..seen * hd].chunks_exact(hd))
                    {
                        let w = w / sum;
                        for (o, x) in out.iter_mut().zip(value) {
                            *o += w * x;
                        }
                    }
                }
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((b, t, nh, hd))))
    }
}

/// Dot product with eight partial sums, so that the compiler can vectorise it (a single
/// running sum has to be added in order).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}
