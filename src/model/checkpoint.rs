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
