"""welt.hf.WordConstraint inside real Hugging Face generate, driven as WeLT drives it: the same
tokens as the reference hooks (UTF8ValidationLogitsProcessor + the strict boundary +
WordStoppingCriteria), on the Rust (CPU) path and on the torch-ops (device) path."""

from __future__ import annotations

import inspect

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from conftest import (  # noqa: E402
    EOS,
    PAD,
    GuardedCriteria,
    GuardedProcessor,
    HostSync,
    embeds_for,
    generate,
    model_on,
    no_host_sync,
)

import welt  # noqa: E402
from welt.hf import WordConstraint  # noqa: E402

MAX = 6  # max_new_tokens: short words keep the suite fast


def backends_for(device):
    # On CPU tensors "auto" is the Rust WordBatch; "torch" forces the device path's torch ops.
    return ["auto", "torch"] if device.type == "cpu" else ["auto"]


def pytest_generate_tests(metafunc):
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", ["auto", "torch"])


@pytest.fixture
def constraint(device, backend):
    if device.type != "cpu" and backend != "auto":
        pytest.skip("on a device the only path is the torch ops")
    return WordConstraint(welt.Decoder.default(), backend=backend)


def hooks(c):
    return [c.logits_processor], [c.stopping_criteria]


def test_greedy_matches_reference_many_calls_one_constraint(model, reference, constraint, device):
    seen = {"stopped_early": 0, "hit_limit": 0, "multibyte": 0, "padded": 0}
    for call, B in enumerate([1, 3, 32, 3, 1]):
        emb = embeds_for(model, B, seed=100 + call)
        want = generate(model, emb, MAX, *reference())
        got = generate(model, emb, MAX, *hooks(constraint))
        assert torch.equal(got, want), f"call {call}, B={B}:\n{got}\n!=\n{want}"
        assert constraint.batch_size == B
        assert constraint.active_backend == ("cpu" if device.type == "cpu" and constraint.backend == "auto" else "torch")
        for row in want.tolist():
            seen["multibyte"] += any(b >= 0xC2 for b in row)
            seen["padded"] += row[-1] == PAD
            seen["hit_limit"] += len(row) == MAX and row[-1] != PAD
            seen["stopped_early"] += len(row) < MAX or row[-1] == PAD
    # The calls must exercise what the hooks decide: words of every kind.
    assert all(v > 0 for v in seen.values()), seen


@pytest.mark.parametrize("sampling", [dict(temperature=0.7, top_k=12), dict(top_p=0.8, temperature=1.3)])
def test_seeded_sampling_matches_reference(model, reference, constraint, sampling):
    for B, seed in ((3, 1), (32, 2)):
        emb = embeds_for(model, B, seed=200 + seed)
        want = generate(model, emb, MAX, *reference(), seed=seed, **sampling)
        got = generate(model, emb, MAX, *hooks(constraint), seed=seed, **sampling)
        assert torch.equal(got, want), f"B={B} {sampling}:\n{got}\n!=\n{want}"


def test_processor_alone_matches_reference_processor(model, reference, constraint):
    procs, _ = reference()
    emb = embeds_for(model, 3, seed=7)
    want = generate(model, emb, MAX, procs)
    got = generate(model, emb, MAX, [constraint.logits_processor])
    assert torch.equal(got, want)


def test_own_word_length_limit(model, reference, device, backend):
    if device.type != "cpu" and backend != "auto":
        pytest.skip("device path only")
    c = WordConstraint(welt.Decoder.default(), max_word_len=3, backend=backend)
    emb = embeds_for(model, 32, seed=8)
    want = generate(model, emb, 3, *reference())
    got = generate(model, emb, MAX, *hooks(c))
    assert torch.equal(got, want)


def test_torch_path_adds_no_host_sync(model, reference, device):
    c = WordConstraint(welt.Decoder.default(), backend="torch")
    proc, crit = GuardedProcessor(c.logits_processor), GuardedCriteria(c.stopping_criteria)
    for call, B in enumerate([3, 32]):
        emb = embeds_for(model, B, seed=300 + call)
        want = generate(model, emb, MAX, *reference())
        got = generate(model, emb, MAX, [proc], [crit])
        assert torch.equal(got, want)
    assert proc.calls > 0 and crit.calls > 0
    # The guard is real: the reference processor reads ids back to the host and is caught.
    ref_proc = GuardedProcessor(reference()[0][0])
    with pytest.raises(HostSync):
        generate(model, embeds_for(model, 3, seed=1), MAX, [ref_proc])


def test_host_sync_guard_catches_each_kind():
    t = torch.ones(2, dtype=torch.long)
    reads = [lambda: t[0].item(), lambda: t.tolist(), lambda: t.cpu(), lambda: bool(t[0]), lambda: int(t[0]),
             lambda: [0, 1][t[0]], lambda: t.numpy(), lambda: float(t[0]), lambda: f"{t[0]}",
             lambda: 1 if t[0] else 0]
    for read in reads:
        with no_host_sync(), pytest.raises(HostSync):
            read()


# ---- direct calls: bad input, dtypes, shapes --------------------------------------------------


def _ids(rows, device):
    return torch.tensor(rows, dtype=torch.long, device=device).reshape(len(rows), -1)


def drive(c, device, words, B=3, dtype=torch.float32, width=256, copy_ids=False):
    """Run the hooks as generate does over `words` (one list of tokens per row, same length);
    returns the masks (as bool, True = forbidden) and the done flags of each step. `copy_ids`:
    the processor gets a copy of what the criteria saw (not the same object)."""
    proc, crit = c.logits_processor, c.stopping_criteria
    ids = torch.empty(B, 0, dtype=torch.long, device=device)
    masks, dones = [], []
    for k in range(len(words[0])):
        scores = torch.zeros(B, width, dtype=dtype, device=device)
        out = proc(ids.clone() if copy_ids else ids, scores)
        assert out is scores
        masks.append(torch.isinf(scores).cpu())
        ids = torch.cat([ids, torch.tensor([w[k] for w in words], device=device)[:, None]], 1)
        dones.append(crit(ids, None).cpu().clone())
    return masks, dones


WORDS = [[ord("a"), ord("b"), ord(" "), PAD], [0xC3, 0xA9, ord("x"), 0x09], [ord(" "), ord("y"), ord("z"), EOS]]


def test_direct_calls_follow_the_word(constraint, device):
    masks, dones = drive(constraint, device, WORDS)
    # Step 0: at a character boundary 80-C1 and F5-FF are forbidden, the rest allowed.
    m0 = masks[0][0]
    assert m0[0x80:0xC2].all() and m0[0xF5:].all() and not m0[:0x80].any() and not m0[0xC2:0xF5].any()
    # After C3 only 80-BF.
    m1 = masks[1][1]
    assert not m1[0x80:0xC0].any() and m1[:0x80].all() and m1[0xC0:].all()
    assert [d.tolist() for d in dones] == [[False, False, False], [False, False, False], [True, False, False],
                                           [True, True, True]]
    # A finished row is not masked (generate writes PAD there).
    assert not masks[3][0].any()


def test_processor_given_a_copy_of_input_ids_continues_the_word(constraint, device):
    want = drive(WordConstraint(welt.Decoder.default(), backend=constraint.backend), device, WORDS)
    got = drive(constraint, device, WORDS, copy_ids=True)
    for a, b in zip(got, want):
        assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_criteria_alone_new_call_with_a_bad_id_keeps_the_old_word(constraint, device):
    c, crit = constraint, constraint.stopping_criteria
    first = _ids([[ord("a")], [0xC3], [ord(" ")]], device)
    assert crit(first, None).tolist() == [False, False, False]
    bad = _ids([[ord("a")], [300], [ord("b")]], device)  # length 1 again: a new call
    if c.active_backend == "cpu":
        with pytest.raises(ValueError):
            crit(bad, None)
        # the old word goes on: "a " completes, "\xc3\xa9" does not, "  " never does
        second = torch.cat([first, _ids([[ord(" ")], [0xA9], [ord(" ")]], device)], 1)
        assert crit(second, None).tolist() == [True, False, False]
    else:
        assert crit(bad, None).tolist() == [False, True, False]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_score_dtypes_mask_the_same(constraint, device, dtype):
    want, want_done = drive(WordConstraint(welt.Decoder.default(), backend=constraint.backend), device, WORDS)
    got, got_done = drive(constraint, device, WORDS, dtype=dtype)
    assert all(torch.equal(a, b) for a, b in zip(got, want))
    assert all(torch.equal(a, b) for a, b in zip(got_done, want_done))


def test_columns_past_the_vocabulary_are_left_alone(constraint, device):
    masks, _ = drive(constraint, device, WORDS, width=300)
    assert all(not m[:, 256:].any() for m in masks)
    assert masks[0][0][0x80]


def twin_state(c, device, B=3):
    """Tokens that reveal the constraint's state: the mask of every row for the next step."""
    scores = torch.zeros(B, 256, device=device)
    c.logits_processor(c._ids, scores)
    return torch.isinf(scores).cpu()


def test_bad_input_raises_and_changes_nothing(constraint, device):
    c = constraint
    proc, crit = c.logits_processor, c.stopping_criteria
    ids = torch.empty(3, 0, dtype=torch.long, device=device)
    scores = torch.zeros(3, 256, device=device)
    proc(ids, scores)
    ids1 = _ids([[0xC3], [ord("a")], [ord(" ")]], device)
    crit(ids1, None)
    before = twin_state(c, device)
    bad_scores = [
        (TypeError, torch.zeros(3, 256, dtype=torch.long, device=device)),
        (ValueError, torch.zeros(3, 100, device=device)),
        (ValueError, torch.zeros(2, 256, device=device)),
        (ValueError, torch.zeros(256, device=device)),
        (TypeError, [[0.0] * 256] * 3),
    ]
    for exc, s in bad_scores:
        with pytest.raises(exc):
            proc(ids1, s)
        with pytest.raises(exc):  # not the object the criteria saw last: the slow path
            proc(ids1.clone(), s)
        assert torch.equal(twin_state(c, device), before)
    ids2 = torch.cat([ids1, _ids([[0xA9], [ord("b")], [ord("c")]], device)], 1)
    bad_ids = [
        (ValueError, torch.cat([ids2, ids2[:1]], 0)),  # the batch grew mid-call
        (ValueError, ids2[:2]),  # ... or shrank
        (TypeError, ids2.float()),
        (ValueError, ids2[0]),
        (TypeError, ids2.tolist()),
    ]
    for exc, i in bad_ids:
        with pytest.raises(exc):
            crit(i, None)
        assert torch.equal(twin_state(c, device), before)
    done = crit(ids2, None)
    assert done.tolist() == [False, False, False]
    assert c._n == 2


def test_token_out_of_range(constraint, device):
    c = constraint
    proc, crit = c.logits_processor, c.stopping_criteria
    proc(torch.empty(3, 0, dtype=torch.long, device=device), torch.zeros(3, 256, device=device))
    bad = _ids([[ord("a")], [300], [-1]], device)
    if c.active_backend == "cpu":
        with pytest.raises(ValueError):
            crit(bad, None)
        assert c._n == 0  # nothing consumed: the word goes on from where it was
        assert crit(_ids([[ord("a")], [ord("b")], [ord(" ")]], device), None).tolist() == [False, False, False]
    else:
        # On the device path an id outside the vocabulary ends its row (no sync to raise).
        assert crit(bad, None).tolist() == [False, True, True]


def test_constructor_and_api():
    with pytest.raises(ValueError):
        WordConstraint(backend="gpu")
    with pytest.raises(ValueError):
        WordConstraint(max_word_len=0)
    with pytest.raises(TypeError):
        WordConstraint(max_word_len="8")
    c = WordConstraint()
    assert c.vocab_size == 256 and c.batch_size is None and c.active_backend is None
    with pytest.raises(RuntimeError):
        c.finished()
    kw = c.generate_kwargs()
    assert list(kw["logits_processor"]) == [c.logits_processor]
    assert list(kw["stopping_criteria"]) == [c.stopping_criteria]
    # LogitsProcessorList inspects the signature on every step: two parameters, found fast.
    assert list(inspect.signature(c.logits_processor.__call__).parameters) == ["input_ids", "scores"]
    s = torch.zeros(1, 256)
    assert c.logits_processor.__call__(torch.empty(1, 0, dtype=torch.long), s) is s and torch.isinf(s[0, 0x80])
    assert c.finished().tolist() == [False]
    c.reset()
    assert c.batch_size is None
    assert "WordConstraint" in repr(c) and "WordConstraint" in repr(c.logits_processor)


def test_cpu_backend_refuses_device_tensors():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    c = WordConstraint(backend="cpu")
    with pytest.raises(ValueError):
        c.logits_processor(torch.empty(1, 0, dtype=torch.long, device="cuda"), torch.zeros(1, 256, device="cuda"))


def test_half_precision_model_inside_generate(reference, device):
    if device.type == "cpu":
        pytest.skip("half precision generate on CPU is slow; the dtype test covers the mask")
    m = model_on(device, torch.float16)
    emb = embeds_for(m, 3, seed=9)
    want = generate(m, emb, MAX, *reference())
    got = generate(m, emb, MAX, *hooks(WordConstraint()))
    assert torch.equal(got, want)
