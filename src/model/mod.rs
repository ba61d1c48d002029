//! The byte decoder that spells WeLT's words: a Llama (`LlamaForCausalLM`, vocabulary 256) on
//! the CPU in f32 with candle, driven a word at a time through [`welt_runtime::WordModel`].
//!
//! A word is started by feeding, per row, the conditioning vector (WeLT's word latent, if any)
//! and then the BOS embedding — what WeLT's Python code passes to Hugging Face `generate` as
//! `inputs_embeds = cat([latent, bos_embed])` — and then advanced one byte per step. All rows
//! of a batch advance in lockstep (every row is at the same position), so no padding or
//! attention masks are needed beyond the causal one inside the start input.
//!
//! The KV cache is one preallocated buffer per layer, `[batch, kv_heads, capacity, head_dim]`,
//! written in place at the current position; it is kept (not zeroed) across words of the same
//! batch size, so starting a word allocates no cache. The q, k, v projections are stacked into
//! one matrix and the gate and up projections into another (stored `[in, out]`), so a step
//! runs four matrix products per layer instead of seven; attention over the cache is one
//! small custom op. [`ByteLlama::tensors`] still hands out the Hugging Face tensors by name.
//!
//! Everything the config or the batch sizes is checked before it is allocated: a checkpoint's
//! config against its safetensors header (so the file justifies the weights), the KV cache, the
//! rotary tables (as long as the cache, not `max_position_embeddings`) and a step's buffers
//! against [`ByteLlama::memory_limit`] (default [`ByteLlama::DEFAULT_MEMORY_LIMIT`], 4 GiB);
//! what does not fit is [`ModelError::TooLarge`] with the bytes it would need.
//!
//! At B = 1 a step is bound by reading the weights (4.2 M f32, 17 MB, every step); at B = 32
//! by the arithmetic of the matrix products.
//!
//! ```
//! use candle_core::Device;
//! use welt::model::{ByteLlama, LlamaConfig};
//! use welt_runtime::WordModel;
//!
//! let mut cfg = LlamaConfig::welt_default();
//! cfg.hidden_size = 32; // small, for the example
//! cfg.intermediate_size = 64;
//! let mut model = ByteLlama::random(cfg, 7, &Device::Cpu)?;
//! let logits = model.start(3, None)?; // [3, 256]: the first byte of three words
//! assert_eq!(logits.dims(), &[3, 256]);
//! let logits = model.next(&[b'a' as u32, b'b' as u32, b'c' as u32])?;
//! assert_eq!(logits.dims(), &[3, 256]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod attention;
mod checkpoint;
mod config;
mod error;
mod init;
mod llama;

pub use config::LlamaConfig;
pub use error::ModelError;
pub use llama::ByteLlama;
