"""welt.hf.generate_words: the same tokens as generate with welt's drop-ins (exactly with the
model's own forward; with the lean forward except at floating-point near-ties, which are found
and reported), at most one host synchronization per sync_every steps, and its errors."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from conftest import EOS, PAD, embeds_for, generate, no_host_sync  # noqa: E402

import welt  # noqa: E402
from welt.hf import LeanLlama, WordConstraint, custom_generate, generate_words  # noqa: E402

MAX = 6


def with_dropins(model, emb, max_new, seed=None, **sampling):
    c = WordConstraint()
    return generate(model, emb, max_new, [c.logits_processor], [c.stopping_criteria], seed=seed, **sampling)


def check_output(out, max_new):
    seq = out.sequences
    assert len(out.words) == len(out.lengths) == len(out.stopped) == seq.shape[0]
    for row, n, s, w in zip(seq.tolist(), out.lengths, out.stopped, out.words):
        assert all(t == PAD for t in row[n:])
        if s:
            assert n >= 1 and (row[n - 1] != PAD)
        else:
            assert n == len(row) == max_new
        assert w == bytes(row[:n]).decode("utf-8", "ignore")


@pytest.mark.parametrize("B", [1, 3, 32])
def test_model_forward_gives_generates_tokens(model, B):
    c = WordConstraint()
    for seed in (1, 2):
        emb = embeds_for(model, B, seed=400 + seed)
        want = with_dropins(model, emb, MAX)
        out = generate_words(model, emb, c, max_new_tokens=MAX, forward="model")
        assert torch.equal(out.sequences, want)
        check_output(out, MAX)


def first_difference(a, b):
    for r, (x, y) in enumerate(zip(a.tolist(), b.tolist())):
        for t, (p, q) in enumerate(zip(x, y)):
            if p != q:
                return r, t
    return None


def top2_gap_at(model, emb, row, prefix):
    """The gap between the two best allowed logits of the model's own forward after `prefix`."""
    c = WordConstraint(backend="torch")
    e = emb[row : row + 1]
    ids = torch.tensor([prefix], dtype=torch.long, device=e.device)
    with torch.no_grad():
        if prefix:
            e = torch.cat([e, model.get_input_embeddings()(ids)], 1)
        logits = model(inputs_embeds=e).logits[:, -1].float()
    scores = logits.clone()
    c.logits_processor(ids[:, :0], scores)
    for k in range(len(prefix)):
        c.stopping_criteria(ids[:, : k + 1], None)
        c.logits_processor(ids[:, : k + 1], scores.copy_(logits))
    top = torch.topk(scores[0], 2).values.tolist()
    return top[0] - top[1], abs(top[0])


@pytest.mark.parametrize("B", [1, 3, 32])
def test_lean_forward_gives_generates_tokens_but_near_ties(model, B, capsys):
    c = WordConstraint()
    ties = []
    for seed in (1, 2):
        emb = embeds_for(model, B, seed=500 + seed)
        want = with_dropins(model, emb, MAX)
        out = generate_words(model, emb, c, max_new_tokens=MAX, forward="lean")
        check_output(out, MAX)
        got = out.sequences
        if got.shape == want.shape and torch.equal(got, want):
            continue
        # Different tokens: at the first difference the model's two best allowed tokens must be
        # a floating-point near-tie, as the lean forward rounds differently.
        d = first_difference(got, want) if got.shape[0] == want.shape[0] else None
        assert d is not None, f"shapes {tuple(got.shape)} vs {tuple(want.shape)} without a differing token"
        r, t = d
        gap, scale = top2_gap_at(model, emb, r, want[r, :t].tolist())
        ties.append((B, seed, r, t, gap))
        assert gap <= 1e-4 * max(1.0, scale), f"row {r} step {t}: top-2 gap {gap} is not a near-tie"
    with capsys.disabled():
        if ties:
            print(f"\n[welt] lean forward: near-ties (B, seed, row, step, top-2 gap): {ties}")


def test_lean_forward_logits_close_to_the_model(model):
    emb = embeds_for(model, 3, seed=11)
    lean = LeanLlama(model)
    with torch.no_grad():
        got = lean.start(emb, 8)
        want = model(inputs_embeds=emb).logits[:, -1]
        tol = 1e-4 * want.abs().max().item()
        assert (got - want).abs().max().item() <= tol
        tok = torch.tensor([0x61, 0xC3, 0x20], device=emb.device)
        got2 = lean.step(tok)
        want2 = model(inputs_embeds=torch.cat([emb, model.get_input_embeddings()(tok[:, None])], 1)).logits[:, -1]
        assert (got2 - want2).abs().max().item() <= tol


@pytest.mark.parametrize("sampling", [dict(temperature=0.7, top_k=12), dict(top_p=0.8, temperature=1.2)])
def test_seeded_sampling_gives_generates_tokens(model, sampling):
    for B, seed in ((3, 5), (32, 6)):
        emb = embeds_for(model, B, seed=600 + seed)
        want = with_dropins(model, emb, MAX, seed=seed, **sampling)
        torch.manual_seed(seed)
        out = generate_words(model, emb, max_new_tokens=MAX, do_sample=True, forward="model", **sampling)
        assert torch.equal(out.sequences, want), sampling
        check_output(out, MAX)


def test_generator_seeds_the_sampling(model):
    emb = embeds_for(model, 32, seed=7)
    runs = []
    for s in (1, 1, 2):
        g = torch.Generator(device=emb.device).manual_seed(s)
        runs.append(generate_words(model, emb, max_new_tokens=MAX, do_sample=True, temperature=1.5, generator=g))
    assert torch.equal(runs[0].sequences, runs[1].sequences)
    assert runs[0].words != runs[2].words
    for r in runs:
        check_output(r, MAX)


def test_custom_generate_inside_generate(model):
    c = WordConstraint()
    for B in (1, 32):
        emb = embeds_for(model, B, seed=700 + B)
        want = with_dropins(model, emb, MAX)
        from conftest import gen_config

        with torch.inference_mode():
            got = model.generate(inputs_embeds=emb, attention_mask=None, generation_config=gen_config(MAX),
                                 custom_generate=custom_generate, forward="model", **c.generate_kwargs())
        assert torch.equal(got, want)


@pytest.mark.parametrize("k", [1, 4])
def test_one_host_sync_per_sync_every_steps(model, k):
    emb = embeds_for(model, 3, seed=13)
    generate_words(model, emb, max_new_tokens=MAX)  # builds the lean forward once (reads the model)
    syncs = []
    with no_host_sync(counter=syncs):
        out = generate_words(model, emb, max_new_tokens=MAX, sync_every=k, do_sample=True, top_k=20)
    steps = out.sequences.shape[1]
    assert 1 <= len(syncs) <= math.ceil(steps / k) + 1 + (k > 1), (syncs, steps)
    again = generate_words(model, emb, max_new_tokens=MAX, sync_every=1)
    plain = generate_words(model, emb, max_new_tokens=MAX, sync_every=k)
    assert torch.equal(again.sequences, plain.sequences)


def test_own_length_limit_and_default_length(model):
    emb = embeds_for(model, 32, seed=14)
    c = WordConstraint(max_word_len=3)
    out = generate_words(model, emb, c, forward="model")
    assert torch.equal(out.sequences, with_dropins(model, emb, 3))
    d = generate_words(model, emb, max_new_tokens=None, forward="model")
    assert d.sequences.shape[1] <= welt.Decoder.default().max_word_len


def test_eos_ends_the_word(device):
    from conftest import make_model

    m = make_model(seed=4, device=device)
    emb = embeds_for(m, 32, seed=15)
    first = generate_words(m, emb, max_new_tokens=MAX, forward="model").sequences
    common = torch.bincount(first[:, 0].cpu(), minlength=256).argmax()
    with torch.no_grad():  # EOS beats the commonest first byte wherever that one wins
        m.lm_head.weight[EOS] = m.lm_head.weight[common] * 2.0
    out = generate_words(m, emb, max_new_tokens=MAX, forward="model")
    want = with_dropins(m, emb, MAX)
    assert torch.equal(out.sequences, want)
    assert any(row[n - 1] == EOS for row, n in zip(out.sequences.tolist(), out.lengths) if n)


def test_lean_forward_follows_weight_changes(device):
    from conftest import make_model

    m = make_model(seed=3, device=device)
    emb = embeds_for(m, 3, seed=16)
    a = generate_words(m, emb, max_new_tokens=MAX, forward="lean")
    with torch.no_grad():
        m.model.layers[0].mlp.down_proj.weight.mul_(-1.0)
        m.lm_head.weight.mul_(-1.0)
    b = generate_words(m, emb, max_new_tokens=MAX, forward="lean")
    c = generate_words(m, emb, max_new_tokens=MAX, forward="model")
    assert not torch.equal(a.sequences, b.sequences) or a.words != b.words
    assert torch.equal(b.sequences, c.sequences)


def test_bad_arguments(model):
    emb = embeds_for(model, 3, seed=17)
    for kw, exc in [(dict(max_new_tokens=0), ValueError), (dict(max_new_tokens=2.5), ValueError),
                    (dict(sync_every=0), ValueError), (dict(forward="fast"), ValueError),
                    (dict(do_sample=True, temperature=0.0), ValueError), (dict(do_sample=True, top_k=-1), ValueError),
                    (dict(do_sample=True, top_p=1.5), ValueError)]:
        with pytest.raises(exc):
            generate_words(model, emb, **kw)
    with pytest.raises(ValueError):
        generate_words(model, emb[0])
    with pytest.raises(TypeError):
        generate_words(model, emb.long())
    with pytest.raises(ValueError):
        generate_words(model, emb[:, :0])


def test_not_llama_shaped_falls_back_to_the_model_forward():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    m = GPT2LMHeadModel(GPT2Config(vocab_size=256, n_embd=64, n_layer=2, n_head=2, n_positions=64,
                                   bos_token_id=2, eos_token_id=3, pad_token_id=0)).eval()
    emb = torch.cat([torch.randn(3, 1, 64), m.get_input_embeddings()(torch.tensor([[2]])).expand(3, -1, -1)], 1).detach()
    with pytest.raises(ValueError):
        LeanLlama(m)
    with pytest.raises(ValueError):
        generate_words(m, emb, max_new_tokens=4, forward="lean")
    out = generate_words(m, emb, max_new_tokens=4)
    assert torch.equal(out.sequences, with_dropins(m, emb, 4))
