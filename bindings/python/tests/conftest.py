"""Shared fixtures for the welt.hf tests: WeLT's byte decoder (a seeded random-weight Llama of its
size), the reference hooks (the real UTF8ValidationLogitsProcessor and WordStoppingCriteria plus
a processor for welt's strict character boundary), WeLT's way of calling generate, and a guard
that fails on any host synchronization."""

from __future__ import annotations

import contextlib

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, LogitsProcessor  # noqa: E402

PAD, BOS, EOS = 0, 2, 3
HIDDEN = 256

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request):
    return torch.device(request.param)


def make_model(seed=0, device="cpu", dtype=torch.float32):
    """WeLT's byte decoder: Llama, hidden 256, intermediate 640, 4 layers, 4 heads, 4 KV heads,
    vocabulary 256 (about 3M parameters), random weights from `seed`."""
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=256, hidden_size=HIDDEN, intermediate_size=640, num_hidden_layers=4,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=128,
                      bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD, tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():
        # Random weights write long runs of one byte; a wider spread of the logits gives the
        # tests words that end early, multi-byte characters, and rows that hit the limit.
        model.lm_head.weight.mul_(12.0)
    return model.to(device=device, dtype=dtype).eval()


_MODELS = {}


def model_on(device, dtype=torch.float32):
    key = (str(device), dtype)
    if key not in _MODELS:
        _MODELS[key] = make_model(device=device, dtype=dtype)
    return _MODELS[key]


@pytest.fixture
def model(device):
    return model_on(device)


def embeds_for(model, B, seed):
    """WeLT's inputs_embeds: [latent, BOS embedding] per row."""
    g = torch.Generator().manual_seed(seed)
    dev = model.get_input_embeddings().weight.device
    lat = torch.randn(B, 1, HIDDEN, generator=g).to(device=dev, dtype=model.dtype)
    with torch.no_grad():
        bos = model.get_input_embeddings()(torch.tensor([[BOS]], device=dev))
    return torch.cat([lat, bos.expand(B, -1, -1)], 1)


def gen_config(max_new_tokens, **sampling):
    return GenerationConfig(max_new_tokens=max_new_tokens, bos_token_id=BOS, pad_token_id=PAD, eos_token_id=EOS,
                            do_sample=bool(sampling), **sampling)


def generate(model, embeds, max_new_tokens, processors=None, criteria=None, seed=None, **sampling):
    """WeLT's _generate_word_bytes call (attention_mask=None, inputs_embeds)."""
    if seed is not None:
        torch.manual_seed(seed)
    with torch.inference_mode():
        return model.generate(inputs_embeds=embeds, attention_mask=None,
                              generation_config=gen_config(max_new_tokens, **sampling),
                              logits_processor=processors, stopping_criteria=criteria)


class StrictBoundary(LogitsProcessor):
    """welt's one difference from UTF8ValidationLogitsProcessor: at a character boundary
    (nothing yet, or after a complete character) the bytes that can never start a character,
    80-C1 and F5-FF, are forbidden too (SEMANTICS.md)."""

    def __call__(self, input_ids, scores):
        for r, row in enumerate(input_ids.tolist()):
            if self.at_boundary(row):
                scores[r, 0x80:0xC2] = float("-inf")
                scores[r, 0xF5:0x100] = float("-inf")
        return scores

    @staticmethod
    def at_boundary(row):
        i = 0
        while i < len(row):
            b = row[i]
            n = 1 if b < 0x80 else 2 if b < 0xE0 else 3 if b < 0xF0 else 4
            if i + n > len(row):
                return False
            i += n
        return True


def reference_hooks():
    """The reference for parity: the real processor + the strict boundary, the real criteria."""
    from utf8_tokenizer import UTF8Tokenizer
    from utf8_tokenizer.logits_processor import UTF8ValidationLogitsProcessor
    from words_segmentation.pretokenizer import WordStoppingCriteria

    return [UTF8ValidationLogitsProcessor(), StrictBoundary()], [WordStoppingCriteria(UTF8Tokenizer())]


@pytest.fixture(scope="session")
def reference():
    pytest.importorskip("utf8_tokenizer")
    pytest.importorskip("words_segmentation")
    return reference_hooks


# ---- host synchronization guard ---------------------------------------------------------------

# Everything that reads a tensor's values on the host (each one waits for a device).
_SYNCING = ("item", "tolist", "cpu", "numpy", "__bool__", "__index__", "__int__", "__float__", "__complex__",
            "__array__", "__format__", "__repr__", "__str__", "nonzero")


class HostSync(AssertionError):
    pass


@contextlib.contextmanager
def no_host_sync(counter=None):
    """Inside: any call that reads a tensor's values back to the host raises HostSync (or, with
    `counter` = a list, is appended to it and allowed). On CPU this catches exactly what would
    synchronize with a device; on CUDA, torch's sync debug mode is set to "error" as well."""
    saved = {}

    def make(name, orig):
        def hook(self, *a, **k):
            if counter is None:
                raise HostSync(f"host synchronization: Tensor.{name}")
            counter.append(name)
            return orig(self, *a, **k)

        return hook

    for name in _SYNCING:
        orig = getattr(torch.Tensor, name, None)
        if orig is not None:
            saved[name] = orig
            setattr(torch.Tensor, name, make(name, orig))
    cuda = torch.cuda.is_available()
    if cuda:
        prev = torch.cuda.get_sync_debug_mode()
        torch.cuda.set_sync_debug_mode("error" if counter is None else "warn")
    try:
        yield
    finally:
        for name, orig in saved.items():
            setattr(torch.Tensor, name, orig)
        if cuda:
            torch.cuda.set_sync_debug_mode(prev)


class Guarded:
    """Wraps a hook so that its own calls run under no_host_sync (generate's syncs stay outside)."""

    def __init__(self, hook):
        self.hook = hook
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        with no_host_sync():
            return self.hook(*args, **kwargs)


class GuardedProcessor(Guarded, LogitsProcessor):
    def __call__(self, input_ids, scores):
        return Guarded.__call__(self, input_ids, scores)


class GuardedCriteria(Guarded, transformers.StoppingCriteria):
    def __call__(self, input_ids, scores, **kwargs):
        return Guarded.__call__(self, input_ids, scores, **kwargs)
