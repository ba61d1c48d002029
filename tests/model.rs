//! The byte decoder (`welt::model`): its forward pass against a plain-Rust Llama written here
//! (naive loops over `Vec<f32>`, f64 sums), the KV cache against full recomputation, the
//! checkpoint format and its errors, conditioning and the deterministic initialisation.

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use welt::model::{ByteLlama, LlamaConfig, ModelError};
use welt_runtime::WordModel;

const CPU: Device = Device::Cpu;

/// Vocabulary 16, hidden 8, 2 layers, 2 query heads sharing 1 key/value head, untied.
fn tiny_gqa() -> LlamaConfig {
    LlamaConfig {
        vocab_size: 16,
        hidden_size: 8,
        intermediate_size: 12,
        num_hidden_layers: 2,
        num_attention_heads: 2,
        num_key_value_heads: 1,
        rms_norm_eps: 1e-6,
        rope_theta: 10000.0,
        max_position_embeddings: 16,
        tie_word_embeddings: false,
        bos_token_id: 2,
    }
}

/// Tied embeddings, 4 heads of width 2 on 2 key/value heads, a small rope base (large angles).
fn tiny_tied() -> LlamaConfig {
    LlamaConfig {
        num_attention_heads: 4,
        num_key_value_heads: 2,
        tie_word_embeddings: true,
        rope_theta: 7.0,
        rms_norm_eps: 1e-5,
        ..tiny_gqa()
    }
}

/// Plain multi-head attention (as many key/value heads as query heads), 3 layers.
fn tiny_mha() -> LlamaConfig {
    LlamaConfig {
        num_attention_heads: 2,
        num_key_value_heads: 2,
        num_hidden_layers: 3,
        ..tiny_gqa()
    }
}

/// A tiny deterministic generator for test data, independent of the model's.
struct Lcg(u64);

impl Lcg {
    fn next_f32(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32) / (1u64 << 24) as f32
    }
    /// Uniform in [-1, 1).
    fn sym(&mut self) -> f32 {
        2.0 * self.next_f32() - 1.0
    }
    fn below(&mut self, n: u32) -> u32 {
        ((self.next_f32() * n as f32) as u32).min(n - 1)
    }
    fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| scale * self.sym()).collect()
    }
}

/// A model whose weights are big enough for the logits to differ visibly (the std 0.02
/// initialisation makes every logit nearly 0) and whose norms are not all 1, so that a
/// forgotten norm weight shows: `random`'s tensors, rescaled, rebuilt with `from_tensors`.
fn test_model(cfg: LlamaConfig, seed: u64, bias: bool) -> ByteLlama {
    let base = ByteLlama::random(cfg.clone(), seed, &CPU).unwrap();
    let mut rng = Lcg(seed ^ 0x5eed);
    let mut tensors = HashMap::new();
    for (name, t) in base.tensors().unwrap() {
        let t = if name.ends_with("norm.weight") {
            let n = t.elem_count();
            Tensor::from_vec(rng.vec(n, 0.5).iter().map(|v| 1.0 + v).collect(), t.shape(), &CPU).unwrap()
        } else {
            (t * 25.0).unwrap()
        };
        tensors.insert(name, t);
    }
    if bias {
        tensors.insert(
            "lm_head.bias".into(),
            Tensor::from_vec(rng.vec(cfg.vocab_size, 2.0), cfg.vocab_size, &CPU).unwrap(),
        );
    }
    ByteLlama::from_tensors(cfg, tensors, &CPU).unwrap()
}

/// An independent Llama forward pass: row-major `Vec<f32>` weights, one position at a time,
/// attention over all earlier positions, sums in f64.
struct Reference {
    cfg: LlamaConfig,
    w: HashMap<String, Vec<f32>>,
}

impl Reference {
    fn new(model: &ByteLlama) -> Self {
        let w = model
            .tensors()
            .unwrap()
            .into_iter()
            .map(|(name, t)| (name, t.flatten_all().unwrap().to_vec1::<f32>().unwrap()))
            .collect();
        Reference {
            cfg: model.config().clone(),
            w,
        }
    }

    fn w(&self, name: &str) -> &[f32] {
        &self.w[name]
    }

    fn embed(&self, token: u32) -> Vec<f32> {
        let h = self.cfg.hidden_size;
        self.w("model.embed_tokens.weight")[token as usize * h..][..h].to_vec()
    }

    /// `w` is `[out, x.len()]`, row-major.
    fn matvec(w: &[f32], x: &[f32]) -> Vec<f32> {
        w.chunks(x.len())
            .map(|row| row.iter().zip(x).map(|(&a, &b)| a as f64 * b as f64).sum::<f64>() as f32)
            .collect()
    }

    fn rms_norm(&self, x: &[f32], w: &[f32]) -> Vec<f32> {
        let ms = x.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / x.len() as f64;
        let r = 1.0 / (ms + self.cfg.rms_norm_eps).sqrt();
        x.iter()
            .zip(w)
            .map(|(&v, &g)| (v as f64 * r) as f32 * g)
            .collect()
    }

    /// Hugging Face's `q * cos + rotate_half(q) * sin` on one head at position `pos`.
    fn rope(&self, head: &mut [f32], pos: usize) {
        let d = head.len();
        for i in 0..d / 2 {
            let inv = 1.0 / self.cfg.rope_theta.powf((2 * i) as f64 / d as f64);
            let (s, c) = (pos as f64 * inv).sin_cos();
            let (x1, x2) = (head[i] as f64, head[i + d / 2] as f64);
            head[i] = (x1 * c - x2 * s) as f32;
            head[i + d / 2] = (x2 * c + x1 * s) as f32;
        }
    }

    /// Logits at every position of one row's input embeddings.
    fn forward(&self, inputs: &[Vec<f32>]) -> Vec<Vec<f32>> {
        let cfg = &self.cfg;
        let (nh, nkv) = (cfg.num_attention_heads, cfg.num_key_value_heads);
        let d = cfg.hidden_size / nh;
        let mut xs: Vec<Vec<f32>> = inputs.to_vec();
        for l in 0..cfg.num_hidden_layers {
            let p = format!("model.layers.{l}");
            let (mut qs, mut ks, mut vs) = (Vec::new(), Vec::new(), Vec::new());
            for (pos, x) in xs.iter().enumerate() {
                let h = self.rms_norm(x, self.w(&format!("{p}.input_layernorm.weight")));
                let mut q = Self::matvec(self.w(&format!("{p}.self_attn.q_proj.weight")), &h);
                let mut k = Self::matvec(self.w(&format!("{p}.self_attn.k_proj.weight")), &h);
                let v = Self::matvec(self.w(&format!("{p}.self_attn.v_proj.weight")), &h);
                q.chunks_mut(d).for_each(|head| self.rope(head, pos));
                k.chunks_mut(d).for_each(|head| self.rope(head, pos));
                qs.push(q);
                ks.push(k);
                vs.push(v);
            }
            for pos in 0..xs.len() {
                let mut out = vec![0f32; nh * d];
                for head in 0..nh {
                    let kvh = head / (nh / nkv);
                    let q = &qs[pos][head * d..][..d];
                    let scores: Vec<f64> = (0..=pos)
                        .map(|j| {
                            let k = &ks[j][kvh * d..][..d];
                            q.iter().zip(k).map(|(&a, &b)| a as f64 * b as f64).sum::<f64>()
                                / (d as f64).sqrt()
                        })
                        .collect();
                    let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let exps: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                    let total: f64 = exps.iter().sum();
                    for (j, e) in exps.iter().enumerate() {
                        for (o, &v) in out[head * d..][..d].iter_mut().zip(&vs[j][kvh * d..][..d]) {
                            *o += (e / total * v as f64) as f32;
                        }
                    }
                }
                let o = Self::matvec(self.w(&format!("{p}.self_attn.o_proj.weight")), &out);
                xs[pos].iter_mut().zip(o).for_each(|(x, o)| *x += o);
            }
            for x in xs.iter_mut() {
                let h = self.rms_norm(x, self.w(&format!("{p}.post_attention_layernorm.weight")));
                let g = Self::matvec(self.w(&format!("{p}.mlp.gate_proj.weight")), &h);
                let u = Self::matvec(self.w(&format!("{p}.mlp.up_proj.weight")), &h);
                let a: Vec<f32> = g
                    .iter()
                    .zip(&u)
                    .map(|(&g, &u)| g / (1.0 + (-g).exp()) * u)
                    .collect();
                let down = Self::matvec(self.w(&format!("{p}.mlp.down_proj.weight")), &a);
                x.iter_mut().zip(down).for_each(|(x, o)| *x += o);
            }
        }
        let head = if cfg.tie_word_embeddings {
            "model.embed_tokens.weight"
        } else {
            "lm_head.weight"
        };
        xs.iter()
            .map(|x| {
                let h = self.rms_norm(x, self.w("model.norm.weight"));
                let mut logits = Self::matvec(self.w(head), &h);
                if let Some(bias) = self.w.get("lm_head.bias") {
                    logits.iter_mut().zip(bias).for_each(|(l, b)| *l += b);
                }
                logits
            })
            .collect()
    }
}

fn assert_close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol,
            "{what}: index {i}: got {g}, want {w} (tolerance {tol})"
        );
    }
}

fn rows(t: &Tensor) -> Vec<Vec<f32>> {
    t.to_vec2::<f32>().unwrap()
}

/// Three rows of different tokens, and a condition vector per row.
fn inputs(cfg: &LlamaConfig, seed: u64, steps: usize) -> (Vec<Vec<u32>>, Vec<Vec<f32>>) {
    let mut rng = Lcg(seed);
    let tokens = (0..3)
        .map(|_| (0..steps).map(|_| rng.below(cfg.vocab_size as u32)).collect())
        .collect();
    let conds = (0..3).map(|_| rng.vec(cfg.hidden_size, 1.5)).collect();
    (tokens, conds)
}

fn cond_tensor(conds: &[Vec<f32>]) -> Tensor {
    Tensor::from_vec(conds.concat(), (conds.len(), conds[0].len()), &CPU).unwrap()
}

fn column(tokens: &[Vec<u32>], s: usize) -> Vec<u32> {
    tokens.iter().map(|row| row[s]).collect()
}

#[test]
fn forward_matches_reference() {
    for (name, cfg, bias) in [
        ("gqa untied", tiny_gqa(), false),
        ("tied", tiny_tied(), false),
        ("mha with bias", tiny_mha(), true),
    ] {
        let mut model = test_model(cfg.clone(), 11, bias);
        let reference = Reference::new(&model);
        let steps = 6;
        let (tokens, conds) = inputs(&cfg, 3, steps);
        let bos = reference.embed(cfg.bos_token_id);
        for with_condition in [true, false] {
            // Per row: [condition], BOS, tokens.
            let expected: Vec<Vec<Vec<f32>>> = (0..3)
                .map(|r| {
                    let mut seq = if with_condition {
                        vec![conds[r].clone()]
                    } else {
                        vec![]
                    };
                    seq.push(bos.clone());
                    seq.extend(tokens[r].iter().map(|&t| reference.embed(t)));
                    reference.forward(&seq)
                })
                .collect();
            let first = usize::from(with_condition);
            let max_logit = expected
                .iter()
                .flatten()
                .flatten()
                .fold(0f32, |m, v| m.max(v.abs()));
            assert!(
                max_logit > 1.0,
                "{name}: logits too small to test anything ({max_logit})"
            );

            // Word by word: start, then one token per step.
            let cond = cond_tensor(&conds);
            let logits = model.start(3, with_condition.then_some(&cond)).unwrap();
            for (r, got) in rows(&logits).iter().enumerate() {
                assert_close(got, &expected[r][first], 1e-4, &format!("{name}: start, row {r}"));
            }
            for s in 0..steps {
                let logits = model.next(&column(&tokens, s)).unwrap();
                for (r, got) in rows(&logits).iter().enumerate() {
                    let what = format!("{name}: cond {with_condition}, step {s}, row {r}");
                    assert_close(got, &expected[r][first + 1 + s], 1e-4, &what);
                }
            }
            assert_eq!(model.position(), first + 1 + steps);

            // The whole sequence at once: every position.
            model.reset();
            let all = if with_condition {
                let embeds: Vec<f32> = (0..3)
                    .flat_map(|r| {
                        let mut seq = vec![conds[r].clone(), bos.clone()];
                        seq.extend(tokens[r].iter().map(|&t| reference.embed(t)));
                        seq.concat()
                    })
                    .collect();
                let embeds = Tensor::from_vec(embeds, (3, steps + 2, cfg.hidden_size), &CPU).unwrap();
                model.forward_embeds(&embeds).unwrap()
            } else {
                let ids: Vec<u32> = (0..3)
                    .flat_map(|r| std::iter::once(cfg.bos_token_id).chain(tokens[r].iter().copied()))
                    .collect();
                model
                    .forward_tokens(&Tensor::from_vec(ids, (3, steps + 1), &CPU).unwrap())
                    .unwrap()
            };
            for (r, row) in all.to_vec3::<f32>().unwrap().iter().enumerate() {
                assert_eq!(row.len(), expected[r].len());
                for (pos, got) in row.iter().enumerate() {
                    let what = format!("{name}: full, cond {with_condition}, row {r}, position {pos}");
                    assert_close(got, &expected[r][pos], 1e-4, &what);
                }
            }
        }
    }
}

/// Logits of the last position, recomputed from scratch on a fresh model.
fn recompute_last(model: &mut ByteLlama, cond: &Tensor, bos: u32, fed: &[Vec<u32>]) -> Vec<Vec<f32>> {
    model.reset();
    let b = fed.len();
    model.forward_embeds(&cond.unsqueeze(1).unwrap()).unwrap();
    let ids: Vec<u32> = fed
        .iter()
        .flat_map(|row| std::iter::once(bos).chain(row.iter().copied()))
        .collect();
    let t = ids.len() / b;
    let all = model
        .forward_tokens(&Tensor::from_vec(ids, (b, t), &CPU).unwrap())
        .unwrap();
    rows(&all.narrow(1, t - 1, 1).unwrap().squeeze(1).unwrap())
}

#[test]
fn kv_cache_steps_equal_full_recompute() {
    let cfg = LlamaConfig {
        vocab_size: 256,
        hidden_size: 32,
        intermediate_size: 48,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        max_position_embeddings: 64,
        ..LlamaConfig::welt_default()
    };
    let mut model = test_model(cfg.clone(), 5, true);
    let mut fresh = test_model(cfg.clone(), 5, true);
    let (tokens, conds) = inputs(&cfg, 9, 10);
    let cond = cond_tensor(&conds);
    let mut got = rows(&model.start(3, Some(&cond)).unwrap());
    for s in 0..=10 {
        let fed: Vec<Vec<u32>> = tokens.iter().map(|row| row[..s].to_vec()).collect();
        let want = recompute_last(&mut fresh, &cond, cfg.bos_token_id, &fed);
        for r in 0..3 {
            assert_close(&got[r], &want[r], 1e-4, &format!("step {s}, row {r}"));
        }
        if s < 10 {
            got = rows(&model.next(&column(&tokens, s)).unwrap());
        }
    }
}

#[test]
fn chunked_prefill_equals_one_pass() {
    // Several positions fed after cached ones: the causal mask must be offset by the cache.
    let cfg = tiny_tied();
    let mut model = test_model(cfg.clone(), 21, false);
    let ids: Vec<u32> = (0..2 * 9).map(|i| (i * 7 % 16) as u32).collect();
    let all = model
        .forward_tokens(&Tensor::from_vec(ids.clone(), (2, 9), &CPU).unwrap())
        .unwrap();
    model.reset();
    let mut parts = Vec::new();
    for (start, len) in [(0, 2), (2, 4), (6, 1), (7, 2)] {
        let chunk: Vec<u32> = (0..2)
            .flat_map(|r| ids[r * 9 + start..][..len].to_vec())
            .collect();
        parts.push(
            model
                .forward_tokens(&Tensor::from_vec(chunk, (2, len), &CPU).unwrap())
                .unwrap(),
        );
    }
    let chunked = Tensor::cat(&parts, 1).unwrap();
    let (a, b) = (
        all.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        chunked.flatten_all().unwrap(),
    );
    assert_close(&b.to_vec1::<f32>().unwrap(), &a, 1e-5, "chunked vs one pass");
}

#[test]
fn start_resets_the_cache() {
    let cfg = tiny_gqa();
    let mut used = test_model(cfg.clone(), 2, false);
    let mut fresh = test_model(cfg.clone(), 2, false);
    let (tokens, conds) = inputs(&cfg, 4, 5);
    let cond = cond_tensor(&conds);
    used.start(3, None).unwrap();
    for s in 0..5 {
        used.next(&column(&tokens, s)).unwrap();
    }
    // Same batch size: the buffers are reused, and what the last word left there is not read.
    let (a, b) = (
        used.start(3, Some(&cond)).unwrap(),
        fresh.start(3, Some(&cond)).unwrap(),
    );
    assert_eq!(rows(&a), rows(&b));
    assert_eq!(used.position(), 2);
    for s in 0..3 {
        let (a, b) = (
            used.next(&column(&tokens, s)).unwrap(),
            fresh.next(&column(&tokens, s)).unwrap(),
        );
        assert_eq!(rows(&a), rows(&b), "step {s}");
    }
    // Another batch size.
    let one = cond.narrow(0, 1, 1).unwrap();
    let mut fresh1 = test_model(cfg.clone(), 2, false);
    assert_eq!(
        rows(&used.start(1, Some(&one)).unwrap()),
        rows(&fresh1.start(1, Some(&one)).unwrap())
    );
    assert_eq!(rows(&used.next(&[7]).unwrap()), rows(&fresh1.next(&[7]).unwrap()));
    // Row 1 of the batch of 3 is the same computation as the batch of 1.
    let a = rows(&fresh.start(3, Some(&cond)).unwrap());
    assert_close(
        &a[1],
        &rows(&fresh1.start(1, Some(&one)).unwrap())[0],
        1e-5,
        "row 1 alone",
    );
    // Back to 3 rows (the buffers of the first word, with the batch of 1's keys in row 0), and
    // on to 5 (new buffers).
    let mut fresh3 = test_model(cfg.clone(), 2, false);
    assert_eq!(
        rows(&used.start(3, Some(&cond)).unwrap()),
        rows(&fresh3.start(3, Some(&cond)).unwrap())
    );
    let s = column(&tokens, 0);
    assert_eq!(rows(&used.next(&s).unwrap()), rows(&fresh3.next(&s).unwrap()));
    let mut fresh5 = test_model(cfg, 2, false);
    assert_eq!(
        rows(&used.start(5, None).unwrap()),
        rows(&fresh5.start(5, None).unwrap())
    );
    assert_eq!(
        rows(&used.next(&[1, 2, 3, 4, 5]).unwrap()),
        rows(&fresh5.next(&[1, 2, 3, 4, 5]).unwrap())
    );
}

#[test]
fn long_sequences_grow_the_cache_up_to_max_position_embeddings() {
    let cfg = LlamaConfig {
        max_position_embeddings: 70,
        ..tiny_mha()
    };
    let mut model = test_model(cfg.clone(), 8, false);
    let mut fresh = test_model(cfg.clone(), 8, false);
    let reference = Reference::new(&model);
    let mut rng = Lcg(1);
    let tokens: Vec<u32> = (0..68).map(|_| rng.below(16)).collect();
    let cond = Tensor::from_vec(rng.vec(8, 1.0), (1, 8), &CPU).unwrap();
    model.start(1, Some(&cond)).unwrap();
    let mut last = None;
    for &t in &tokens {
        last = Some(rows(&model.next(&[t]).unwrap()).remove(0));
    }
    assert_eq!(model.position(), 70);
    let want = recompute_last(&mut fresh, &cond, cfg.bos_token_id, std::slice::from_ref(&tokens));
    assert_close(
        last.as_ref().unwrap(),
        &want[0],
        1e-4,
        "70 positions, stepwise vs recomputed",
    );
    let mut seq = vec![
        cond.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        reference.embed(cfg.bos_token_id),
    ];
    seq.extend(tokens.iter().map(|&t| reference.embed(t)));
    assert_close(
        last.as_ref().unwrap(),
        &reference.forward(&seq)[69],
        1e-4,
        "70 positions vs reference",
    );
    // One more position is past the limit: an error, and the model is still usable.
    let err = model.next(&[1]).unwrap_err().to_string();
    assert!(err.contains("max_position_embeddings 70"), "{err}");
    assert!(model.start(1, Some(&cond)).is_ok());
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("welt-model-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn generate(model: &mut ByteLlama, cond: &Tensor, tokens: &[Vec<u32>]) -> Vec<Vec<Vec<f32>>> {
    let mut out = vec![rows(&model.start(3, Some(cond)).unwrap())];
    for s in 0..tokens[0].len() {
        out.push(rows(&model.next(&column(tokens, s)).unwrap()));
    }
    out
}

#[test]
fn save_load_round_trip() {
    for (cfg, bias) in [(tiny_gqa(), true), (tiny_tied(), false)] {
        let dir = temp_dir(if cfg.tie_word_embeddings { "tied" } else { "untied" });
        let mut model = test_model(cfg.clone(), 13, bias);
        model.save(&dir).unwrap();
        let mut loaded = ByteLlama::load(&dir, &CPU).unwrap();
        assert_eq!(loaded.config(), &cfg);
        assert_eq!(LlamaConfig::from_file(dir.join("config.json")).unwrap(), cfg);
        let (a, b) = (model.tensors().unwrap(), loaded.tensors().unwrap());
        assert_eq!(
            a.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            b.iter().map(|(n, _)| n).collect::<Vec<_>>()
        );
        for ((name, x), (_, y)) in a.iter().zip(&b) {
            let (x, y) = (x.flatten_all().unwrap(), y.flatten_all().unwrap());
            assert_eq!(x.to_vec1::<f32>().unwrap(), y.to_vec1::<f32>().unwrap(), "{name}");
        }
        let names: Vec<String> = b.into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names.contains(&"lm_head.weight".to_string()),
            !cfg.tie_word_embeddings
        );
        assert_eq!(names.contains(&"lm_head.bias".to_string()), bias);
        let (tokens, conds) = inputs(&cfg, 6, 4);
        let cond = cond_tensor(&conds);
        assert_eq!(
            generate(&mut model, &cond, &tokens),
            generate(&mut loaded, &cond, &tokens)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn half_precision_checkpoints_load_as_f32() {
    let cfg = tiny_gqa();
    let model = test_model(cfg.clone(), 3, true);
    let dir = temp_dir("f16");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), cfg.to_json()).unwrap();
    let half: HashMap<String, Tensor> = model
        .tensors()
        .unwrap()
        .into_iter()
        .map(|(n, t)| (n, t.to_dtype(DType::BF16).unwrap()))
        .collect();
    candle_core::safetensors::save(&half, dir.join("model.safetensors")).unwrap();
    let loaded = ByteLlama::load(&dir, &CPU).unwrap();
    for ((name, x), (_, y)) in model.tensors().unwrap().iter().zip(&loaded.tensors().unwrap()) {
        assert_eq!(y.dtype(), DType::F32);
        let want = x.to_dtype(DType::BF16).unwrap().to_dtype(DType::F32).unwrap();
        let (want, y) = (want.flatten_all().unwrap(), y.flatten_all().unwrap());
        assert_eq!(
            want.to_vec1::<f32>().unwrap(),
            y.to_vec1::<f32>().unwrap(),
            "{name}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Writes `cfg` and `tensors` as a checkpoint and loads it.
fn load_with(name: &str, cfg_json: &str, tensors: &HashMap<String, Tensor>) -> Result<ByteLlama, ModelError> {
    let dir = temp_dir(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), cfg_json).unwrap();
    candle_core::safetensors::save(tensors, dir.join("model.safetensors")).unwrap();
    let result = ByteLlama::load(&dir, &CPU);
    std::fs::remove_dir_all(&dir).unwrap();
    result
}

#[test]
fn checkpoint_errors_name_what_is_wrong() {
    let cfg = tiny_gqa();
    let model = test_model(cfg.clone(), 1, false);
    let good: HashMap<String, Tensor> = model.tensors().unwrap().into_iter().collect();
    let json = cfg.to_json();
    assert!(load_with("good", &json, &good).is_ok());

    // A missing tensor.
    let mut t = good.clone();
    t.remove("model.layers.1.mlp.up_proj.weight");
    let err = load_with("missing", &json, &t).unwrap_err();
    assert!(
        matches!(&err, ModelError::MissingTensor { name } if name == "model.layers.1.mlp.up_proj.weight")
    );
    assert_eq!(
        err.to_string(),
        "tensor `model.layers.1.mlp.up_proj.weight` is missing from the checkpoint"
    );

    // Untied without an output projection.
    let mut t = good.clone();
    t.remove("lm_head.weight");
    let err = load_with("no-head", &json, &t).unwrap_err();
    assert!(
        matches!(&err, ModelError::MissingTensor { name } if name == "lm_head.weight"),
        "{err}"
    );

    // A wrong shape.
    let mut t = good.clone();
    t.insert(
        "model.layers.0.self_attn.k_proj.weight".into(),
        Tensor::zeros((5, 8), DType::F32, &CPU).unwrap(),
    );
    let err = load_with("shape", &json, &t).unwrap_err().to_string();
    assert_eq!(
        err,
        "tensor `model.layers.0.self_attn.k_proj.weight` has shape [5, 8], expected [4, 8] = \
         [num_key_value_heads * head_dim, hidden_size]"
    );

    // config.json and the tensors disagree on the vocabulary.
    let json32 = LlamaConfig {
        vocab_size: 32,
        ..cfg.clone()
    }
    .to_json();
    let err = load_with("vocab", &json32, &good).unwrap_err();
    match &err {
        ModelError::Shape {
            name,
            expected,
            found,
            ..
        } => {
            assert_eq!(name, "model.embed_tokens.weight");
            assert_eq!(
                (expected.as_slice(), found.as_slice()),
                (&[32, 8][..], &[16, 8][..])
            );
        }
        other => panic!("expected a shape error, got {other}"),
    }
    assert!(err.to_string().contains("[vocab_size, hidden_size]"), "{err}");
    // A bias of the wrong length.
    let mut t = good.clone();
    t.insert(
        "lm_head.bias".into(),
        Tensor::zeros(15, DType::F32, &CPU).unwrap(),
    );
    let err = load_with("bias", &json, &t).unwrap_err().to_string();
    assert!(
        err.contains("`lm_head.bias` has shape [15], expected [16]"),
        "{err}"
    );

    // More layers than the config has: not silently dropped.
    let mut t = good.clone();
    t.insert(
        "model.layers.2.self_attn.q_proj.weight".into(),
        Tensor::zeros((8, 8), DType::F32, &CPU).unwrap(),
    );
    let err = load_with("extra", &json, &t).unwrap_err();
    assert!(
        matches!(&err, ModelError::UnexpectedTensor { name } if name == "model.layers.2.self_attn.q_proj.weight"),
        "{err}"
    );
    // Old checkpoints' rotary buffers are fine.
    let mut t = good.clone();
    t.insert(
        "model.layers.0.self_attn.rotary_emb.inv_freq".into(),
        Tensor::zeros(2, DType::F32, &CPU).unwrap(),
    );
    assert!(load_with("inv-freq", &json, &t).is_ok());

    // Not floating point.
    let mut t = good.clone();
    t.insert(
        "model.norm.weight".into(),
        Tensor::zeros(8, DType::U32, &CPU).unwrap(),
    );
    let err = load_with("dtype", &json, &t).unwrap_err();
    assert!(
        matches!(&err, ModelError::Dtype { name, .. } if name == "model.norm.weight"),
        "{err}"
    );
}

#[test]
fn file_errors_name_the_file() {
    let dir = temp_dir("files");
    let err = ByteLlama::load(&dir, &CPU).unwrap_err();
    assert!(
        matches!(&err, ModelError::Io { path, .. } if path.ends_with("config.json")),
        "{err}"
    );

    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), tiny_gqa().to_json()).unwrap();
    let err = ByteLlama::load(&dir, &CPU).unwrap_err();
    assert!(
        matches!(&err, ModelError::Io { path, .. } if path.ends_with("model.safetensors")),
        "{err}"
    );
    assert!(err.to_string().contains("model.safetensors"), "{err}");

    std::fs::write(dir.join("model.safetensors"), b"not a safetensors file").unwrap();
    let err = ByteLlama::load(&dir, &CPU).unwrap_err();
    assert!(matches!(&err, ModelError::Safetensors { .. }), "{err}");
    assert!(err.to_string().contains("model.safetensors"), "{err}");

    std::fs::write(dir.join("config.json"), "{\"vocab_size\": 16,").unwrap();
    let err = ByteLlama::load(&dir, &CPU).unwrap_err();
    assert!(
        matches!(&err, ModelError::Json { path: Some(p), .. } if p.ends_with("config.json")),
        "{err}"
    );
    assert!(err.to_string().contains("config.json is not valid JSON"), "{err}");

    let bad = LlamaConfig {
        hidden_size: 10,
        num_attention_heads: 4,
        ..tiny_gqa()
    }
    .to_json();
    std::fs::write(dir.join("config.json"), bad).unwrap();
    let err = ByteLlama::load(&dir, &CPU).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "invalid Llama config: {}: hidden_size 10 is not divisible by num_attention_heads 4",
            dir.join("config.json").display()
        )
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn config_from_hugging_face_json() {
    // As transformers writes it (abridged), with fields the decoder does not use.
    let text = r#"{
        "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
        "bos_token_id": 2, "eos_token_id": 3, "pad_token_id": 0, "hidden_act": "silu",
        "hidden_size": 256, "initializer_range": 0.02, "intermediate_size": 1024,
        "max_position_embeddings": 128, "mlp_bias": false, "model_type": "llama",
        "num_attention_heads": 4, "num_hidden_layers": 4, "num_key_value_heads": 4,
        "pretraining_tp": 1, "rms_norm_eps": 1e-06, "rope_scaling": null, "rope_theta": 10000.0,
        "tie_word_embeddings": false, "torch_dtype": "float32", "transformers_version": "4.57.1",
        "use_cache": true, "vocab_size": 256
    }"#;
    assert_eq!(LlamaConfig::from_json(text).unwrap(), LlamaConfig::welt_default());
    let d = LlamaConfig::welt_default();
    assert_eq!(LlamaConfig::from_json(&d.to_json()).unwrap(), d);
    assert_eq!(d.head_dim(), 64);

    // Defaults: key/value heads = heads, eps 1e-6, theta 10000, untied.
    let minimal = r#"{"vocab_size": 16, "hidden_size": 8, "intermediate_size": 12, "num_hidden_layers": 1,
        "num_attention_heads": 2, "max_position_embeddings": 8, "bos_token_id": 1}"#;
    let c = LlamaConfig::from_json(minimal).unwrap();
    assert_eq!(
        (c.num_key_value_heads, c.rms_norm_eps, c.rope_theta),
        (2, 1e-6, 10000.0)
    );
    assert!(!c.tie_word_embeddings);
    // Newer transformers keep rope_theta in rope_parameters.
    let newer = minimal.replace(
        "\"bos_token_id\": 1",
        r#""bos_token_id": 1, "rope_parameters": {"rope_type": "default", "rope_theta": 500.0}"#,
    );
    assert_eq!(LlamaConfig::from_json(&newer).unwrap().rope_theta, 500.0);

    let error = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut v: serde_json::Value = serde_json::from_str(minimal).unwrap();
        edit(&mut v);
        LlamaConfig::from_json(&v.to_string()).unwrap_err().to_string()
    };
    assert_eq!(
        error(&|v| v["num_key_value_heads"] = 3.into()),
        "invalid Llama config: num_attention_heads 2 is not divisible by num_key_value_heads 3"
    );
    assert_eq!(
        error(&|v| v["bos_token_id"] = 16.into()),
        "invalid Llama config: bos_token_id 16 is not below vocab_size 16"
    );
    assert_eq!(error(&|v| v["hidden_size"] = 6.into()), "invalid Llama config: head_dim 3 (hidden_size / num_attention_heads) must be even for rotary embeddings");
    assert_eq!(
        error(&|v| v["vocab_size"] = "many".into()),
        "invalid Llama config: vocab_size must be a non-negative integer, found \"many\""
    );
    assert_eq!(
        error(&|v| v["num_hidden_layers"] = 0.into()),
        "invalid Llama config: num_hidden_layers must be at least 1"
    );
    assert_eq!(
        error(&|v| {
            v.as_object_mut().unwrap().remove("hidden_size");
        }),
        "invalid Llama config: hidden_size is missing"
    );
    assert!(error(&|v| v["hidden_act"] = "gelu".into()).contains("hidden_act is \"gelu\", only \"silu\""));
    assert!(
        error(&|v| v["rope_scaling"] = serde_json::json!({"rope_type": "linear", "factor": 2.0}))
            .contains("rope_scaling type \"linear\" is not supported")
    );
    assert!(error(&|v| v["attention_bias"] = true.into()).contains("attention_bias = true is not supported"));
    assert!(error(&|v| v["head_dim"] = 8.into()).contains("head_dim 8"));
    assert!(LlamaConfig::from_json("[1, 2]")
        .unwrap_err()
        .to_string()
        .contains("must be a JSON object"));
    assert!(matches!(
        LlamaConfig::from_json("{"),
        Err(ModelError::Json { path: None, .. })
    ));
}

#[test]
fn runtime_misuse_is_an_error_not_a_panic() {
    let mut model = test_model(tiny_gqa(), 4, false);
    let msg = |r: candle_core::Result<Tensor>| r.unwrap_err().to_string();
    assert!(msg(model.next(&[1, 2])).contains("before start"));
    assert!(msg(model.start(0, None)).contains("at least one row"));
    let wrong = Tensor::zeros((2, 7), DType::F32, &CPU).unwrap();
    assert!(msg(model.start(2, Some(&wrong))).contains("expected [batch, hidden_size] = [2, 8]"));
    let wrong = Tensor::zeros((3, 8), DType::F32, &CPU).unwrap();
    assert!(msg(model.start(2, Some(&wrong))).contains("[2, 8]"));
    model.start(2, None).unwrap();
    assert!(msg(model.next(&[1, 2, 3])).contains("3 tokens for 2 rows"));
    assert!(msg(model.next(&[1, 16])).contains("token 16 is outside the vocabulary"));
    let three = Tensor::zeros((3, 1), DType::U32, &CPU).unwrap();
    assert!(msg(model.forward_tokens(&three)).contains("3 rows fed to a sequence of 2 rows"));
    // Nothing was fed by the failed calls.
    assert_eq!(model.position(), 1);
    let mut fresh = test_model(tiny_gqa(), 4, false);
    fresh.start(2, None).unwrap();
    assert_eq!(
        rows(&model.next(&[1, 2]).unwrap()),
        rows(&fresh.next(&[1, 2]).unwrap())
    );

    let err = model.set_logit_bias(&[0.0; 15]).unwrap_err().to_string();
    assert!(
        err.contains("`lm_head.bias` has shape [15], expected [16]"),
        "{err}"
    );
}

#[test]
fn condition_changes_the_logits() {
    let cfg = tiny_gqa();
    let mut model = test_model(cfg.clone(), 6, false);
    let (_, conds) = inputs(&cfg, 12, 1);
    let a = cond_tensor(&conds[..2]);
    let b = cond_tensor(&conds[1..]);
    let with_a = rows(&model.start(2, Some(&a)).unwrap());
    let with_b = rows(&model.start(2, Some(&b)).unwrap());
    let without = rows(&model.start(2, None).unwrap());
    assert_ne!(with_a[0], with_b[0]);
    assert_ne!(with_a[0], without[0]);
    assert_eq!(without[0], without[1], "no condition: every row starts alike");
    // Row 1 of `a` is row 0 of `b`: the rows are independent.
    assert_close(&with_a[1], &with_b[0], 1e-5, "same condition, other batch");
    assert_eq!(rows(&model.start(2, Some(&a)).unwrap()), with_a);
    // A condition in another float dtype is converted.
    let a16 = a.to_dtype(DType::F64).unwrap();
    assert_close(
        &rows(&model.start(2, Some(&a16)).unwrap())[0],
        &with_a[0],
        1e-6,
        "f64 condition",
    );
}

#[test]
fn random_is_deterministic_with_hugging_face_statistics() {
    let cfg = LlamaConfig::welt_default();
    let a = ByteLlama::random(cfg.clone(), 42, &CPU).unwrap();
    let b = ByteLlama::random(cfg.clone(), 42, &CPU).unwrap();
    let c = ByteLlama::random(cfg.clone(), 43, &CPU).unwrap();
    let (ta, tb, tc) = (a.tensors().unwrap(), b.tensors().unwrap(), c.tensors().unwrap());
    assert_eq!(
        ta.len(),
        1 + 9 * 4 + 2,
        "embed, 9 per layer, norm, lm_head; no bias"
    );
    for ((name, x), ((_, y), (_, z))) in ta.iter().zip(tb.iter().zip(&tc)) {
        let x = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(
            x,
            y.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            "{name}: same seed"
        );
        let z = z.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let n = x.len() as f64;
        let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
        let std = (x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
        if name.ends_with("norm.weight") {
            assert!(x.iter().all(|&v| v == 1.0), "{name}: norms start at 1");
            assert_eq!(x, z);
        } else {
            assert_ne!(x, z, "{name}: another seed");
            assert!(
                (std - 0.02).abs() < 0.001 && mean.abs() < 0.001,
                "{name}: mean {mean}, std {std}"
            );
        }
    }
    // Pinned values (splitmix64 from 42, Box-Muller, checked with an independent Python
    // implementation): a change of the generator or of the tensor order shows here.
    let first: Vec<f32> = ta[0]
        .1
        .flatten_all()
        .unwrap()
        .narrow(0, 0, 4)
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(first, [0.008294395, 0.013053625, -0.017837724, 0.026536671]);
}

#[test]
fn logit_bias_is_added_to_the_logits() {
    let cfg = tiny_tied();
    let mut model = test_model(cfg, 10, false);
    let plain = rows(&model.start(2, None).unwrap());
    let bias: Vec<f32> = (0..16)
        .map(|i| if i % 3 == 0 { -1e4 } else { i as f32 / 4.0 })
        .collect();
    model.set_logit_bias(&bias).unwrap();
    let biased = rows(&model.start(2, None).unwrap());
    for (p, b) in plain.iter().zip(&biased) {
        let want: Vec<f32> = p.iter().zip(&bias).map(|(p, b)| p + b).collect();
        assert_close(b, &want, 1e-3, "biased");
    }
    assert!(model.tensors().unwrap().iter().any(|(n, _)| n == "lm_head.bias"));
    model.clear_logit_bias();
    assert_eq!(rows(&model.start(2, None).unwrap()), plain);
}

#[test]
fn word_model_trait_object() {
    let mut model = ByteLlama::random(LlamaConfig::welt_default(), 0, &CPU).unwrap();
    let m: &mut dyn WordModel = &mut model;
    assert_eq!(m.vocab_size(), 256);
    let cond = Tensor::zeros((3, 256), DType::F32, &CPU).unwrap();
    let logits = m.start(3, Some(&cond)).unwrap();
    assert_eq!(
        (logits.dims(), logits.dtype(), logits.is_contiguous()),
        (&[3, 256][..], DType::F32, true)
    );
    let logits = m.next(&[b'a'.into(), b'b'.into(), 0xE2]).unwrap();
    assert_eq!((logits.dims(), logits.is_contiguous()), (&[3, 256][..], true));
    assert!(logits
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .all(|v| v.is_finite()));
}

// Sizes that come from the config or the batch are checked before anything they size is
// allocated. Each case below aborted (or, for head_dim, was accepted) before the checks.

#[test]
fn a_config_calling_for_a_billion_layers_is_refused_before_allocating() {
    let mut cfg = tiny_gqa();
    let model = test_model(cfg.clone(), 1, false);
    let tensors: HashMap<String, Tensor> = model.tensors().unwrap().into_iter().collect();
    cfg.num_hidden_layers = 1_000_000_000;
    // Against a checkpoint: the first layer the tensors do not have.
    let err = ByteLlama::from_tensors(cfg.clone(), tensors.clone(), &CPU).unwrap_err();
    assert!(
        matches!(&err, ModelError::MissingTensor { name } if name == "model.layers.2.self_attn.q_proj.weight"),
        "{err}"
    );
    let mut json: serde_json::Value = serde_json::from_str(&tiny_gqa().to_json()).unwrap();
    json["num_hidden_layers"] = 1_000_000_000.into();
    let err = load_with("billion-layers", &json.to_string(), &tensors).unwrap_err();
    assert!(matches!(&err, ModelError::MissingTensor { .. }), "{err}");
    // Random weights: the bytes they would need, above the limit.
    let err = ByteLlama::random(cfg.clone(), 1, &CPU).unwrap_err();
    let ModelError::TooLarge {
        needed: Some(n),
        limit,
        ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(*limit, ByteLlama::DEFAULT_MEMORY_LIMIT);
    assert!(*n >= 4 * cfg.parameter_count().unwrap(), "{err}");
    assert!(err.to_string().contains(&format!("{n} bytes")), "{err}");
    // A count past u128: no number, still an error.
    cfg.hidden_size = usize::MAX - 1;
    (cfg.num_attention_heads, cfg.num_key_value_heads) = (1, 1);
    assert_eq!(cfg.parameter_count(), None);
    assert!(matches!(
        ByteLlama::random(cfg, 1, &CPU),
        Err(ModelError::TooLarge { needed: None, .. })
    ));
}

#[test]
fn rotary_tables_follow_the_cache_not_max_position_embeddings() {
    // 1e12 positions of head_dim 4: tables of 24 TB if made up front.
    let cfg = LlamaConfig {
        max_position_embeddings: 1_000_000_000_000,
        ..tiny_gqa()
    };
    let mut model = ByteLlama::random(cfg.clone(), 1, &CPU).unwrap();
    let small = ByteLlama::random(tiny_gqa(), 1, &CPU).unwrap();
    let mut small = small;
    for m in [&mut model, &mut small] {
        m.start(2, None).unwrap();
        m.next(&[1, 2]).unwrap();
    }
    // Same weights (the seed), same positions: the same logits.
    let a = rows(&model.next(&[3, 4]).unwrap());
    let b = rows(&small.next(&[3, 4]).unwrap());
    assert_eq!(a, b);
}

#[test]
fn a_batch_too_large_for_the_memory_limit_is_an_error_with_the_bytes() {
    let mut model = ByteLlama::random(tiny_gqa(), 1, &CPU).unwrap();
    assert_eq!(model.memory_limit(), ByteLlama::DEFAULT_MEMORY_LIMIT);
    let cfg = model.config().clone();
    // The KV cache alone: 2 (k, v) x layers x rows x kv heads x 32 positions x head_dim x 4.
    let rows = 1usize << 40;
    let cache = 2 * cfg.num_hidden_layers as u128 * rows as u128 * cfg.num_key_value_heads as u128
        * 16 // max_position_embeddings of tiny_gqa: the cache never grows past it
        * cfg.head_dim() as u128
        * 4;
    for err in [
        model.check_memory(rows, 18).unwrap_err().to_string(),
        model.start(rows, None).unwrap_err().to_string(),
    ] {
        let needed: u128 = err
            .split(" would need ")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{err}"));
        assert!(needed >= cache, "{err}");
        assert!(
            err.contains(&format!("limit of {} bytes", ByteLlama::DEFAULT_MEMORY_LIMIT)),
            "{err}"
        );
    }
    // The limit is the caller's: a tiny one refuses three rows, a start then still works
    // once raised, and a failed start allocated nothing the model keeps.
    model.set_memory_limit(1000);
    assert!(model.check_memory(3, 18).is_err());
    assert!(model.start(3, None).is_err());
    model.set_memory_limit(ByteLlama::DEFAULT_MEMORY_LIMIT);
    model.check_memory(3, 18).unwrap();
    assert_eq!(model.start(3, None).unwrap().dims(), &[3, cfg.vocab_size]);
}

#[test]
fn config_sizes_are_checked_arithmetic_and_f32() {
    let minimal = r#"{"vocab_size": 16, "hidden_size": 8, "intermediate_size": 12, "num_hidden_layers": 1,
        "num_attention_heads": 2, "max_position_embeddings": 8, "bos_token_id": 1}"#;
    let error = |key: &str, value: serde_json::Value| {
        let mut v: serde_json::Value = serde_json::from_str(minimal).unwrap();
        v[key] = value;
        LlamaConfig::from_json(&v.to_string()).unwrap_err().to_string()
    };
    // 2 x (2^63 + 4) wraps to 8, the hidden size.
    let wraps = (1u64 << 63) + 4;
    assert!(error("head_dim", wraps.into()).contains(&format!("head_dim {wraps}")));
    // Positive as an f64, 0 as an f32: every logit NaN.
    assert!(error("rms_norm_eps", 1e-300.into()).contains("rms_norm_eps must be positive and finite in f32"));
    assert!(error("rms_norm_eps", 1e300.into()).contains("rms_norm_eps"));
    assert!(error("rope_theta", 1e-50.into()).contains("rope_theta must be at least 1"));
    assert!(error("rope_theta", 0.5.into()).contains("rope_theta"));
    assert!(error("rope_theta", 1e39.into()).contains("rope_theta"));
}

#[test]
fn safetensors_headers_are_checked_before_the_tensors_are_read() {
    let cfg = tiny_gqa();
    let model = test_model(cfg.clone(), 1, false);
    let dir = temp_dir("header");
    model.save(&dir).unwrap();
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    let with_header = |header: &serde_json::Value, data: &[u8]| {
        let text = header.to_string();
        let mut out = (text.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(data);
        std::fs::write(&path, out).unwrap();
        ByteLlama::load(&dir, &CPU).unwrap_err().to_string()
    };
    let data = &bytes[8 + header_len..];
    // A dtype candle cannot read, named with the tensor.
    let mut h = header.clone();
    h["model.norm.weight"]["dtype"] = "BOOL".into();
    let err = with_header(&h, data);
    assert!(err.contains("`model.norm.weight` has dtype BOOL"), "{err}");
    // An integer tensor.
    h["model.norm.weight"]["dtype"] = "I32".into();
    assert!(with_header(&h, data).contains("dtype I32"));
    // A shape other than the config's, from the header alone.
    let mut h = header.clone();
    h["model.norm.weight"]["shape"] = serde_json::json!([1_000_000_000_000u64]);
    let err = with_header(&h, data);
    assert!(
        err.contains("`model.norm.weight` has shape [1000000000000]"),
        "{err}"
    );
    // Truncated: the data, then the header itself, then the length.
    for keep in [bytes.len() - 4, 8 + header_len / 2, 5] {
        std::fs::write(&path, &bytes[..keep]).unwrap();
        let err = ByteLlama::load(&dir, &CPU).unwrap_err();
        assert!(matches!(&err, ModelError::Safetensors { .. }), "{keep}: {err}");
        assert!(err.to_string().contains("model.safetensors"), "{err}");
    }
    // A header length past the file.
    let mut huge = u64::MAX.to_le_bytes().to_vec();
    huge.extend_from_slice(b"{}");
    std::fs::write(&path, huge).unwrap();
    let err = ByteLlama::load(&dir, &CPU).unwrap_err().to_string();
    assert!(
        err.contains(&format!("the header claims {} bytes", u64::MAX)),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
