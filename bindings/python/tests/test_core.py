"""welt's core Python API: Decoder and WordBatch against the tables they are built from, the
array paths (torch through its attributes, numpy through DLPack) with strided rows, f16 and
bf16, and every kind of bad input: a clear exception, with the batch and the arrays left as
they were."""

import os
import pathlib
import pickle
import subprocess
import sys

import numpy as np
import pytest

import welt
from welt import Decoder, WordBatch

try:
    import torch
except ImportError:  # pragma: no cover - torch is optional for the core API
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")

ROOT = pathlib.Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures"
TOKENIZER_FIXTURES = sorted(FIXTURES.glob("*.json"))
BAD_FIXTURES = sorted((FIXTURES / "bad").glob("*.json"))

A, B, SPACE, CONT, EOS, PAD = ord("a"), ord("b"), ord(" "), 0x80, 3, 0


@pytest.fixture(scope="module")
def dec():
    return Decoder.default()


def observe(batch):
    """Everything observable about a batch."""
    return (
        batch.states.tolist(),
        batch.lengths.tolist(),
        batch.stopped.tolist(),
        batch.finished.tolist(),
        batch.running,
        batch.max_word_len,
    )


# --- Decoder ------------------------------------------------------------------------------


def test_default_decoder_properties(dec):
    assert dec.vocab_size == 256
    assert dec.eos == EOS and dec.pad == PAD
    assert dec.max_word_len == 16
    assert dec.num_states > 2 and 0 < dec.start_state < dec.num_states
    assert "vocab_size=256" in repr(dec)
    assert Decoder.default(max_word_len=5).max_word_len == 5
    assert welt.DEAD == 0


def test_tables_are_dense_and_agree_with_the_batch(dec):
    t = dec.tables()
    n, v = dec.num_states, dec.vocab_size
    assert t["next_state"].dtype == np.uint16 and t["next_state"].shape == (n, v)
    assert t["stops"].dtype == np.bool_ and t["stops"].shape == (n, v)
    assert t["allowed"].dtype == np.bool_ and t["allowed"].shape == (n, v)
    # The dead state: nothing allowed, nothing leaves it.
    assert not t["allowed"][0].any() and not t["next_state"][0].any()
    # Allowed iff the entry is not 0 (a live next state, or a stop).
    assert np.array_equal(t["allowed"], (t["next_state"] != 0) | t["stops"])
    # Walk a few words through the batch and compare every step with the tables.
    rng = np.random.default_rng(7)
    batch = WordBatch(dec, 4)
    for _ in range(200):
        states = batch.states
        before_finished = batch.finished
        logits = np.zeros((4, v), np.float32)
        batch.apply_mask(logits)
        for r in range(4):
            if before_finished[r]:
                assert np.all(logits[r] == 0)
            else:
                assert np.array_equal(np.isfinite(logits[r]), t["allowed"][states[r]])
                assert np.array_equal(batch.allowed(r), t["allowed"][states[r]])
        tokens = [
            int(rng.choice(np.flatnonzero(t["allowed"][s]))) if not f else 0
            for s, f in zip(states, before_finished)
        ]
        taken = batch.advance(tokens)
        for r in range(4):
            if before_finished[r]:
                assert taken[r] == dec.pad
                continue
            s, tok = states[r], tokens[r]
            assert taken[r] == tok
            assert batch.stopped[r] == t["stops"][s, tok]
            if not t["stops"][s, tok]:
                assert batch.states[r] == t["next_state"][s, tok]
        batch.restart_finished()


def test_stats_and_dot(dec):
    s = dec.stats
    assert s["vocab_size"] == 256 and s["states"] == dec.num_states
    assert s["layout"] == "direct" and s["blob_bytes"] == len(dec.to_bytes())
    assert s["byte_states"] >= 2 and "EOS" in s["special_tokens"]
    dot = dec.to_dot()
    assert "digraph welt {" in dot and dot.rstrip().endswith("}")
    again = Decoder.from_bytes(dec.to_bytes())
    assert again.stats["states"] == dec.num_states and again.stats["layout"] == "direct"
    with pytest.raises(ValueError, match="from_bytes"):
        again.to_dot()


def test_bytes_round_trip_and_pickle(dec):
    blob = dec.to_bytes()
    again = Decoder.from_bytes(blob)
    assert again.to_bytes() == blob
    assert Decoder.from_bytes(bytearray(blob)).to_bytes() == blob
    assert pickle.loads(pickle.dumps(dec)).to_bytes() == blob


def test_from_bytes_refuses_bad_blobs():
    blob = bytearray(Decoder.default().to_bytes())
    with pytest.raises(ValueError, match="invalid welt tables"):
        Decoder.from_bytes(bytes(64))
    with pytest.raises(ValueError, match="invalid welt tables"):
        Decoder.from_bytes(bytes(blob[:-1]))
    blob[0] ^= 0xFF  # the magic
    with pytest.raises(ValueError, match="invalid welt tables"):
        Decoder.from_bytes(bytes(blob))
    with pytest.raises(TypeError, match="bytes"):
        Decoder.from_bytes("not bytes")


@pytest.mark.parametrize("fixture", TOKENIZER_FIXTURES, ids=lambda p: p.stem)
def test_from_tokenizer_takes_a_path_a_tokenizer_and_a_transformers_tokenizer(fixture):
    by_str = Decoder.from_tokenizer(str(fixture))
    assert Decoder.from_tokenizer(fixture).to_bytes() == by_str.to_bytes()  # os.PathLike
    tokenizers = pytest.importorskip("tokenizers")
    tk = tokenizers.Tokenizer.from_file(str(fixture))
    assert Decoder.from_tokenizer(tk).to_bytes() == by_str.to_bytes()
    assert by_str.vocab_size == tk.get_vocab_size(with_added_tokens=True) or by_str.vocab_size >= 1
    transformers = pytest.importorskip("transformers")
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tk)
    assert Decoder.from_tokenizer(fast).to_bytes() == by_str.to_bytes()


def test_from_tokenizer_options_change_the_tables():
    path = FIXTURES / "sp_unigram.json"
    base = Decoder.from_tokenizer(path)
    short = Decoder.from_tokenizer(path, max_word_len=3)
    assert short.max_word_len == 3 and base.max_word_len == 16
    classes = Decoder.from_tokenizer(path, layout="classes")
    assert classes.stats["layout"] == "token classes"
    direct = Decoder.from_tokenizer(path, layout="direct")
    assert direct.stats["layout"] == "direct"
    # The same automaton either way.
    assert np.array_equal(classes.tables()["next_state"], direct.tables()["next_state"])
    forbid = Decoder.from_tokenizer(path, forbid_leading_whitespace=True)
    assert forbid.to_bytes() != base.to_bytes()


def test_from_tokenizer_errors():
    good = FIXTURES / "sp_unigram.json"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Decoder.from_tokenizer(FIXTURES / "no_such_tokenizer.json")
    with pytest.raises(OSError, match="directory"):
        Decoder.from_tokenizer(FIXTURES)
    for bad in BAD_FIXTURES:
        with pytest.raises(ValueError):
            Decoder.from_tokenizer(bad)
    with pytest.raises(ValueError, match="eos"):
        Decoder.from_tokenizer(good, eos="<no such token>")
    with pytest.raises(ValueError, match="stop"):
        Decoder.from_tokenizer(good, stop_tokens=["<no such token>"])
    for n in (0, 70000, -1):
        with pytest.raises(ValueError, match="word length limit"):
            Decoder.from_tokenizer(good, max_word_len=n)
    with pytest.raises(ValueError, match="word length limit"):
        Decoder.default(max_word_len=0)
    with pytest.raises(TypeError):
        Decoder.from_tokenizer(good, max_word_len="7")
    with pytest.raises(ValueError, match="layout"):
        Decoder.from_tokenizer(good, layout="sideways")
    with pytest.raises(TypeError):
        Decoder.from_tokenizer(good, stop_tokens="abc")
    with pytest.raises(TypeError, match="tokenizer must be"):
        Decoder.from_tokenizer(42)

    class SlowTokenizer:
        def convert_tokens_to_ids(self, tokens):
            return tokens

    with pytest.raises(TypeError, match="slow"):
        Decoder.from_tokenizer(SlowTokenizer())

    class Weird:
        def to_str(self):
            return b"{}"

    with pytest.raises(TypeError, match="did not return a str"):
        Decoder.from_tokenizer(Weird())

    class NotJson:
        def to_str(self):
            return "{not json"

    with pytest.raises(ValueError, match="JSON"):
        Decoder.from_tokenizer(NotJson())


# --- WordBatch: words ---------------------------------------------------------------------


def test_a_word_ends_and_finished_rows_get_pad(dec):
    batch = WordBatch(dec, 2)
    assert batch.batch_size == 2 and len(batch) == 2 and batch.running == 2
    assert list(batch.advance([A, B])) == [A, B]
    assert batch.finished.tolist() == [False, False]
    taken = batch.advance(np.array([SPACE, A]))
    assert list(taken) == [SPACE, A] and taken.dtype == np.int64
    assert batch.stopped.tolist() == [True, False] and batch.running == 1
    assert not batch.is_done()
    taken = batch.advance([A, SPACE])
    assert list(taken) == [PAD, SPACE]  # row 0 had finished
    assert batch.is_done() and batch.lengths.tolist() == [2, 3]
    assert batch.restart_finished() == 2 and batch.lengths.tolist() == [0, 0]
    batch.advance([EOS, A])
    assert batch.stopped.tolist() == [True, False]
    batch.reset()
    assert batch.finished.tolist() == [False, False] and batch.running == 2


def test_word_length_limit(dec):
    batch = WordBatch(dec, 1, max_word_len=2)
    assert batch.max_word_len == 2
    batch.advance([A])
    batch.advance([A])
    assert batch.finished.tolist() == [True] and batch.stopped.tolist() == [False]
    batch.max_word_len = 5
    batch.reset_row(0)
    assert batch.running == 1
    batch.set_prefix(0, [A, B, A, B])
    assert batch.lengths.tolist() == [4]
    batch.advance([A])
    assert batch.finished.tolist() == [True]
    batch.reset_row(-1)
    assert batch.lengths.tolist() == [0]


@needs_torch
def test_advance_last_reads_the_newest_column():
    dec = Decoder.default()
    batch = WordBatch(dec, 3)
    ids = torch.tensor([[1, 2, A], [1, 2, A], [1, 2, B]], dtype=torch.int64)
    assert batch.advance_last(ids) == 3
    assert batch.lengths.tolist() == [1, 1, 1]
    # A transposed (non-contiguous) tensor, and an int32 numpy array.
    ids_t = torch.tensor([[7, 7, 7], [SPACE, SPACE, A]], dtype=torch.int64).T
    assert not ids_t.is_contiguous()
    assert batch.advance_last(ids_t) == 1
    assert batch.stopped.tolist() == [True, True, False]
    assert batch.advance_last(np.array([[0, 0, SPACE]], np.int32).T.copy().T.T) == 0
    # Whatever the tokens, finished rows take PAD.
    assert batch.is_done()


@needs_torch
def test_finished_into_writes_in_place():
    dec = Decoder.default()
    batch = WordBatch(dec, 3)
    batch.advance([A, A, A])
    batch.advance([SPACE, A, SPACE])
    out = torch.zeros(3, dtype=torch.bool)
    assert batch.finished_into(out) is out
    assert out.tolist() == [True, False, True]
    arr = np.ones(3, np.bool_)
    assert batch.finished_into(arr) is arr and arr.tolist() == [True, False, True]
    wide = torch.zeros(6, dtype=torch.bool)
    batch.finished_into(wide[::2])  # strided
    assert wide.tolist() == [True, False, False, False, True, False]


# --- WordBatch: the mask on every kind of logits -------------------------------------------


def expected_mask(dec, batch, logits):
    allowed = np.stack([batch.allowed(r) for r in range(batch.batch_size)])
    finished = batch.finished
    out = logits.copy()
    v = dec.vocab_size
    for r in range(batch.batch_size):
        if not finished[r]:
            out[r, :v][~allowed[r]] = -np.inf
    return out


def stepped_batch(dec, rows):
    """A batch whose rows are in different states: empty, after 'a', after a lead byte,
    finished."""
    batch = WordBatch(dec, rows)
    steps = [[A] * rows, [SPACE if r % 4 == 3 else (0xC3 if r % 4 == 2 else A) for r in range(rows)]]
    for r in range(rows):
        if r % 4 == 0:
            steps[0][r] = A
    batch.advance(steps[0])
    batch.advance(steps[1])
    return batch


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64])
@pytest.mark.parametrize("rows", [1, 3, 32])
def test_apply_mask_numpy(dec, dtype, rows):
    batch = stepped_batch(dec, rows)
    rng = np.random.default_rng(rows)
    logits = rng.standard_normal((rows, 256)).astype(dtype)
    want = expected_mask(dec, batch, logits)
    batch.apply_mask(logits)
    assert np.array_equal(logits, want)
    assert np.isinf(logits).any()


@pytest.mark.parametrize("rows", [1, 3, 32])
def test_apply_mask_numpy_strided_rows_leave_padding_alone(dec, rows):
    batch = stepped_batch(dec, rows)
    big = np.full((rows, 256 + 9), 5.0, np.float32)
    logits = big[:, 4 : 4 + 256 + 3]  # wider than the vocabulary, offset, row stride 265
    want = expected_mask(dec, batch, logits)
    batch.apply_mask(logits)
    assert np.array_equal(logits, want)
    assert np.all(big[:, :4] == 5.0) and np.all(big[:, 4 + 256 :] == 5.0)


@needs_torch
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "float64"])
@pytest.mark.parametrize("rows", [1, 3, 32])
def test_apply_mask_torch(dec, dtype, rows):
    dt = getattr(torch, dtype)
    batch = stepped_batch(dec, rows)
    big = torch.randn(rows, 256 + 7).to(dt)
    logits = big[:, 2 : 2 + 256]  # a strided view: row stride 263, offset 2
    assert logits.stride() == (263, 1) and logits.storage_offset() == 2
    want = expected_mask(dec, batch, logits.float().numpy())
    pad_before = big[:, :2].clone(), big[:, 258:].clone()
    batch.apply_mask(logits)
    got = logits.float().numpy()
    assert np.array_equal(np.isinf(got), np.isinf(want))
    assert np.array_equal(got[np.isfinite(got)], want[np.isfinite(want)])
    assert torch.equal(big[:, :2], pad_before[0]) and torch.equal(big[:, 258:], pad_before[1])
    # Also through DLPack: a torch tensor wrapped so that only __dlpack__ is seen.
    batch2 = stepped_batch(dec, rows)
    t = torch.randn(rows, 256).to(dt)
    want2 = expected_mask(dec, batch2, t.float().numpy())
    batch2.apply_mask(DLPackOnly(t))
    assert np.array_equal(np.isinf(t.float().numpy()), np.isinf(want2))


class DLPackOnly:
    """Exposes an array through DLPack alone (the path every non-torch producer takes)."""

    def __init__(self, a, device=None):
        self.a = a
        self.device = device
        self.exported = 0

    def __dlpack__(self, **kwargs):
        self.exported += 1
        return self.a.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self.device if self.device is not None else self.a.__dlpack_device__()


# --- Bad input: a clear exception, nothing changed -----------------------------------------


def check_unchanged(batch, before, arrays=()):
    assert observe(batch) == before
    for a, copy in arrays:
        if hasattr(a, "numpy"):
            a = a.float().numpy()
            copy = copy.float().numpy()
        assert np.array_equal(a, copy)


def test_bad_logits_numpy(dec):
    batch = stepped_batch(dec, 3)
    before = observe(batch)
    cases = [
        (np.zeros((3, 256), np.int32), TypeError, "dtype"),
        (np.zeros((3 * 256,), np.float32), ValueError, "2 dimensions"),
        (np.zeros((4, 256), np.float32), ValueError, "rows"),
        (np.zeros((3, 255), np.float32), ValueError, "fewer than the vocabulary"),
        (np.zeros((256, 3), np.float32).T, ValueError, "not contiguous"),
        (np.zeros((3, 256), np.float32)[::-1], ValueError, "backwards"),
        ([[0.0] * 256] * 3, TypeError, "torch tensor or a numpy array"),
    ]
    for logits, exc, msg in cases:
        copy = np.array(logits, copy=True)
        with pytest.raises(exc, match=msg):
            batch.apply_mask(logits)
        check_unchanged(batch, before, [(np.asarray(logits), copy)])
    ro = np.zeros((3, 256), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        batch.apply_mask(ro)
    assert not np.isinf(ro).any()
    # Misaligned: float32 data at an odd address.
    raw = np.zeros(3 * 256 * 4 + 1, np.uint8)
    odd = raw[1:].view(np.float32).reshape(3, 256) if raw[1:].ctypes.data % 4 else None
    if odd is not None:
        with pytest.raises(ValueError, match="aligned"):
            batch.apply_mask(odd)
        assert not raw.any()
    check_unchanged(batch, before)


def test_non_cpu_dlpack_device_is_refused_before_export(dec):
    batch = WordBatch(dec, 3)
    fake = DLPackOnly(np.zeros((3, 256), np.float32), device=(2, 0))  # kDLCUDA
    with pytest.raises(ValueError, match="not the CPU"):
        batch.apply_mask(fake)
    assert fake.exported == 0
    assert not np.isinf(fake.a).any()


@needs_torch
def test_bad_logits_torch(dec):
    batch = stepped_batch(dec, 3)
    before = observe(batch)
    cases = [
        (torch.zeros(3, 256, dtype=torch.int32), TypeError, "dtype"),
        (torch.zeros(3, 256, dtype=torch.complex64), TypeError, "dtype"),
        (torch.zeros(3, 4, 256), ValueError, "2 dimensions"),
        (torch.zeros(2, 256), ValueError, "rows"),
        (torch.zeros(3, 100), ValueError, "fewer than the vocabulary"),  # a tensor too small
        (torch.zeros(256, 3).T, ValueError, "not contiguous"),
        (torch.zeros(1, 256).expand(3, 256), ValueError, "overlap"),
        (torch.zeros(3, 256, requires_grad=True), ValueError, "requires grad"),
        (torch.zeros(3, 256, device="meta"), ValueError, "device meta"),
    ]
    for logits, exc, msg in cases:
        copy = logits.detach().clone() if logits.device.type == "cpu" else None
        with pytest.raises(exc, match=msg):
            batch.apply_mask(logits)
        if copy is not None and not logits.is_complex():
            assert torch.equal(logits.detach(), copy)
        check_unchanged(batch, before)
    sparse = torch.zeros(3, 256).to_sparse()
    with pytest.raises(TypeError, match="layout"):
        batch.apply_mask(sparse)
    check_unchanged(batch, before)


@needs_torch
def test_bad_tokens_leave_the_batch_unchanged(dec):
    batch = stepped_batch(dec, 4)
    before = observe(batch)
    ok = [int(np.flatnonzero(batch.allowed(r))[0]) if batch.allowed(r).any() else 0 for r in range(4)]
    assert batch.allowed(1).any() and not batch.finished[1]
    bad = [
        (ok[:1] + [256] + ok[2:], ValueError, "outside the vocabulary"),
        (ok[:1] + [-1] + ok[2:], ValueError, "not a token id"),
        (ok[:1] + [2**40] + ok[2:], ValueError, "not a token id"),
        (ok[:1] + [CONT] + ok[2:], ValueError, "not allowed"),
        (ok[:3], ValueError, "4 rows"),
        (np.array(ok, np.float32), TypeError, "dtype"),
        (np.array([ok]), ValueError, "1 dimension"),
        (torch.tensor(ok[:1] + [300] + ok[2:]), ValueError, "outside the vocabulary"),
        ("abcd", TypeError, "sequence of ints"),
        (None, TypeError, "sequence of ints"),
    ]
    for tokens, exc, msg in bad:
        with pytest.raises(exc, match=msg):
            batch.advance(tokens)
        check_unchanged(batch, before)
    bad_ids = [
        (torch.tensor([A, A, A, A]), ValueError, "2 dimensions"),
        (torch.zeros(4, 0, dtype=torch.int64), ValueError, "no columns"),
        (torch.zeros(3, 2, dtype=torch.int64), ValueError, "rows"),
        (torch.zeros(4, 2), TypeError, "dtype"),
        (torch.tensor([[7, ok[0]], [7, 999], [7, ok[2]], [7, ok[3]]]), ValueError, "outside the vocabulary"),
        (torch.full((4, 2), -5, dtype=torch.int64), ValueError, "not a token id"),
        (torch.zeros(4, 2, dtype=torch.int64, device="meta"), ValueError, "device"),
        ([[A], [A], [A], [A]], TypeError, "torch tensor or a numpy array"),
    ]
    for ids, exc, msg in bad_ids:
        with pytest.raises(exc, match=msg):
            batch.advance_last(ids)
        check_unchanged(batch, before)
    for out, exc, msg in [
        (torch.zeros(4, dtype=torch.int64), TypeError, "dtype"),
        (torch.zeros(3, dtype=torch.bool), ValueError, "elements"),
        (torch.zeros(4, 1, dtype=torch.bool), ValueError, "1 dimension"),
    ]:
        with pytest.raises(exc, match=msg):
            batch.finished_into(out)
    ro = np.zeros(4, np.bool_)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        batch.finished_into(ro)
    assert not ro.any()
    check_unchanged(batch, before)


def test_bad_rows_and_limits(dec):
    with pytest.raises(ValueError, match="at least one row"):
        WordBatch(dec, 0)
    with pytest.raises(ValueError, match=">= 0"):
        WordBatch(dec, -3)
    with pytest.raises(TypeError, match="welt.Decoder"):
        WordBatch("not a decoder", 3)
    with pytest.raises(ValueError, match="at least 1"):
        WordBatch(dec, 2, max_word_len=0)
    batch = stepped_batch(dec, 2)
    before = observe(batch)
    with pytest.raises(ValueError, match="at least 1"):
        batch.max_word_len = 0
    with pytest.raises(IndexError):
        batch.reset_row(2)
    with pytest.raises(IndexError):
        batch.reset_row(-3)
    with pytest.raises(IndexError):
        batch.allowed(5)
    with pytest.raises(ValueError, match="completes the word"):
        batch.set_prefix(0, [A, SPACE])
    with pytest.raises(ValueError, match="not allowed"):
        batch.set_prefix(0, [CONT])
    with pytest.raises(ValueError, match="not a token id"):
        batch.set_prefix(0, [-1])
    with pytest.raises(ValueError, match="longer than|more than"):
        batch.set_prefix(0, [A] * 17)
    check_unchanged(batch, before)


def test_batches_share_a_decoder_and_keep_it_alive():
    batch = WordBatch(Decoder.default(max_word_len=3), 2)  # the decoder is only the batch's
    import gc

    gc.collect()
    batch.advance([A, A])
    assert batch.decoder.max_word_len == 3 and batch.max_word_len == 3


# --- Packaging ------------------------------------------------------------------------------


def test_import_welt_does_not_import_torch():
    code = "import sys, welt; assert 'torch' not in sys.modules and 'transformers' not in sys.modules, sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


def welt_bin():
    path = os.environ.get("WELT_BIN")
    if not path:
        if os.environ.get("WELT_REQUIRE_WELT_BIN") == "1":
            pytest.fail("WELT_REQUIRE_WELT_BIN=1 but WELT_BIN (the built `welt` binary) is not set")
        pytest.skip("WELT_BIN (the built `welt` binary) is not set")
    if not os.access(path, os.X_OK):
        pytest.fail(f"WELT_BIN={path} is not an executable")
    return path


def cli_blob(*args):
    out = subprocess.run([welt_bin(), "tables", *args, "--emit", "blob"], capture_output=True, check=True)
    return out.stdout


def test_default_blob_matches_the_cli():
    assert Decoder.default().to_bytes() == cli_blob()
    assert Decoder.default(max_word_len=7).to_bytes() == cli_blob("--max-word-len", "7")


@pytest.mark.parametrize("fixture", TOKENIZER_FIXTURES, ids=lambda p: p.stem)
def test_tokenizer_blob_matches_the_cli(fixture):
    assert Decoder.from_tokenizer(fixture).to_bytes() == cli_blob("--tokenizer", str(fixture))
    assert Decoder.from_tokenizer(
        fixture, layout="classes", max_word_len=9, forbid_leading_whitespace=True
    ).to_bytes() == cli_blob(
        "--tokenizer", str(fixture), "--layout", "classes", "--max-word-len", "9", "--forbid-leading-whitespace"
    )
