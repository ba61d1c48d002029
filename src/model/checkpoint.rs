//! Checkpoints: a model from Hugging Face-named tensors, `config.json` + `model.safetensors`
//! read and written.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::init::specs;
use super::llama::{rope_tables, KvCache, Layer};
use super::{ByteLlama, LlamaConfig, ModelError};

pub(super) const LM_HEAD_BIAS: &str = "lm_head.bias";

impl ByteLlama {
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
        let metas = tensors
            .iter()
            .map(|(name, t)| {
                let meta = Meta {
                    dtype: Ok(t.dtype()),
                    shape: t.dims().to_vec(),
                };
                (name.clone(), meta)
            })
            .collect();
        check_tensors(&cfg, &metas)?;
        let has_bias = tensors.contains_key(LM_HEAD_BIAS);
        let mut take = |name: &str| -> Result<Tensor, ModelError> {
            let t = tensors.remove(name).expect("check_tensors found every tensor");
            Ok(t.to_device(device)?.to_dtype(DType::F32)?.contiguous()?)
        };
        let mut by_name = HashMap::new();
        for spec in specs(&cfg) {
            let t = take(&spec.name)?;
            by_name.insert(spec.name, t);
        }
        let lm_bias = if has_bias { Some(take(LM_HEAD_BIAS)?) } else { None };

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
        // Empty until the first sequence: the cache makes them as long as it is.
        let (cos, sin) = rope_tables(&cfg, 0, device)?;
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
            memory_limit: ByteLlama::DEFAULT_MEMORY_LIMIT,
            cfg,
        })
    }

    /// Loads a Hugging Face checkpoint directory: `config.json` and `model.safetensors`
    /// (`LlamaForCausalLM` tensor names; f32, f16, bf16 or f64, converted to f32).
    ///
    /// The config is checked against the safetensors header (names, shapes, dtypes) before
    /// the tensors are read, so every size the config gives is one the file justifies.
    pub fn load(dir: impl AsRef<Path>, device: &Device) -> Result<Self, ModelError> {
        let dir = dir.as_ref();
        let cfg = LlamaConfig::from_file(dir.join("config.json"))?;
        let path = dir.join("model.safetensors");
        let metas = read_header(&path)?;
        check_tensors(&cfg, &metas)?;
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
}

/// `[out, in]` (Hugging Face's layout) to a contiguous `[in, out]`.
fn transposed(w: &Tensor) -> candle_core::Result<Tensor> {
    w.t()?.contiguous()
}

/// A tensor as the checks see it, from a tensor or from a safetensors header.
struct Meta {
    /// The dtype, or the header's name of one candle cannot read.
    dtype: Result<DType, String>,
    shape: Vec<usize>,
}

/// Checks that `metas` are the tensors `cfg` calls for, with their shapes and float dtypes:
/// a missing tensor, a wrong shape or dtype, or one the config has no place for is an error
/// naming it. With tied embeddings `lm_head.weight` is ignored; `lm_head.bias` is optional;
/// rotary `inv_freq` buffers of old checkpoints are ignored.
fn check_tensors(cfg: &LlamaConfig, metas: &HashMap<String, Meta>) -> Result<(), ModelError> {
    let check = |name: &str, shape: &[usize], dims: &'static str| -> Result<(), ModelError> {
        let meta = metas
            .get(name)
            .ok_or_else(|| ModelError::MissingTensor { name: name.into() })?;
        match &meta.dtype {
            Ok(dtype) if dtype.is_float() => {}
            Ok(dtype) => {
                return Err(ModelError::Dtype {
                    name: name.into(),
                    found: *dtype,
                })
            }
            Err(unknown) => {
                return Err(ModelError::UnsupportedDtype {
                    name: name.into(),
                    found: unknown.clone(),
                })
            }
        }
        if meta.shape != shape {
            return Err(ModelError::Shape {
                name: name.into(),
                expected: shape.to_vec(),
                dims,
                found: meta.shape.clone(),
            });
        }
        Ok(())
    };
    // Lazy: stops at the first tensor that is missing, so this takes as many steps as the
    // checkpoint has tensors, whatever the config claims.
    let mut expected = std::collections::HashSet::new();
    for spec in specs(cfg) {
        check(&spec.name, &spec.shape, spec.dims)?;
        expected.insert(spec.name);
    }
    if metas.contains_key(LM_HEAD_BIAS) {
        check(LM_HEAD_BIAS, &[cfg.vocab_size], "[vocab_size]")?;
    }
    let mut left: Vec<&String> = metas
        .keys()
        .filter(|name| {
            let known = expected.contains(*name)
                || *name == LM_HEAD_BIAS
                || (cfg.tie_word_embeddings && *name == "lm_head.weight")
                || name.ends_with("self_attn.rotary_emb.inv_freq");
            !known
        })
        .collect();
    left.sort();
    match left.first() {
        Some(name) => Err(ModelError::UnexpectedTensor {
            name: (*name).clone(),
        }),
        None => Ok(()),
    }
}

/// The safetensors format's own bound on the header (the `safetensors` crate refuses larger).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Reads the names, dtypes and shapes of `path`'s tensors from its header, without reading
/// the tensors. The data offsets are left to candle's loader, which checks them.
fn read_header(path: &Path) -> Result<HashMap<String, Meta>, ModelError> {
    use std::io::Read;
    let bad = |msg: String| ModelError::Safetensors {
        path: path.to_owned(),
        source: candle_core::Error::Msg(msg),
    };
    let io = |e| ModelError::Io {
        path: path.to_owned(),
        source: e,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let file_len = file.metadata().map_err(io)?.len();
    let mut len = [0u8; 8];
    if file_len < 8 {
        return Err(bad(format!(
            "{file_len} bytes is too short for a safetensors file (8-byte header length first)"
        )));
    }
    file.read_exact(&mut len).map_err(io)?;
    let len = u64::from_le_bytes(len);
    if len > MAX_HEADER_BYTES || len > file_len - 8 {
        return Err(bad(format!(
            "the header claims {len} bytes; the file has {} after the length and the format allows {MAX_HEADER_BYTES}",
            file_len - 8
        )));
    }
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header).map_err(io)?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|e| bad(format!("the header is not a JSON object: {e}")))?;
    let mut metas = HashMap::with_capacity(header.len());
    for (name, info) in header {
        if name == "__metadata__" {
            continue;
        }
        let dtype = info
            .get("dtype")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| bad(format!("tensor `{name}` has no dtype in the header")))?;
        let shape = info
            .get("shape")
            .and_then(serde_json::Value::as_array)
            .and_then(|dims| {
                dims.iter()
                    .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
                    .collect::<Option<Vec<usize>>>()
            })
            .ok_or_else(|| bad(format!("tensor `{name}` has no valid shape in the header")))?;
        let dtype = match dtype {
            "U8" => Ok(DType::U8),
            "U32" => Ok(DType::U32),
            "I16" => Ok(DType::I16),
            "I32" => Ok(DType::I32),
            "I64" => Ok(DType::I64),
            "F16" => Ok(DType::F16),
            "BF16" => Ok(DType::BF16),
            "F32" => Ok(DType::F32),
            "F64" => Ok(DType::F64),
            other => Err(other.to_string()),
        };
        metas.insert(name, Meta { dtype, shape });
    }
    Ok(metas)
}
