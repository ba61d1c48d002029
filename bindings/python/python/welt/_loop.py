"""The word loop without ``generate``'s machinery: ``welt.hf.generate_words``.

One word for every row of a batch, token by token, with welt's tables as torch ops on the
logits' device: mask, pick (greedy or seeded sampling with the same warpers as ``generate``),
advance. Finished rows get PAD. The host waits on the device at most once every
``sync_every`` steps (to learn whether every row has finished) and once at the end.

The forward is either a lean re-implementation of ``LlamaForCausalLM`` (``forward="lean"``,
the default for Llama-shaped models: weights read once from the model, one QKV matmul, RoPE as
one precomputed matrix per position, a static KV cache, ``scaled_dot_product_attention``, the
residual adds fused into ``addmm``), or the model itself with a ``DynamicCache``
(``forward="model"``: the same numbers as ``generate``, so the same tokens).
"""

from __future__ import annotations

import math
import weakref
from typing import NamedTuple

import torch
import torch.nn.functional as F

_NEG_INF = float("-inf")


class WordsOutput(NamedTuple):
    """What ``generate_words`` returns.

    sequences: [batch, steps] token ids on the model's device, PAD after a row's word, the
        same tensor ``generate(inputs_embeds=...)`` returns for the same tokens.
    words: each row's word as text (UTF-8 bytes of the byte decoder, an unfinished last
        character dropped), or None when the decoder is not the 256-byte vocabulary.
    lengths: each row's word length in tokens.
    stopped: per row, whether the word ended by the rule or EOS (False: by the length limit).
    """

    sequences: torch.Tensor
    words: list | None
    lengths: list
    stopped: list


# ---------------------------------------------------------------------------------------------
# forwards


def _is_llama_shaped(model) -> str | None:
    """None if LeanLlama can run `model`, else why not."""
    cfg = getattr(model, "config", None)
    inner = getattr(model, "model", None)
    if cfg is None or inner is None or not hasattr(inner, "layers") or not hasattr(model, "lm_head"):
        return "not a *ForCausalLM with .model.layers and .lm_head"
    if getattr(cfg, "model_type", None) not in ("llama",):
        return f"model_type {getattr(cfg, 'model_type', None)!r} is not llama"
    if getattr(cfg, "hidden_act", "silu") != "silu":
        return f"hidden_act {cfg.hidden_act!r}"
    if getattr(cfg, "pretraining_tp", 1) != 1:
        return "pretraining_tp != 1"
    rot = getattr(inner, "rotary_emb", None)
    if rot is None or not hasattr(rot, "inv_freq"):
        return "no rotary_emb.inv_freq"
    if "dynamic" in str(getattr(rot, "rope_type", "default")):
        return f"rope_type {rot.rope_type!r} changes with the length"
    for layer in inner.layers:
        a, m = getattr(layer, "self_attn", None), getattr(layer, "mlp", None)
        if a is None or m is None or not all(hasattr(a, p) for p in ("q_proj", "k_proj", "v_proj", "o_proj")):
            return "a layer without q/k/v/o_proj"
        if not all(hasattr(m, p) for p in ("gate_proj", "up_proj", "down_proj")):
            return "a layer without gate/up/down_proj"
    return None


def _t(w):
    return w.detach()


def _bias(linear):
    b = getattr(linear, "bias", None)
    return None if b is None else b.detach()


def _packed_ok(dtype) -> bool:
    return (dtype == torch.float32 and torch.backends.mkldnn.is_available()
            and hasattr(torch.ops.mkldnn, "_reorder_linear_weight") and hasattr(torch.ops.mkldnn, "_linear_pointwise"))


def _linears(w, b, kind):
    """(x -> x @ w.T + b, (x, r) -> r + x @ w.T + b) for one nn.Linear weight `w` [out, in].

    "packed": oneDNN with the weight reordered once (on CPU the fastest for a few rows: MKL's
    sgemm repacks the weight on every call); "mm": a [in, out] weight, contiguous on CPU (there
    a single row then takes MKL's fast matrix-vector path), the residual fused into addmm.
    """
    if kind == "packed":
        p = torch.ops.mkldnn._reorder_linear_weight(w, 8)
        lin, lin_bin = torch.ops.mkldnn._linear_pointwise, torch.ops.mkldnn._linear_pointwise.binary
        return (lambda x: lin(x, p, b, "none", [], "")), (lambda x, r: lin_bin(x, r, p, b, "add"))
    wt = w.t().contiguous() if w.device.type == "cpu" else w.t()
    if b is None:
        return (lambda x: torch.mm(x, wt)), (lambda x, r: torch.addmm(r, x, wt))
    return (lambda x: torch.addmm(b, x, wt)), (lambda x, r: torch.addmm(r, x, wt).add_(b))


class LeanLlama:
    """A LlamaForCausalLM forward for generating short words, read once from the model.

    The weights are the model's own tensors where they can be (embeddings, norms, o/down/lm
    head); the fused QKV and gate-up weights are copies, made again if the model's parameters
    change (moved, or modified in place). A static KV cache is kept per (batch, length).
    """

    def __init__(self, model):
        why = _is_llama_shaped(model)
        if why is not None:
            raise ValueError(f"welt: LeanLlama cannot run this model: {why}")
        self._model_ref = weakref.ref(model)
        self._params = [p for p in model.parameters()]
        self._stamp = self._stamp_now()
        cfg = model.config
        inner = model.model
        self.hidden = cfg.hidden_size
        self.nh = cfg.num_attention_heads
        self.nkv = getattr(cfg, "num_key_value_heads", None) or self.nh
        self.hd = getattr(cfg, "head_dim", None) or self.hidden // self.nh
        self.eps = float(cfg.rms_norm_eps)
        self.embed = _t(model.get_input_embeddings().weight)
        self.dtype = self.embed.dtype
        self.device = self.embed.device
        self._src = []
        for layer in inner.layers:
            at, m = layer.self_attn, layer.mlp
            wqkv = torch.cat([_t(at.q_proj.weight), _t(at.k_proj.weight), _t(at.v_proj.weight)], 0)
            bqkv = None
            if at.q_proj.bias is not None:
                bqkv = torch.cat([_t(at.q_proj.bias), _t(at.k_proj.bias), _t(at.v_proj.bias)], 0)
            wgu = torch.cat([_t(m.gate_proj.weight), _t(m.up_proj.weight)], 0)
            bgu = None
            if m.gate_proj.bias is not None:
                bgu = torch.cat([_t(m.gate_proj.bias), _t(m.up_proj.bias)], 0)
            self._src.append((_t(layer.input_layernorm.weight), (wqkv, bqkv), (_t(at.o_proj.weight), _bias(at.o_proj)),
                              _t(layer.post_attention_layernorm.weight), (wgu, bgu),
                              (_t(m.down_proj.weight), _bias(m.down_proj))))
        self.inter = self._src[0][4][0].shape[0] // 2
        self.norm = _t(inner.norm.weight)
        self._head_src = (_t(model.lm_head.weight), _bias(model.lm_head))
        self.vocab = self._head_src[0].shape[0]
        self._variants = {}
        rot = inner.rotary_emb
        self._inv_freq = rot.inv_freq.detach().float().cpu()  # the RoPE matrices are built on the host
        self._rope_scale = float(getattr(rot, "attention_scaling", 1.0))
        self._rope = None  # [T, q and k heads, D, D]: x_rot = x @ M[position]
        self._cache = None  # (B, T, kv tensor [layers, B, 2*nkv, T, D])

    def _layers(self, B):
        """The weights laid out for B rows: oneDNN-packed on CPU for B >= 2, else for mm."""
        kind = "packed" if self.device.type == "cpu" and B >= 2 and _packed_ok(self.dtype) else "mm"
        v = self._variants.get(kind)
        if v is None:
            layers = []
            for ln1, qkv, o, ln2, gu, down in self._src:
                layers.append((ln1, _linears(*qkv, kind)[0], _linears(*o, kind)[1], ln2, _linears(*gu, kind)[0],
                               _linears(*down, kind)[1]))
            v = self._variants[kind] = (layers, _linears(*self._head_src, kind)[0])
        return v

    def _stamp_now(self):
        return tuple((p.data_ptr(), p._version, p.device, p.dtype) for p in self._params)

    def is_current(self, model) -> bool:
        """Whether the weights read at construction are still the model's."""
        return self._model_ref() is model and self._stamp_now() == self._stamp

    def _rope_mats(self, T):
        if self._rope is not None and self._rope.shape[0] >= T:
            return self._rope
        D, half = self.hd, self.hd // 2
        pos = torch.arange(T, dtype=torch.float32)
        freqs = torch.outer(pos, self._inv_freq)  # [T, D/2]
        emb = torch.cat([freqs, freqs], -1)
        cos = (emb.cos() * self._rope_scale).to(self.dtype).float()
        sin = (emb.sin() * self._rope_scale).to(self.dtype).float()
        # x_rot = x * cos + rotate_half(x) * sin, rotate_half(x) = cat(-x[half:], x[:half]),
        # as a matrix: x_rot = x @ M with M[j, j] = cos[j], M[j + half, j] = -sin[j] (j < half),
        # M[j - half, j] = sin[j] (j >= half).
        M = torch.zeros(T, D, D, dtype=torch.float32)
        idx = torch.arange(D)
        M[:, idx, idx] = cos
        lo = torch.arange(half)
        M[:, lo + half, lo] = -sin[:, :half]
        M[:, lo, lo + half] = sin[:, half:]
        qk = self.nh + self.nkv
        self._rope = M[:, None].expand(T, qk, D, D).to(device=self.device, dtype=self.dtype).contiguous()
        return self._rope

    def _kv(self, B, T):
        c = self._cache
        if c is None or c[0] != B or c[1] < T:
            kv = torch.empty(len(self._src), B, 2 * self.nkv, T, self.hd, dtype=self.dtype, device=self.device)
            self._cache = c = (B, T, kv)
        return c[2]

    def start(self, inputs_embeds: torch.Tensor, total: int) -> torch.Tensor:
        """Prefill `inputs_embeds` [B, S, H]; room for `total` positions. Logits [B, vocab]."""
        B, S, H = inputs_embeds.shape
        rope = self._rope_mats(total)
        self._kvt = kv = self._kv(B, total)
        nh, nkv, D = self.nh, self.nkv, self.hd
        heads = nh + 2 * nkv
        gqa = nkv != nh
        x = inputs_embeds.to(self.dtype).reshape(B * S, H)
        qk = nh + nkv
        m = rope[:S].transpose(0, 1).reshape(qk * S, D, D)  # [(head, position), D, D]
        extra = {"enable_gqa": True} if gqa else {}
        self._L, self._head = layers, head = self._layers(B)
        for i, (ln1, qkv_lin, o_add, ln2, gu_lin, down_add) in enumerate(layers):
            y = F.rms_norm(x, (H,), ln1, self.eps)
            qkv = qkv_lin(y)
            h4 = qkv.view(B, S, heads, D).permute(2, 1, 0, 3)  # [heads, S, B, D]
            r = torch.bmm(h4[:qk].reshape(qk * S, B, D), m).view(qk, S, B, D).permute(2, 0, 1, 3)  # [B, qk, S, D]
            v = h4[qk:].permute(2, 0, 1, 3)  # [B, nkv, S, D]
            kv[i, :, :nkv, :S] = r[:, nh:]
            kv[i, :, nkv:, :S] = v
            a = F.scaled_dot_product_attention(r[:, :nh], r[:, nh:], v, is_causal=True, **extra)
            a = a.transpose(1, 2).reshape(B * S, nh * D)
            x = o_add(a, x)
            y = F.rms_norm(x, (H,), ln2, self.eps)
            gu = gu_lin(y)
            h = F.silu(gu[:, : self.inter]).mul_(gu[:, self.inter :])
            x = down_add(h, x)
        x = x.view(B, S, H)[:, -1]
        self._pos = S
        return self._final(x)

    def _final(self, x):
        return self._head(F.rms_norm(x, (self.hidden,), self.norm, self.eps))

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """One token per row [B] at the next position. Logits [B, vocab]."""
        p = self._pos
        self._pos = p + 1
        kv = self._kvt
        nh, nkv, D, H = self.nh, self.nkv, self.hd, self.hidden
        heads = nh + 2 * nkv
        qk = nh + nkv
        B = tokens.shape[0]
        m = self._rope[p]
        extra = {"enable_gqa": True} if nkv != nh else {}
        x = F.embedding(tokens, self.embed)
        for i, (ln1, qkv_lin, o_add, ln2, gu_lin, down_add) in enumerate(self._L):
            y = F.rms_norm(x, (H,), ln1, self.eps)
            qkv = qkv_lin(y)
            h3 = qkv.view(B, heads, D).transpose(0, 1)  # [heads, B, D]
            r = torch.bmm(h3[:qk], m)  # [q and k heads, B, D], rotated
            c = kv[i]
            c[:, :nkv, p] = r[nh:].transpose(0, 1)
            c[:, nkv:, p] = h3[qk:].transpose(0, 1)
            a = F.scaled_dot_product_attention(r[:nh].transpose(0, 1).unsqueeze(2), c[:, :nkv, : p + 1],
                                               c[:, nkv:, : p + 1], **extra)
            x = o_add(a.reshape(B, nh * D), x)
            y = F.rms_norm(x, (H,), ln2, self.eps)
            gu = gu_lin(y)
            h = F.silu(gu[:, : self.inter]).mul_(gu[:, self.inter :])
            x = down_add(h, x)
        return self._final(x)


class ModelForward:
    """The model's own forward with a DynamicCache: the numbers ``generate`` computes."""

    def __init__(self, model):
        import inspect

        self.model = model
        self.vocab = model.get_output_embeddings().weight.shape[0]
        # transformers 5.x renamed the forward's `past_key_values` to `cache`.
        params = inspect.signature(model.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"

    def start(self, inputs_embeds, total):
        from transformers import DynamicCache

        try:
            self.cache = DynamicCache(config=self.model.config)
        except TypeError:  # transformers 4.x
            self.cache = DynamicCache()
        S = inputs_embeds.shape[1]
        self._pos = S
        pos = torch.arange(S, device=inputs_embeds.device)
        out = self.model(inputs_embeds=inputs_embeds, use_cache=True, cache_position=pos, logits_to_keep=1,
                         **{self._cache_kw: self.cache})
        return out.logits[:, -1]

    def step(self, tokens):
        p = self._pos
        self._pos = p + 1
        pos = torch.tensor([p], device=tokens.device)
        out = self.model(input_ids=tokens[:, None], use_cache=True, cache_position=pos, logits_to_keep=1,
                         **{self._cache_kw: self.cache})
        return out.logits[:, -1]


_LEAN: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _forward_for(model, forward: str):
    if forward == "model":
        return ModelForward(model)
    if forward not in ("auto", "lean"):
        raise ValueError(f"welt: forward must be 'auto', 'lean' or 'model', not {forward!r}")
    lean = _LEAN.get(model)
    if lean is not None and lean.is_current(model):
        return lean
    why = _is_llama_shaped(model)
    if why is not None:
        if forward == "lean":
            raise ValueError(f"welt: forward='lean' cannot run this model: {why}")
        return ModelForward(model)
    lean = _LEAN[model] = LeanLlama(model)
    return lean


# ---------------------------------------------------------------------------------------------
# picking a token


def _warp(scores, temperature, top_k, top_p):
    """The warpers ``generate`` applies when sampling, in its order and with its arithmetic."""
    if temperature is not None and temperature != 1.0:
        scores = scores / temperature
    if top_k is not None and top_k != 0:
        k = min(top_k, scores.shape[-1])
        kth = torch.topk(scores, k)[0][..., -1, None]
        scores = scores.masked_fill(scores < kth, _NEG_INF)
    if top_p is not None and top_p < 1.0:
        sorted_logits, sorted_idx = torch.sort(scores, descending=False)
        cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        remove = cum <= (1 - top_p)
        remove[..., -1:] = 0
        scores = scores.masked_fill(remove.scatter(1, sorted_idx, remove), _NEG_INF)
    return scores


def _sample(scores, generator, out):
    # torch.multinomial(probs, 1) is argmax(probs / Exp(1) noise) drawn from the generator
    # (its one-sample fast path), after a validity check that reads a value back to the host.
    # Doing the same two steps here draws the same noise, so the same tokens for the same
    # seed, without that synchronization.
    probs = F.softmax(scores, dim=-1)
    q = torch.empty_like(probs).exponential_(1, generator=generator)
    return torch.argmax(probs.div_(q), dim=-1, out=out)


# ---------------------------------------------------------------------------------------------
# the loop

_DEFAULT_CONSTRAINT = None


def _default_constraint():
    global _DEFAULT_CONSTRAINT
    if _DEFAULT_CONSTRAINT is None:
        from .hf import WordConstraint

        _DEFAULT_CONSTRAINT = WordConstraint()
    return _DEFAULT_CONSTRAINT


def _check_args(inputs_embeds, max_new_tokens, do_sample, temperature, top_k, top_p, sync_every):
    if not isinstance(inputs_embeds, torch.Tensor) or inputs_embeds.dim() != 3:
        raise ValueError("welt: inputs_embeds must be a 3-D tensor [batch, length, hidden]")
    if inputs_embeds.shape[0] == 0 or inputs_embeds.shape[1] == 0:
        raise ValueError(f"welt: inputs_embeds is empty: {tuple(inputs_embeds.shape)}")
    if not inputs_embeds.is_floating_point():
        raise TypeError(f"welt: inputs_embeds must be floating point, not {inputs_embeds.dtype}")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"welt: max_new_tokens must be a positive int, not {max_new_tokens!r}")
    if isinstance(sync_every, bool) or not isinstance(sync_every, int) or sync_every < 1:
        raise ValueError(f"welt: sync_every must be a positive int, not {sync_every!r}")
    if do_sample:
        if temperature is not None and not (temperature > 0 and math.isfinite(temperature)):
            raise ValueError(f"welt: temperature must be a positive finite number, not {temperature!r}")
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0):
            raise ValueError(f"welt: top_k must be a non-negative int, not {top_k!r}")
        if top_p is not None and not (0.0 < top_p <= 1.0):
            raise ValueError(f"welt: top_p must be in (0, 1], not {top_p!r}")


@torch.no_grad()
def generate_words(
    model,
    inputs_embeds: torch.Tensor,
    constraint=None,
    max_new_tokens: int | None = None,
    do_sample: bool = False,
    temperature: float | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    *,
    forward: str = "auto",
    sync_every: int | None = None,
) -> WordsOutput:
    """Generate one word per row of ``inputs_embeds`` ([batch, length, hidden]).

    What ``model.generate(inputs_embeds=inputs_embeds, attention_mask=None,
    max_new_tokens=max_new_tokens, pad_token_id=PAD, eos_token_id=EOS, do_sample=...,
    logits_processor=[constraint.logits_processor],
    stopping_criteria=[constraint.stopping_criteria])`` returns, as ``.sequences``, plus each
    row's word; without generate's per-step machinery.

    Args:
        constraint: a ``WordConstraint`` (its decoder and its ``max_word_len``); None = WeLT's.
        max_new_tokens: the most tokens per word; None = the constraint's ``max_word_len``,
            else the decoder's.
        do_sample, temperature, top_k, top_p: as in ``generate`` (applied in its order:
            temperature, top-k, top-p); ``None`` = off. ``generator`` seeds the sampling
            (None = torch's default generator, as ``generate`` uses).
        forward: ``"lean"`` (LeanLlama), ``"model"`` (the model with a DynamicCache: the
            numbers generate computes) or ``"auto"`` (lean where the model is Llama-shaped).
        sync_every: steps between the host's checks whether every row has finished (each one
            waits for the device); None = 1 on CPU (where it costs nothing), 4 elsewhere.
    """
    c = constraint if constraint is not None else _default_constraint()
    dec = c.decoder
    if max_new_tokens is None:
        max_new_tokens = c.max_word_len if c.max_word_len is not None else int(dec.max_word_len)
    device = inputs_embeds.device if isinstance(inputs_embeds, torch.Tensor) else None
    if sync_every is None:
        sync_every = 1 if device is None or device.type == "cpu" else 4
    _check_args(inputs_embeds, max_new_tokens, do_sample, temperature, top_k, top_p, sync_every)
    steps_max = max_new_tokens if c.max_word_len is None else min(max_new_tokens, c.max_word_len)
    fwd = _forward_for(model, forward)
    host = c._host
    if fwd.vocab < host.vocab:
        raise ValueError(f"welt: the model has {fwd.vocab} logits, fewer than the decoder's vocabulary ({host.vocab})")
    tab = c._tables_for(device, fwd.vocab)
    nxt, forbid, fin, row, pad = tab.next, tab.forbid_gen(), tab.fin, host.row, host.pad
    B, S, _ = inputs_embeds.shape
    state = tab.start.expand(B).clone()
    out = torch.empty(steps_max, B, dtype=torch.long, device=device)
    mins = torch.empty(steps_max, dtype=torch.long, device=device)
    clamp = fwd.vocab > host.vocab
    logits = fwd.start(inputs_embeds, S + steps_max)
    steps = steps_max
    since = 0
    for t in range(steps_max):
        # A finished row's mask keeps only PAD, so it picks PAD as generate pads it.
        scores = logits.masked_fill_(forbid.index_select(0, state), _NEG_INF)
        tok = out[t]
        if do_sample:
            _sample(_warp(scores.float(), temperature, top_k, top_p), generator, tok)
        else:
            torch.argmax(scores, dim=-1, out=tok)
        idx = torch.add(tok.clamp(max=host.vocab) if clamp else tok, state, alpha=row)
        state = nxt.index_select(0, idx)
        torch.amin(state, 0, out=mins[t])
        since += 1
        if since == sync_every or t == steps_max - 1:
            first = t + 1 - since
            since = 0
            seen = mins[first : t + 1].tolist()  # the host waits here, once per sync_every steps
            if seen[-1] == fin:
                steps = first + seen.index(fin) + 1
                break
        logits = fwd.step(tok)
    seq = out[:steps].t()
    rows = torch.cat([seq, state[:, None]], 1).tolist()  # the host waits here, once per word
    stopped = [r.pop() == fin for r in rows]
    lengths = []
    for r, s in zip(rows, stopped):
        n = len(r)
        if s:
            while n and r[n - 1] == pad:
                n -= 1
        lengths.append(n)
    words = None
    if host.vocab == 256:
        words = [bytes(r[:n]).decode("utf-8", "ignore") for r, n in zip(rows, lengths)]
    return WordsOutput(seq, words, lengths, stopped)


_KNOWN_PROCESSORS = ("TemperatureLogitsWarper", "TopKLogitsWarper", "TopPLogitsWarper")
_KNOWN_CRITERIA = ("MaxLengthCriteria", "EosTokenCriteria")


def custom_generate(model, input_ids, logits_processor=None, stopping_criteria=None, generation_config=None,
                    forward: str = "auto", sync_every: int | None = None, **model_kwargs):
    """``generate_words`` behind ``model.generate(..., custom_generate=welt.hf.custom_generate)``.

    ``generate`` prepares its arguments as usual and hands them here: the WordConstraint is
    the one whose hooks are in ``logits_processor`` / ``stopping_criteria`` (WeLT's default
    when there is none), the sampling settings are the warpers ``generate`` built (temperature,
    top-k, top-p), the length is ``max_new_tokens``. Returns the sequences tensor, as
    ``generate`` does. Other processors or criteria, a prompt in ``input_ids``, or an
    attention mask with padding are not supported (ValueError): use plain ``generate``.
    ``forward`` and ``sync_every`` may be passed to ``generate`` as extra keywords.
    """
    from .hf import _Criteria, _Processor

    constraint = None
    temperature = top_k = top_p = None
    for p in logits_processor or ():
        name = type(p).__name__
        if isinstance(p, _Processor):
            constraint = p._c if constraint is None else constraint
        elif name == "TemperatureLogitsWarper":
            temperature = p.temperature
        elif name == "TopKLogitsWarper":
            top_k = p.top_k
        elif name == "TopPLogitsWarper":
            top_p = p.top_p
        else:
            raise ValueError(f"welt.hf.custom_generate: logits processor {name} is not supported; use generate")
    for c in stopping_criteria or ():
        name = type(c).__name__
        if isinstance(c, _Criteria):
            if constraint is not None and c._c is not constraint:
                raise ValueError("welt.hf.custom_generate: the processor and the criteria are of different WordConstraints")
            constraint = c._c
        elif name not in _KNOWN_CRITERIA:
            raise ValueError(f"welt.hf.custom_generate: stopping criteria {name} is not supported; use generate")
    embeds = model_kwargs.get("inputs_embeds")
    if embeds is None or (input_ids is not None and input_ids.shape[1] != 0):
        raise ValueError("welt.hf.custom_generate: needs inputs_embeds and no prompt in input_ids")
    mask = model_kwargs.get("attention_mask")
    if mask is not None and mask.device.type == "cpu" and not bool(mask.all()):
        raise ValueError("welt.hf.custom_generate: an attention mask with padding is not supported")
    gc = generation_config
    max_new = gc.max_new_tokens if gc is not None and gc.max_new_tokens is not None else None
    if max_new is None and gc is not None and gc.max_length is not None:
        max_new = gc.max_length - input_ids.shape[1]
    do_sample = bool(gc.do_sample) if gc is not None else False
    out = generate_words(model, embeds, constraint, max_new_tokens=max_new, do_sample=do_sample,
                         temperature=temperature, top_k=top_k, top_p=top_p, forward=forward, sync_every=sync_every)
    return out.sequences
