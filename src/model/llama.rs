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

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use candle_core::{CpuStorage, DType, Device, Layout, Shape, Tensor};
use rayon::prelude::*;
use serde_json::{json, Map, Value};
use welt_runtime::WordModel;

/// The Hugging Face `LlamaConfig` fields that the byte decoder uses.
#[derive(Clone, Debug, PartialEq)]
pub struct LlamaConfig {
    /// Number of tokens (256 for WeLT's byte vocabulary).
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the MLP's gated layer.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_hidden_layers: usize,
    /// Number of query heads.
    pub num_attention_heads: usize,
    /// Number of key/value heads (grouped-query attention); defaults to `num_attention_heads`.
    pub num_key_value_heads: usize,
    /// RMSNorm epsilon (default 1e-6).
    pub rms_norm_eps: f64,
    /// Rotary embedding base (default 10000).
    pub rope_theta: f64,
    /// Longest sequence (start input included) the model accepts.
    pub max_position_embeddings: usize,
    /// The output projection is the embedding matrix (default false).
    pub tie_word_embeddings: bool,
    /// The BOS token, fed after the conditioning vector to start a word.
    pub bos_token_id: u32,
}

impl LlamaConfig {
    /// The sizes of the Python baseline (`shared/reference/bench_baseline.py`): vocabulary 256,
    /// hidden 256, intermediate 1024, 4 layers, 4 heads, 4 key/value heads, 128 positions,
    /// untied output projection, BOS 2.
    pub fn welt_default() -> Self {
        LlamaConfig {
            vocab_size: 256,
            hidden_size: 256,
            intermediate_size: 1024,
            num_hidden_layers: 4,
            num_attention_heads: 4,
            num_key_value_heads: 4,
            rms_norm_eps: 1e-6,
            rope_theta: 10000.0,
            max_position_embeddings: 128,
            tie_word_embeddings: false,
            bos_token_id: 2,
        }
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// Checks that the sizes fit together, so that a bad config is an error here rather than a
    /// shape error deep inside a forward pass.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |msg: String| Err(ModelError::Config(msg));
        for (name, value) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
            ("max_position_embeddings", self.max_position_embeddings),
        ] {
            if value == 0 {
                return bad(format!("{name} must be at least 1"));
            }
        }
        if self.vocab_size > u32::MAX as usize {
            return bad(format!(
                "vocab_size {} does not fit token ids (u32)",
                self.vocab_size
            ));
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return bad(format!(
                "hidden_size {} is not divisible by num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if !self.num_attention_heads.is_multiple_of(self.num_key_value_heads) {
            return bad(format!(
                "num_attention_heads {} is not divisible by num_key_value_heads {}",
                self.num_attention_heads, self.num_key_value_heads
            ));
        }
        if !self.head_dim().is_multiple_of(2) {
            return bad(format!(
                "head_dim {} (hidden_size / num_attention_heads) must be even for rotary embeddings",
                self.head_dim()
            ));
        }
        if self.bos_token_id as usize >= self.vocab_size {
            return bad(format!(
                "bos_token_id {} is not below vocab_size {}",
                self.bos_token_id, self.vocab_size
            ));
        }
        if !(self.rms_norm_eps.is_finite() && self.rms_norm_eps > 0.0) {
            return bad(format!(
                "rms_norm_eps must be positive, found {}",
                self.rms_norm_eps
            ));
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 0.0) {
            return bad(format!("rope_theta must be positive, found {}", self.rope_theta));
        }
        Ok(())
    }

    /// Parses and validates a Hugging Face `config.json`. Fields the byte decoder does not use
    /// are ignored, except those that would make it compute something else than the checkpoint
    /// was trained for (another `model_type` or `hidden_act`, attention or MLP biases, rope
    /// scaling, a `head_dim` other than hidden / heads): those are errors.
    pub fn from_json(text: &str) -> Result<Self, ModelError> {
        let value: Value = serde_json::from_str(text).map_err(|e| ModelError::Json {
            path: None,
            message: e.to_string(),
        })?;
        let Value::Object(obj) = value else {
            return Err(ModelError::Config("config.json must be a JSON object".into()));
        };
        Self::from_object(&obj)
    }

    /// Reads, parses and validates a `config.json` file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ModelError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::Io {
            path: path.to_owned(),
            source: e,
        })?;
        Self::from_json(&text).map_err(|e| match e {
            ModelError::Json { message, .. } => ModelError::Json {
                path: Some(path.to_owned()),
                message,
            },
            other => other,
        })
    }

    fn from_object(obj: &Map<String, Value>) -> Result<Self, ModelError> {
        let text_is = |key: &str, want: &str| -> Result<(), ModelError> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(()),
                Some(Value::String(s)) if s == want => Ok(()),
                Some(other) => Err(ModelError::Config(format!(
                    "{key} is {other}, only \"{want}\" is supported"
                ))),
            }
        };
        text_is("model_type", "llama")?;
        text_is("hidden_act", "silu")?;
        for key in ["attention_bias", "mlp_bias"] {
            if obj.get(key).and_then(Value::as_bool) == Some(true) {
                return Err(ModelError::Config(format!("{key} = true is not supported")));
            }
        }
        // Older configs name rope scaling `rope_scaling`, newer ones put everything about rope
        // in `rope_parameters` (with `rope_theta` inside).
        for key in ["rope_scaling", "rope_parameters"] {
            if let Some(Value::Object(rope)) = obj.get(key) {
                let kind = rope.get("rope_type").or_else(|| rope.get("type"));
                if !matches!(kind, None | Some(Value::Null)) && kind != Some(&json!("default")) {
                    return Err(ModelError::Config(format!(
                        "{key} type {} is not supported (only default rotary embeddings)",
                        kind.unwrap_or(&Value::Null)
                    )));
                }
            }
        }

        let num_attention_heads = req_usize(obj, "num_attention_heads")?;
        let rope_theta = match opt_f64(obj, "rope_theta")? {
            Some(theta) => theta,
            None => match obj.get("rope_parameters") {
                Some(Value::Object(rope)) => opt_f64(rope, "rope_theta")?.unwrap_or(10000.0),
                _ => 10000.0,
            },
        };
        let bos = req_usize(obj, "bos_token_id")?;
        let cfg = LlamaConfig {
            vocab_size: req_usize(obj, "vocab_size")?,
            hidden_size: req_usize(obj, "hidden_size")?,
            intermediate_size: req_usize(obj, "intermediate_size")?,
            num_hidden_layers: req_usize(obj, "num_hidden_layers")?,
            num_attention_heads,
            num_key_value_heads: opt_usize(obj, "num_key_value_heads")?.unwrap_or(num_attention_heads),
            rms_norm_eps: opt_f64(obj, "rms_norm_eps")?.unwrap_or(1e-6),
            rope_theta,
            max_position_embeddings: req_usize(obj, "max_position_embeddings")?,
            tie_word_embeddings: match obj.get("tie_word_embeddings") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(other) => {
                    return Err(ModelError::Config(format!(
                        "tie_word_embeddings must be a boolean, found {other}"
                    )))
                }
            },
            bos_token_id: u32::try_from(bos)
                .map_err(|_| ModelError::Config(format!("bos_token_id {bos} does not fit a u32")))?,
        };
        if let Some(head_dim) = opt_usize(obj, "head_dim")? {
            if cfg.num_attention_heads != 0 && head_dim * cfg.num_attention_heads != cfg.hidden_size {
                return Err(ModelError::Config(format!(
                    "head_dim {head_dim} is not hidden_size / num_attention_heads ({} / {}); not supported",
                    cfg.hidden_size, cfg.num_attention_heads
                )));
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// The config as a Hugging Face `config.json` that `LlamaForCausalLM` loads.
    pub fn to_json(&self) -> String {
        let value = json!({
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "hidden_act": "silu",
            "attention_bias": false,
            "mlp_bias": false,
            "torch_dtype": "float32",
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "max_position_embeddings": self.max_position_embeddings,
            "tie_word_embeddings": self.tie_word_embeddings,
            "bos_token_id": self.bos_token_id,
        });
        let mut text = serde_json::to_string_pretty(&value).expect("a JSON value always serializes");
        text.push('\n');
        text
    }
}

fn opt_usize(obj: &Map<String, Value>, key: &str) -> Result<Option<usize>, ModelError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| ModelError::Config(format!("{key} must be a non-negative integer, found {v}"))),
    }
}

fn req_usize(obj: &Map<String, Value>, key: &str) -> Result<usize, ModelError> {
    opt_usize(obj, key)?.ok_or_else(|| ModelError::Config(format!("{key} is missing")))
}

fn opt_f64(obj: &Map<String, Value>, key: &str) -> Result<Option<f64>, ModelError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| ModelError::Config(format!("{key} must be a number, found {v}"))),
    }
}

/// Why a model could not be built, loaded or saved.
#[derive(Debug)]
#[non_exhaustive]
pub enum ModelError {
    /// A file could not be read or written.
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// `config.json` is not JSON.
    Json {
        /// The file, when the text came from one.
        path: Option<PathBuf>,
        /// The parser's message.
        message: String,
    },
    /// The config is missing a field, has a field of the wrong type, or its sizes do not fit.
    Config(String),
    /// A tensor the config calls for is not in the checkpoint.
    MissingTensor {
        /// Hugging Face name of the tensor.
        name: String,
    },
    /// The checkpoint has a tensor that this config has no place for (a layer past
    /// `num_hidden_layers`, a bias the architecture does not have, ...).
    UnexpectedTensor {
        /// Hugging Face name of the tensor.
        name: String,
    },
    /// A tensor's shape is not the one the config calls for.
    Shape {
        /// Hugging Face name of the tensor.
        name: String,
        /// The shape the config calls for.
        expected: Vec<usize>,
        /// The config fields that give `expected`, e.g. `[vocab_size, hidden_size]`.
        dims: &'static str,
        /// The tensor's shape.
        found: Vec<usize>,
    },
    /// A tensor is not floating point.
    Dtype {
        /// Hugging Face name of the tensor.
        name: String,
        /// Its dtype.
        found: DType,
    },
    /// `model.safetensors` could not be parsed.
    Safetensors {
        /// The file.
        path: PathBuf,
        /// candle's message.
        source: candle_core::Error,
    },
    /// A tensor operation failed.
    Candle(candle_core::Error),
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            ModelError::Json {
                path: Some(path),
                message,
            } => {
                write!(f, "{} is not valid JSON: {message}", path.display())
            }
            ModelError::Json { path: None, message } => write!(f, "config is not valid JSON: {message}"),
            ModelError::Config(msg) => write!(f, "invalid Llama config: {msg}"),
            ModelError::MissingTensor { name } => write!(f, "tensor `{name}` is missing from the checkpoint"),
            ModelError::UnexpectedTensor { name } => write!(
                f,
                "unexpected tensor `{name}`: a LlamaForCausalLM with this config has no such tensor"
            ),
            ModelError::Shape {
                name,
                expected,
                dims,
                found,
            } => {
                write!(
                    f,
                    "tensor `{name}` has shape {found:?}, expected {expected:?} = {dims}"
                )
            }
            ModelError::Dtype { name, found } => {
                write!(
                    f,
                    "tensor `{name}` has dtype {found:?}, expected a floating-point dtype"
                )
            }
            ModelError::Safetensors { path, source } => write!(f, "{}: {source}", path.display()),
            ModelError::Candle(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ModelError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ModelError::Io { source, .. } => Some(source),
            ModelError::Safetensors { source, .. } | ModelError::Candle(source) => Some(source),
            _ => None,
        }
    }
}

impl From<candle_core::Error> for ModelError {
    fn from(e: candle_core::Error) -> Self {
        ModelError::Candle(e)
    }
}

impl From<ModelError> for candle_core::Error {
    fn from(e: ModelError) -> Self {
        candle_core::Error::wrap(e)
    }
}

/// How a tensor is initialised by [`ByteLlama::random`].
#[derive(Clone, Copy, PartialEq)]
enum Init {
    Normal,
    Ones,
}

/// One tensor of the checkpoint: its Hugging Face name, the shape the config calls for and
/// the config fields that give it (for error messages).
struct Spec {
    name: String,
    shape: Vec<usize>,
    dims: &'static str,
    init: Init,
}

/// The checkpoint's tensors, in Hugging Face's order (`lm_head.bias` aside: it is optional).
fn specs(cfg: &LlamaConfig) -> Vec<Spec> {
    let (h, v, i) = (cfg.hidden_size, cfg.vocab_size, cfg.intermediate_size);
    let hd = cfg.head_dim();
    let (q, kv) = (cfg.num_attention_heads * hd, cfg.num_key_value_heads * hd);
    let spec = |name: String, shape: Vec<usize>, dims, init| Spec {
        name,
        shape,
        dims,
        init,
    };
    let mut out = vec![spec(
        "model.embed_tokens.weight".into(),
        vec![v, h],
        "[vocab_size, hidden_size]",
        Init::Normal,
    )];
    for l in 0..cfg.num_hidden_layers {
        let p = format!("model.layers.{l}");
        let q_dims = "[num_attention_heads * head_dim, hidden_size]";
        let kv_dims = "[num_key_value_heads * head_dim, hidden_size]";
        out.extend([
            spec(
                format!("{p}.self_attn.q_proj.weight"),
                vec![q, h],
                q_dims,
                Init::Normal,
            ),
            spec(
                format!("{p}.self_attn.k_proj.weight"),
                vec![kv, h],
                kv_dims,
                Init::Normal,
            ),
            spec(
                format!("{p}.self_attn.v_proj.weight"),
                vec![kv, h],
                kv_dims,
                Init::Normal,
            ),
            spec(
                format!("{p}.self_attn.o_proj.weight"),
                vec![h, q],
                "[hidden_size, num_attention_heads * head_dim]",
                Init::Normal,
            ),
            spec(
                format!("{p}.mlp.gate_proj.weight"),
                vec![i, h],
                "[intermediate_size, hidden_size]",
                Init::Normal,
            ),
            spec(
                format!("{p}.mlp.up_proj.weight"),
                vec![i, h],
                "[intermediate_size, hidden_size]",
                Init::Normal,
            ),
            spec(
                format!("{p}.mlp.down_proj.weight"),
                vec![h, i],
                "[hidden_size, intermediate_size]",
                Init::Normal,
            ),
            spec(
                format!("{p}.input_layernorm.weight"),
                vec![h],
                "[hidden_size]",
                Init::Ones,
            ),
            spec(
                format!("{p}.post_attention_layernorm.weight"),
                vec![h],
                "[hidden_size]",
                Init::Ones,
            ),
        ]);
    }
    out.push(spec(
        "model.norm.weight".into(),
        vec![h],
        "[hidden_size]",
        Init::Ones,
    ));
    if !cfg.tie_word_embeddings {
        out.push(spec(
            "lm_head.weight".into(),
            vec![v, h],
            "[vocab_size, hidden_size]",
            Init::Normal,
        ));
    }
    out
}

const LM_HEAD_BIAS: &str = "lm_head.bias";

/// splitmix64 (Steele, Lea, Flood): a tiny, well-mixed generator, so that
/// [`ByteLlama::random`] gives the same weights on every platform and candle version.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1]: never 0, so that `ln` in Box-Muller is finite.
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// `n` draws from N(0, std²) by Box-Muller, both values of each pair used.
    fn normals(&mut self, n: usize, std: f64) -> Vec<f32> {
        let mut out = Vec::with_capacity(n + 1);
        while out.len() < n {
            let r = (-2.0 * self.uniform().ln()).sqrt() * std;
            let theta = std::f64::consts::TAU * self.uniform();
            out.push((r * theta.cos()) as f32);
            out.push((r * theta.sin()) as f32);
        }
        out.truncate(n);
        out
    }
}

/// One decoder layer. The projections are stored transposed, `[in, out]` and contiguous:
/// candle's CPU matmul (gemm) is about 3x faster for a few rows (B = 3) with a row-major right
/// operand than with the transposed view of a Hugging Face `[out, in]` weight, and no slower
/// for one row or 32. The q, k, v weights are stacked along the output dimension (and gate,
/// up likewise) so that each is one matrix product on the step's hot path.
struct Layer {
    input_norm: Tensor,
    /// `[hidden, (heads + 2 kv_heads) * head_dim]`: q, then k, then v.
    qkv_t: Tensor,
    /// `[heads * head_dim, hidden]`.
    o_t: Tensor,
    post_norm: Tensor,
    /// `[hidden, 2 * intermediate]`: gate, then up.
    gate_up_t: Tensor,
    /// `[intermediate, hidden]`.
    down_t: Tensor,
}

/// Keys and values of every position fed so far, all rows at the same position.
struct KvCache {
    /// Per layer `[rows, kv_heads, capacity, head_dim]`, written in place with `slice_set`; a
    /// sequence of `batch <= rows` rows uses the first `batch` (a contiguous view), so that
    /// alternating batch sizes do not reallocate.
    k: Vec<Tensor>,
    v: Vec<Tensor>,
    /// Rows the buffers were allocated for (0: none yet).
    rows: usize,
    /// Rows of the running (or last) sequence.
    batch: usize,
    capacity: usize,
    /// Positions filled; 0 means no sequence is running.
    len: usize,
}

/// Positions allocated at first: a start input (2) plus a 16-byte word fits, so a word never
/// reallocates; longer sequences double the buffers up to `max_position_embeddings`.
const INITIAL_CAPACITY: usize = 32;

/// WeLT's byte decoder: a Llama (`LlamaForCausalLM`) with a KV cache, batched, CPU f32.
pub struct ByteLlama {
    cfg: LlamaConfig,
    device: Device,
    /// `[vocab, hidden]`.
    embed: Tensor,
    /// `[1, hidden]`: the BOS row of `embed`.
    bos: Tensor,
    layers: Vec<Layer>,
    norm: Tensor,
    /// `[hidden, vocab]`: the output projection, transposed (a copy of `embed` when tied).
    lm_head_t: Tensor,
    /// `[vocab]`, added to the logits.
    lm_bias: Option<Tensor>,
    /// `[max_position_embeddings, head_dim / 2]`: rotary tables, computed once.
    cos: Tensor,
    sin: Tensor,
    cache: KvCache,
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
    /// A model with deterministic random weights: Hugging Face's initialisation (normal with
    /// std 0.02 for embeddings and projections, norms 1) drawn from a splitmix64 stream seeded
    /// with `seed`, tensor by tensor in [`ByteLlama::tensors`] order. candle's global RNG is not
    /// used, so the weights depend on the seed and config only.
    pub fn random(cfg: LlamaConfig, seed: u64, device: &Device) -> Result<Self, ModelError> {
        cfg.validate()?;
        let mut rng = SplitMix64(seed);
        let mut tensors = HashMap::new();
        for spec in specs(&cfg) {
            let n = spec.shape.iter().product();
            let data = match spec.init {
                Init::Normal => rng.normals(n, 0.02),
                Init::Ones => vec![1.0; n],
            };
            tensors.insert(spec.name, Tensor::from_vec(data, spec.shape, device)?);
        }
        Self::from_tensors(cfg, tensors, device)
    }

    /// A model from Hugging Face-named tensors (any float dtype; converted to f32 on `device`).
    /// With tied embeddings `lm_head.weight` is ignored (the embedding is the output
    /// projection, as in Hugging Face); `lm_head.bias` is optional; rotary `inv_freq` buffers
    /// of old checkpoints are ignored. Any other tensor the config has no place for, a missing
    /// tensor, or a wrong shape is an error naming the tensor.
    pub fn from_tensors(
        cfg: LlamaConfig,
        mut tensors: HashMap<String, Tensor>,
        device: &Device,
    ) -> Result<Self, ModelError> {
        cfg.validate()?;
        let mut take = |name: &str, shape: &[usize], dims: &'static str| -> Result<Tensor, ModelError> {
            let t = tensors
                .remove(name)
                .ok_or_else(|| ModelError::MissingTensor { name: name.into() })?;
            checked(name, t, shape, dims, device)
        };
        let mut by_name = HashMap::new();
        for spec in specs(&cfg) {
            let t = take(&spec.name, &spec.shape, spec.dims)?;
            by_name.insert(spec.name, t);
        }
        let lm_bias = match tensors.remove(LM_HEAD_BIAS) {
            Some(t) => Some(checked(
                LM_HEAD_BIAS,
                t,
                &[cfg.vocab_size],
                "[vocab_size]",
                device,
            )?),
            None => None,
        };
        if cfg.tie_word_embeddings {
            tensors.remove("lm_head.weight");
        }
        let mut left: Vec<&String> = tensors
            .keys()
            .filter(|name| !name.ends_with("self_attn.rotary_emb.inv_freq"))
            .collect();
        left.sort();
        if let Some(name) = left.first() {
            return Err(ModelError::UnexpectedTensor {
                name: (*name).clone(),
            });
        }

        let mut get = |name: String| by_name.remove(&name).expect("every spec was taken above");
        let embed = get("model.embed_tokens.weight".into());
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for l in 0..cfg.num_hidden_layers {
            let p = format!("model.layers.{l}");
            let (q, k, v) = (
                get(format!("{p}.self_attn.q_proj.weight")),
                get(format!("{p}.self_attn.k_proj.weight")),
                get(format!("{p}.self_attn.v_proj.weight")),
            );
            let (gate, up) = (
                get(format!("{p}.mlp.gate_proj.weight")),
                get(format!("{p}.mlp.up_proj.weight")),
            );
            layers.push(Layer {
                input_norm: get(format!("{p}.input_layernorm.weight")),
                qkv_t: transposed(&Tensor::cat(&[&q, &k, &v], 0)?)?,
                o_t: transposed(&get(format!("{p}.self_attn.o_proj.weight")))?,
                post_norm: get(format!("{p}.post_attention_layernorm.weight")),
                gate_up_t: transposed(&Tensor::cat(&[&gate, &up], 0)?)?,
                down_t: transposed(&get(format!("{p}.mlp.down_proj.weight")))?,
            });
        }
        let norm = get("model.norm.weight".into());
        let lm_head_t = if cfg.tie_word_embeddings {
            transposed(&embed)?
        } else {
            transposed(&get("lm_head.weight".into()))?
        };
        let bos = embed.narrow(0, cfg.bos_token_id as usize, 1)?;
        let (cos, sin) = rope_tables(&cfg, device)?;
        Ok(ByteLlama {
            device: device.clone(),
            embed,
            bos,
            layers,
            norm,
            lm_head_t,
            lm_bias,
            cos,
            sin,
            cache: KvCache {
                k: Vec::new(),
                v: Vec::new(),
                rows: 0,
                batch: 0,
                capacity: 0,
                len: 0,
            },
            cfg,
        })
    }

    /// Loads a Hugging Face checkpoint directory: `config.json` and `model.safetensors`
    /// (`LlamaForCausalLM` tensor names; f32, f16 or bf16, converted to f32).
    pub fn load(dir: impl AsRef<Path>, device: &Device) -> Result<Self, ModelError> {
        let dir = dir.as_ref();
        let cfg = LlamaConfig::from_file(dir.join("config.json"))?;
        let path = dir.join("model.safetensors");
        let bytes = std::fs::read(&path).map_err(|e| ModelError::Io {
            path: path.clone(),
            source: e,
        })?;
        let tensors =
            candle_core::safetensors::load_buffer(&bytes, device).map_err(|e| ModelError::Safetensors {
                path: path.clone(),
                source: e,
            })?;
        Self::from_tensors(cfg, tensors, device)
    }

    /// Writes `config.json` and `model.safetensors` (f32, Hugging Face names) into `dir`,
    /// creating it if needed; [`ByteLlama::load`] and `LlamaForCausalLM.from_pretrained` read
    /// them back (the latter without `lm_head.bias`, which a stock `LlamaForCausalLM` lacks).
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<(), ModelError> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| ModelError::Io {
            path: dir.to_owned(),
            source: e,
        })?;
        let config = dir.join("config.json");
        std::fs::write(&config, self.cfg.to_json()).map_err(|e| ModelError::Io {
            path: config,
            source: e,
        })?;
        let tensors: HashMap<String, Tensor> = self.tensors()?.into_iter().collect();
        let path = dir.join("model.safetensors");
        candle_core::safetensors::save(&tensors, &path).map_err(|e| ModelError::Safetensors {
            path: path.clone(),
            source: e,
        })
    }

    /// The weights under their Hugging Face names, in checkpoint order: what [`ByteLlama::save`]
    /// writes and [`ByteLlama::from_tensors`] takes. `lm_head.weight` only when untied,
    /// `lm_head.bias` only when a logit bias is set. The tensors are views of the model's
    /// storage, not necessarily contiguous.
    pub fn tensors(&self) -> candle_core::Result<Vec<(String, Tensor)>> {
        let cfg = &self.cfg;
        let hd = cfg.head_dim();
        let (q, kv, i) = (
            cfg.num_attention_heads * hd,
            cfg.num_key_value_heads * hd,
            cfg.intermediate_size,
        );
        let mut out = vec![("model.embed_tokens.weight".to_string(), self.embed.clone())];
        for (l, layer) in self.layers.iter().enumerate() {
            let p = format!("model.layers.{l}");
            out.extend([
                (
                    format!("{p}.self_attn.q_proj.weight"),
                    layer.qkv_t.narrow(1, 0, q)?.t()?,
                ),
                (
                    format!("{p}.self_attn.k_proj.weight"),
                    layer.qkv_t.narrow(1, q, kv)?.t()?,
                ),
                (
                    format!("{p}.self_attn.v_proj.weight"),
                    layer.qkv_t.narrow(1, q + kv, kv)?.t()?,
                ),
                (format!("{p}.self_attn.o_proj.weight"), layer.o_t.t()?),
                (
                    format!("{p}.mlp.gate_proj.weight"),
                    layer.gate_up_t.narrow(1, 0, i)?.t()?,
                ),
                (
                    format!("{p}.mlp.up_proj.weight"),
                    layer.gate_up_t.narrow(1, i, i)?.t()?,
                ),
                (format!("{p}.mlp.down_proj.weight"), layer.down_t.t()?),
                (format!("{p}.input_layernorm.weight"), layer.input_norm.clone()),
                (
                    format!("{p}.post_attention_layernorm.weight"),
                    layer.post_norm.clone(),
                ),
            ]);
        }
        out.push(("model.norm.weight".to_string(), self.norm.clone()));
        if !cfg.tie_word_embeddings {
            out.push(("lm_head.weight".to_string(), self.lm_head_t.t()?));
        }
        if let Some(bias) = &self.lm_bias {
            out.push((LM_HEAD_BIAS.to_string(), bias.clone()));
        }
        Ok(out)
    }

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
        c.batch = b;
        if b > c.rows {
            let capacity = INITIAL_CAPACITY.max(t).min(max);
            let zeros = || Tensor::zeros((b, kv, capacity, hd), DType::F32, &self.device);
            c.k = (0..self.cfg.num_hidden_layers)
                .map(|_| zeros())
                .collect::<candle_core::Result<_>>()?;
            c.v = (0..self.cfg.num_hidden_layers)
                .map(|_| zeros())
                .collect::<candle_core::Result<_>>()?;
            c.rows = b;
            c.capacity = capacity;
        } else if c.len + t > c.capacity {
            let capacity = (2 * c.capacity).max(c.len + t).min(max);
            let rows = c.rows;
            let grow = |old: &Tensor| -> candle_core::Result<Tensor> {
                let new = Tensor::zeros((rows, kv, capacity, hd), DType::F32, &self.device)?;
                new.slice_set(old, 2, 0)?;
                Ok(new)
            };
            c.k = c.k.iter().map(grow).collect::<candle_core::Result<_>>()?;
            c.v = c.v.iter().map(grow).collect::<candle_core::Result<_>>()?;
            c.capacity = capacity;
        }
        Ok(())
    }

    /// Runs `x` (`[b * t, hidden]`, row-major `[b, t]`) through the model after the cached
    /// positions; returns the logits of every position (`[b * t, vocab]`) or, with
    /// `last_only`, of the last one per row (`[b, vocab]`).
    fn step(&mut self, x: Tensor, b: usize, t: usize, last_only: bool) -> candle_core::Result<Tensor> {
        self.reserve(b, t)?;
        // candle's CPU kernels (matmul, softmax, norms, rope) split their work with rayon.
        // Called from outside the pool, each of them hands its work to the pool and sleeps
        // until it is done: some 40 handovers and wake-ups per step. Running the whole step on
        // a pool thread makes them ordinary fork-joins; measured 20-35% faster per step.
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
struct CachedAttention {
    /// Position of the first new query.
    pos: usize,
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

/// `[out, in]` (Hugging Face's layout) to a contiguous `[in, out]`.
fn transposed(w: &Tensor) -> candle_core::Result<Tensor> {
    w.t()?.contiguous()
}

/// Checks a checkpoint tensor's dtype and shape and brings it to f32 on `device`.
fn checked(
    name: &str,
    t: Tensor,
    shape: &[usize],
    dims: &'static str,
    device: &Device,
) -> Result<Tensor, ModelError> {
    if !t.dtype().is_float() {
        return Err(ModelError::Dtype {
            name: name.into(),
            found: t.dtype(),
        });
    }
    if t.dims() != shape {
        return Err(ModelError::Shape {
            name: name.into(),
            expected: shape.to_vec(),
            dims,
            found: t.dims().to_vec(),
        });
    }
    Ok(t.to_device(device)?.to_dtype(DType::F32)?.contiguous()?)
}

/// Rotary tables as Hugging Face computes them (in f32): `inv_freq[i] = 1 / theta^(2i / d)`,
/// angle = position * inv_freq; the rotation pairs element `i` with `i + d/2` (`rotate_half`).
fn rope_tables(cfg: &LlamaConfig, device: &Device) -> candle_core::Result<(Tensor, Tensor)> {
    let hd = cfg.head_dim();
    let half = hd / 2;
    let theta = cfg.rope_theta as f32;
    let inv: Vec<f32> = (0..half)
        .map(|i| 1.0 / theta.powf((2 * i) as f32 / hd as f32))
        .collect();
    let n = cfg.max_position_embeddings;
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
