//! [`LlamaConfig`]: the Hugging Face `config.json` fields the byte decoder uses, parsed and
//! checked.

use std::path::Path;

use serde_json::{json, Map, Value};

use super::ModelError;

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

    /// Number of tensors the checkpoint holds (`lm_head.bias` aside), or `None` when that
    /// does not fit a `usize`.
    pub fn tensor_count(&self) -> Option<usize> {
        let untied = usize::from(!self.tie_word_embeddings);
        self.num_hidden_layers.checked_mul(9)?.checked_add(2 + untied)
    }

    /// Number of weights (`lm_head.bias` aside), or `None` when that does not fit a `u128`.
    /// Assumes a validated config.
    pub fn parameter_count(&self) -> Option<u128> {
        let [v, h, i, l] = [
            self.vocab_size,
            self.hidden_size,
            self.intermediate_size,
            self.num_hidden_layers,
        ]
        .map(|n| n as u128);
        let kv = (self.num_key_value_heads as u128).checked_mul(self.head_dim() as u128)?;
        // q and o are [hidden, hidden], k and v [kv, hidden], gate, up and down
        // [intermediate, hidden], two norms of hidden.
        let attention = h
            .checked_mul(h)?
            .checked_mul(2)?
            .checked_add(kv.checked_mul(h)?.checked_mul(2)?)?;
        let layer = attention
            .checked_add(i.checked_mul(h)?.checked_mul(3)?)?
            .checked_add(h.checked_mul(2)?)?;
        let embeddings = v
            .checked_mul(h)?
            .checked_mul(if self.tie_word_embeddings { 1 } else { 2 })?;
        l.checked_mul(layer)?.checked_add(embeddings)?.checked_add(h)
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
        // The forward pass computes in f32: a value that is positive as an f64 but 0 or
        // infinite as an f32 would make every logit NaN.
        let eps = self.rms_norm_eps as f32;
        if !(eps.is_finite() && eps > 0.0) {
            return bad(format!(
                "rms_norm_eps must be positive and finite in f32, found {}",
                self.rms_norm_eps
            ));
        }
        // A base below 1 makes the rotary frequencies grow with the dimension (up to
        // 1 / theta, infinite for a tiny theta), so angles and then logits become NaN.
        let theta = self.rope_theta as f32;
        if !(theta.is_finite() && theta >= 1.0) {
            return bad(format!(
                "rope_theta must be at least 1 and finite in f32, found {}",
                self.rope_theta
            ));
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
    ///
    /// A config is a few hundred bytes; a file over [`LlamaConfig::MAX_FILE_BYTES`] (say a
    /// link to `/dev/zero`) is refused after reading that much, not read to the end.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ModelError> {
        use std::io::Read;
        let path = path.as_ref();
        let io = |source| ModelError::Io {
            path: path.to_owned(),
            source,
        };
        let mut text = String::new();
        std::fs::File::open(path)
            .map_err(io)?
            .take(Self::MAX_FILE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(io)?;
        if text.len() as u64 > Self::MAX_FILE_BYTES {
            return Err(io(std::io::Error::other(format!(
                "larger than {} bytes, the most a config.json may hold",
                Self::MAX_FILE_BYTES
            ))));
        }
        Self::from_json(&text).map_err(|e| match e {
            ModelError::Json { message, .. } => ModelError::Json {
                path: Some(path.to_owned()),
                message,
            },
            ModelError::Config(message) => ModelError::Config(format!("{}: {message}", path.display())),
            other => other,
        })
    }

    /// The largest `config.json` [`LlamaConfig::from_file`] reads: 1 MiB.
    pub const MAX_FILE_BYTES: u64 = 1 << 20;

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
            // Checked: a product that wraps could equal hidden_size by accident.
            let product = head_dim.checked_mul(cfg.num_attention_heads);
            if cfg.num_attention_heads != 0 && product != Some(cfg.hidden_size) {
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
