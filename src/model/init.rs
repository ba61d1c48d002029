//! The checkpoint's tensors as the config calls for them, and [`ByteLlama::random`]'s
//! deterministic initialisation.

use std::collections::HashMap;

use candle_core::{Device, Tensor};

use super::{ByteLlama, LlamaConfig, ModelError};
use crate::rng::SplitMix64;

/// How a tensor is initialised by [`ByteLlama::random`].
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Init {
    Normal,
    Ones,
}

/// One tensor of the checkpoint: its Hugging Face name, the shape the config calls for and
/// the config fields that give it (for error messages).
pub(super) struct Spec {
    pub(super) name: String,
    pub(super) shape: Vec<usize>,
    pub(super) dims: &'static str,
    pub(super) init: Init,
}

/// The checkpoint's tensors, in Hugging Face's order (`lm_head.bias` aside: it is optional).
/// Lazy, so that a check against a checkpoint stops at the first tensor that is not there
/// instead of first listing the billions a hostile `num_hidden_layers` calls for.
pub(super) fn specs(cfg: &LlamaConfig) -> impl Iterator<Item = Spec> + '_ {
    let (h, v, i) = (cfg.hidden_size, cfg.vocab_size, cfg.intermediate_size);
    let hd = cfg.head_dim();
    let (q, kv) = (cfg.num_attention_heads * hd, cfg.num_key_value_heads * hd);
    let spec = |name: String, shape: Vec<usize>, dims, init| Spec {
        name,
        shape,
        dims,
        init,
    };
    let embed = spec(
        "model.embed_tokens.weight".into(),
        vec![v, h],
        "[vocab_size, hidden_size]",
        Init::Normal,
    );
    let layers = (0..cfg.num_hidden_layers).flat_map(move |l| {
        let p = format!("model.layers.{l}");
        let q_dims = "[num_attention_heads * head_dim, hidden_size]";
        let kv_dims = "[num_key_value_heads * head_dim, hidden_size]";
        [
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
        ]
    });
    let mut tail = vec![spec(
        "model.norm.weight".into(),
        vec![h],
        "[hidden_size]",
        Init::Ones,
    )];
    if !cfg.tie_word_embeddings {
        tail.push(spec(
            "lm_head.weight".into(),
            vec![v, h],
            "[vocab_size, hidden_size]",
            Init::Normal,
        ));
    }
    std::iter::once(embed).chain(layers).chain(tail)
}

impl ByteLlama {
    /// A model with deterministic random weights: Hugging Face's initialisation (normal with
    /// std 0.02 for embeddings and projections, norms 1) drawn from a splitmix64 stream seeded
    /// with `seed`, tensor by tensor in [`ByteLlama::tensors`] order. candle's global RNG is not
    /// used, so the weights depend on the seed and config only.
    ///
    /// The weights (4 bytes each, plus the stacked and transposed copies the model keeps) must
    /// fit [`ByteLlama::DEFAULT_MEMORY_LIMIT`]; a larger config is [`ModelError::TooLarge`].
    pub fn random(cfg: LlamaConfig, seed: u64, device: &Device) -> Result<Self, ModelError> {
        cfg.validate()?;
        // While the model is assembled, the drawn tensors and their stacked copies coexist.
        let needed = cfg.parameter_count().and_then(|n| n.checked_mul(8));
        if needed.is_none_or(|n| n > u128::from(ByteLlama::DEFAULT_MEMORY_LIMIT)) {
            return Err(ModelError::TooLarge {
                what: "the random weights".into(),
                needed,
                limit: ByteLlama::DEFAULT_MEMORY_LIMIT,
            });
        }
        let mut rng = SplitMix64::new(seed);
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
}
