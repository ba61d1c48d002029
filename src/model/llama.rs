//! [`ByteLlama`]: the decoder's weights, its KV cache and the forward pass.

use std::fmt;

use candle_core::{DType, Device, Tensor};
use welt_runtime::WordModel;

use super::attention::CachedAttention;
use super::checkpoint::LM_HEAD_BIAS;
use super::{LlamaConfig, ModelError};

/// One decoder layer. The projections are stored transposed, `[in, out]` and contiguous:
/// candle's CPU matmul (gemm) is faster for a few rows with a row-major right operand than
/// with the transposed view of a Hugging Face `[out, in]` weight, and no slower for one row
/// or 32. The q, k, v weights are stacked along the output dimension (and gate,
/// up likewise) so that each is one matrix product on the step's hot path.
pub(super) struct Layer {
    pub(super) input_norm: Tensor,
    /// `[hidden, (heads + 2 kv_heads) * head_dim]`: q, then k, then v.
    pub(super) qkv_t: Tensor,
    /// `[heads * head_dim, hidden]`.
    pub(super) o_t: Tensor,
    pub(super) post_norm: Tensor,
    /// `[hidden, 2 * intermediate]`: gate, then up.
    pub(super) gate_up_t: Tensor,
    /// `[intermediate, hidden]`.
    pub(super) down_t: Tensor,
}

/// Keys and values of every position fed so far, all rows at the same position.
pub(super) struct KvCache {
    /// Per layer `[rows, kv_heads, capacity, head_dim]`, written in place with `slice_set`; a
    /// sequence of `batch <= rows` rows uses the first `batch` (a contiguous view), so that
    /// alternating batch sizes do not reallocate.
    pub(super) k: Vec<Tensor>,
    pub(super) v: Vec<Tensor>,
    /// Rows the buffers were allocated for (0: none yet).
    pub(super) rows: usize,
    /// Rows of the running (or last) sequence.
    pub(super) batch: usize,
    pub(super) capacity: usize,
    /// Positions filled; 0 means no sequence is running.
    pub(super) len: usize,
}

/// Positions allocated at first: a start input (2) plus a 16-byte word fits, so a word never
/// reallocates; longer sequences double the buffers up to `max_position_embeddings`.
const INITIAL_CAPACITY: usize = 32;

/// WeLT's byte decoder: a Llama (`LlamaForCausalLM`) with a KV cache, batched, CPU f32.
pub struct ByteLlama {
    pub(super) cfg: LlamaConfig,
    pub(super) device: Device,
    /// `[vocab, hidden]`.
    pub(super) embed: Tensor,
    /// `[1, hidden]`: the BOS row of `embed`.
    pub(super) bos: Tensor,
    pub(super) layers: Vec<Layer>,
    pub(super) norm: Tensor,
    /// `[hidden, vocab]`: the output projection, transposed (a copy of `embed` when tied).
    pub(super) lm_head_t: Tensor,
    /// `[vocab]`, added to the logits.
    pub(super) lm_bias: Option<Tensor>,
    /// `[positions, head_dim / 2]`: rotary tables for as many positions as the cache holds.
    pub(super) cos: Tensor,
    pub(super) sin: Tensor,
    pub(super) cache: KvCache,
    /// See [`ByteLlama::memory_limit`].
    pub(super) memory_limit: u64,
}

impl fmt::Debug for ByteLlama {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ByteLlama")
            .field("config", &self.cfg)
            .field("logit_bias", &self.lm_bias.is_some())
            .field("batch", &self.cache.batch)
            .field("position", &self.cache.len)
            .finish_non_exhaustive()
    }
}

impl ByteLlama {
    /// The default [`ByteLlama::memory_limit`], 4 GiB: the byte decoder at WeLT's size
    /// (`LlamaConfig::welt_default`) needs 256 KiB of KV cache per row, so this holds about
    /// 15,000 rows; [`ByteLlama::random`] also bounds its weights by it.
    pub const DEFAULT_MEMORY_LIMIT: u64 = 4 << 30;

    /// The model's config.
    pub fn config(&self) -> &LlamaConfig {
        &self.cfg
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Sets the output projection's bias (`lm_head.bias`), one value per token: the
    /// benchmark's -1e4 on stop-prone bytes, as in the Python baseline, holds word length fixed.
    pub fn set_logit_bias(&mut self, bias: &[f32]) -> Result<(), ModelError> {
        if bias.len() != self.cfg.vocab_size {
            return Err(ModelError::Shape {
                name: LM_HEAD_BIAS.into(),
                expected: vec![self.cfg.vocab_size],
                dims: "[vocab_size]",
                found: vec![bias.len()],
            });
        }
        self.lm_bias = Some(Tensor::from_slice(bias, bias.len(), &self.device)?);
        Ok(())
    }

    /// Removes the output projection's bias.
    pub fn clear_logit_bias(&mut self) {
        self.lm_bias = None;
    }

    /// Number of positions fed since the last start or reset (the next position's index).
    pub fn position(&self) -> usize {
        self.cache.len
    }

    /// Forgets the running sequence. The cache buffers are kept for the next one.
    pub fn reset(&mut self) {
        self.cache.len = 0;
    }

    /// Feeds `embeds` (`[batch, t, hidden]`) after the positions already fed (none after a
    /// reset) and returns the logits of all `t` positions, `[batch, t, vocab]`.
    pub fn forward_embeds(&mut self, embeds: &Tensor) -> candle_core::Result<Tensor> {
        let (b, t, hidden) = embeds.dims3()?;
        if hidden != self.cfg.hidden_size {
            candle_core::bail!(
                "embeds have width {hidden}, the model's hidden_size is {}",
                self.cfg.hidden_size
            );
        }
        let x = embeds
            .to_device(&self.device)?
            .to_dtype(DType::F32)?
            .reshape((b * t, hidden))?;
        self.step(x, b, t, false)?.reshape((b, t, self.cfg.vocab_size))
    }

    /// Feeds `tokens` (u32 `[batch, t]`) after the positions already fed (none after a reset)
    /// and returns the logits of all `t` positions, `[batch, t, vocab]`.
    pub fn forward_tokens(&mut self, tokens: &Tensor) -> candle_core::Result<Tensor> {
        let (b, t) = tokens.dims2()?;
        let ids = tokens.flatten_all()?.to_dtype(DType::U32)?.to_vec1::<u32>()?;
        let x = self.embed_ids(&ids)?;
        self.step(x, b, t, false)?.reshape((b, t, self.cfg.vocab_size))
    }

    /// Embedding rows of `ids`, `[ids.len(), hidden]`; an id outside the vocabulary is an error.
    fn embed_ids(&self, ids: &[u32]) -> candle_core::Result<Tensor> {
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= self.cfg.vocab_size) {
            candle_core::bail!(
                "token {id} is outside the vocabulary (vocab_size {})",
                self.cfg.vocab_size
            );
        }
        let ids = Tensor::from_slice(ids, ids.len(), &self.device)?;
        self.embed.index_select(&ids, 0)
    }

    /// Makes room in the cache for `t` more positions of `b` rows, reusing the buffers when
    /// they have as many rows or more.
    fn reserve(&mut self, b: usize, t: usize) -> candle_core::Result<()> {
        let c = &mut self.cache;
        if c.len > 0 && b != c.batch {
            candle_core::bail!(
                "{b} rows fed to a sequence of {} rows; start a new one (start or reset) to change the batch size",
                c.batch
            );
        }
        let max = self.cfg.max_position_embeddings;
        if c.len + t > max {
            candle_core::bail!(
                "position {} is past max_position_embeddings {max} ({} positions fed, {t} more)",
                c.len + t - 1,
                c.len
            );
        }
        let (kv, hd) = (self.cfg.num_key_value_heads, self.cfg.head_dim());
        let (rows, capacity) = if b > c.rows {
            (b, INITIAL_CAPACITY.max(t).min(max))
        } else if c.len + t > c.capacity {
            (c.rows, (2 * c.capacity).max(c.len + t).min(max))
        } else {
            (c.rows, c.capacity)
        };
        let fits = self.fits(rows, capacity, t);
        let c = &mut self.cache;
        // Checked before the first allocation it sizes: the buffers are sized by the batch
        // and the config, neither of which the checkpoint's size bounds.
        fits?;
        c.batch = b;
        if rows != c.rows {
            let zeros = || Tensor::zeros((rows, kv, capacity, hd), DType::F32, &self.device);
            // The old buffers go first, so that they and the new ones never coexist.
            c.k.clear();
            c.v.clear();
            c.k = (0..self.cfg.num_hidden_layers)
                .map(|_| zeros())
                .collect::<candle_core::Result<_>>()?;
            c.v = (0..self.cfg.num_hidden_layers)
                .map(|_| zeros())
                .collect::<candle_core::Result<_>>()?;
            c.rows = rows;
            c.capacity = capacity;
        } else if capacity != c.capacity {
            let grow = |old: &Tensor| -> candle_core::Result<Tensor> {
                let new = Tensor::zeros((rows, kv, capacity, hd), DType::F32, &self.device)?;
                new.slice_set(old, 2, 0)?;
                Ok(new)
            };
            c.k = c.k.iter().map(grow).collect::<candle_core::Result<_>>()?;
            c.v = c.v.iter().map(grow).collect::<candle_core::Result<_>>()?;
            c.capacity = capacity;
        }
        // The rotary tables cover the positions the cache has room for, not
        // max_position_embeddings, which a config may set to anything.
        if self.cos.dim(0)? < capacity {
            (self.cos, self.sin) = rope_tables(&self.cfg, capacity, &self.device)?;
        }
        Ok(())
    }

    /// Bytes a sequence of `rows` rows needs beyond the weights, with a cache of `capacity`
    /// positions and `t` positions fed in one step: the KV cache, the rotary tables, and an
    /// estimate of the step's largest intermediate tensors. `None` when it overflows a `u128`.
    fn buffer_bytes(&self, rows: usize, capacity: usize, t: usize) -> Option<u128> {
        let cfg = &self.cfg;
        let [rows, capacity, t, layers, kv, hd, nh, hidden, inter, vocab] = [
            rows,
            capacity,
            t,
            cfg.num_hidden_layers,
            cfg.num_key_value_heads,
            cfg.head_dim(),
            cfg.num_attention_heads,
            cfg.hidden_size,
            cfg.intermediate_size,
            cfg.vocab_size,
        ]
        .map(|n| n as u128);
        let f32s = |n: u128| n.checked_mul(4);
        // k and v of every layer; the angles, then cos and sin, of `capacity` positions by
        // head_dim / 2; per fed position the residual stream, its norm and the attention
        // output (a few hidden-wide tensors), q, k, v and their rotated copies, gate and up
        // with the activation, the logits; per row the attention weights.
        let cache = f32s(
            2u128
                .checked_mul(layers)?
                .checked_mul(rows)?
                .checked_mul(kv)?
                .checked_mul(capacity)?
                .checked_mul(hd)?,
        )?;
        let rope = f32s(capacity.checked_mul(hd)?.checked_mul(3)? / 2)?;
        let per_position = hidden
            .checked_mul(5)?
            .checked_add(
                nh.checked_add(kv.checked_mul(2)?)?
                    .checked_mul(hd)?
                    .checked_mul(2)?,
            )?
            .checked_add(inter.checked_mul(4)?)?
            .checked_add(vocab.checked_mul(2)?)?;
        let step = f32s(
            rows.checked_mul(t)?
                .checked_mul(per_position)?
                .checked_add(rows.checked_mul(capacity)?)?,
        )?;
        cache.checked_add(rope)?.checked_add(step)
    }

    /// Checks [`ByteLlama::buffer_bytes`] against the memory limit.
    fn fits(&self, rows: usize, capacity: usize, t: usize) -> Result<(), ModelError> {
        match self.buffer_bytes(rows, capacity, t) {
            Some(n) if n <= u128::from(self.memory_limit) => Ok(()),
            needed => Err(ModelError::TooLarge {
                what: format!("the KV cache and buffers for {rows} rows x {capacity} positions"),
                needed,
                limit: self.memory_limit,
            }),
        }
    }

    /// Checks that a sequence of `rows` rows and up to `positions` positions (the start input
    /// included) fits the memory limit ([`ByteLlama::set_memory_limit`]), without allocating:
    /// the KV cache at the capacity it would grow to, the rotary tables and the largest step
    /// of [`WordModel`]'s use (a start input of up to two positions). The error says how many
    /// bytes it would need.
    pub fn check_memory(&self, rows: usize, positions: usize) -> Result<(), ModelError> {
        // The cache starts at INITIAL_CAPACITY positions and doubles.
        let capacity = positions
            .checked_next_power_of_two()
            .unwrap_or(usize::MAX)
            .max(INITIAL_CAPACITY)
            .min(self.cfg.max_position_embeddings);
        self.fits(rows, capacity, positions.min(2))
    }

    /// The most bytes the model allocates beyond its weights (KV cache, rotary tables, a
    /// step's intermediate tensors); a step that would need more is an error saying how many.
    pub fn memory_limit(&self) -> u64 {
        self.memory_limit
    }

    /// Sets [`ByteLlama::memory_limit`] (default [`ByteLlama::DEFAULT_MEMORY_LIMIT`]).
    pub fn set_memory_limit(&mut self, bytes: u64) {
        self.memory_limit = bytes;
    }

    /// Runs `x` (`[b * t, hidden]`, row-major `[b, t]`) through the model after the cached
    /// positions; returns the logits of every position (`[b * t, vocab]`) or, with
    /// `last_only`, of the last one per row (`[b, vocab]`).
    fn step(&mut self, x: Tensor, b: usize, t: usize, last_only: bool) -> candle_core::Result<Tensor> {
        self.reserve(b, t)?;
        // candle's CPU kernels (matmul, softmax, norms, rope) split their work with rayon.
        // Called from outside the pool, each of them hands its work to the pool and sleeps
        // until it is done: some 40 handovers and wake-ups per step. Running the whole step on
        // a pool thread makes them ordinary fork-joins, with no handover or wake-up.
        let logits = rayon::scope(|_| self.forward(x, b, t, last_only))?;
        self.cache.len += t;
        Ok(logits)
    }

    /// [`ByteLlama::step`]'s work, after [`ByteLlama::reserve`]; leaves the length of the
    /// cache to the caller.
    fn forward(&self, x: Tensor, b: usize, t: usize, last_only: bool) -> candle_core::Result<Tensor> {
        let cfg = &self.cfg;
        let (nh, nkv, hd) = (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim());
        let inter = cfg.intermediate_size;
        let eps = cfg.rms_norm_eps as f32;
        let pos = self.cache.len;
        let attention = CachedAttention { pos };
        let cos = self.cos.narrow(0, pos, t)?;
        let sin = self.sin.narrow(0, pos, t)?;
        let mut x = x;
        for (l, layer) in self.layers.iter().enumerate() {
            let h = candle_nn::ops::rms_norm(&x, &layer.input_norm, eps)?;
            let qkv = h.matmul(&layer.qkv_t)?;
            let q = qkv.narrow(1, 0, nh * hd)?.reshape((b, t, nh, hd))?;
            let k = qkv.narrow(1, nh * hd, nkv * hd)?.reshape((b, t, nkv, hd))?;
            let v = qkv
                .narrow(1, (nh + nkv) * hd, nkv * hd)?
                .reshape((b, t, nkv, hd))?;
            let q = candle_nn::rotary_emb::rope_thd(&q, &cos, &sin)?;
            let k = candle_nn::rotary_emb::rope_thd(&k, &cos, &sin)?;
            // For t = 1 these transposes only move a dimension of size 1: no copy.
            let (cache_k, cache_v) = (self.cache.k[l].narrow(0, 0, b)?, self.cache.v[l].narrow(0, 0, b)?);
            cache_k.slice_set(&k.transpose(1, 2)?.contiguous()?, 2, pos)?;
            cache_v.slice_set(&v.transpose(1, 2)?.contiguous()?, 2, pos)?;
            // [b, t, heads, head_dim], so [b * t, hidden] without a copy.
            let attn = q
                .apply_op3_no_bwd(&cache_k, &cache_v, &attention)?
                .reshape((b * t, nh * hd))?;
            x = (x + attn.matmul(&layer.o_t)?)?;

            let h = candle_nn::ops::rms_norm(&x, &layer.post_norm, eps)?;
            let gate_up = h.matmul(&layer.gate_up_t)?;
            let act = (gate_up.narrow(1, 0, inter)?.silu()? * gate_up.narrow(1, inter, inter)?)?;
            x = (x + act.matmul(&layer.down_t)?)?;
        }

        let hidden = self.cfg.hidden_size;
        if last_only && t > 1 {
            x = x
                .reshape((b, t, hidden))?
                .narrow(1, t - 1, 1)?
                .reshape((b, hidden))?;
        }
        let h = candle_nn::ops::rms_norm(&x, &self.norm, eps)?;
        let logits = h.matmul(&self.lm_head_t)?;
        match &self.lm_bias {
            Some(bias) => logits.broadcast_add(bias),
            None => Ok(logits),
        }
    }
}

/// Rotary tables as Hugging Face computes them (in f32): `inv_freq[i] = 1 / theta^(2i / d)`,
/// angle = position * inv_freq; the rotation pairs element `i` with `i + d/2` (`rotate_half`).
pub(super) fn rope_tables(
    cfg: &LlamaConfig,
    n: usize,
    device: &Device,
) -> candle_core::Result<(Tensor, Tensor)> {
    let hd = cfg.head_dim();
    let half = hd / 2;
    let theta = cfg.rope_theta as f32;
    let inv: Vec<f32> = (0..half)
        .map(|i| 1.0 / theta.powf((2 * i) as f32 / hd as f32))
        .collect();
    let angles: Vec<f32> = (0..n)
        .flat_map(|p| inv.iter().map(move |&f| p as f32 * f))
        .collect();
    let cos = angles.iter().map(|a| a.cos()).collect();
    let sin = angles.iter().map(|a| a.sin()).collect();
    Ok((
        Tensor::from_vec(cos, (n, half), device)?,
        Tensor::from_vec(sin, (n, half), device)?,
    ))
}

impl WordModel for ByteLlama {
    fn vocab_size(&self) -> usize {
        self.cfg.vocab_size
    }

    fn start(&mut self, batch: usize, condition: Option<&Tensor>) -> candle_core::Result<Tensor> {
        if batch == 0 {
            candle_core::bail!("start needs at least one row");
        }
        // Before the start input, which is as large as the batch.
        self.check_memory(batch, if condition.is_some() { 2 } else { 1 })?;
        let hidden = self.cfg.hidden_size;
        let bos = self.bos.broadcast_as((batch, hidden))?.contiguous()?;
        let (x, t) = match condition {
            None => (bos, 1),
            Some(c) => {
                if c.dims() != [batch, hidden] {
                    candle_core::bail!(
                        "condition has shape {:?}, expected [batch, hidden_size] = [{batch}, {hidden}]",
                        c.dims()
                    );
                }
                let c = c.to_device(&self.device)?.to_dtype(DType::F32)?;
                // Row-major [batch, 2, hidden]: each row's condition, then its BOS.
                (Tensor::stack(&[&c, &bos], 1)?.reshape((batch * 2, hidden))?, 2)
            }
        };
        self.reset();
        self.step(x, batch, t, true)
    }

    fn next(&mut self, tokens: &[u32]) -> candle_core::Result<Tensor> {
        if self.cache.len == 0 {
            candle_core::bail!("next called before start");
        }
        if tokens.len() != self.cache.batch {
            candle_core::bail!("next got {} tokens for {} rows", tokens.len(), self.cache.batch);
        }
        let x = self.embed_ids(tokens)?;
        self.step(x, tokens.len(), 1, true)
    }
}
