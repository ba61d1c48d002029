"""``python -m welt.bench``: welt's hooks and word loop against WeLT's, inside HF ``generate``.

The byte decoder is a random-weight Llama of WeLT's size (hidden 256, intermediate 640, 4
layers, 4 heads, 4 KV heads, vocabulary 256), driven as WeLT drives it:
``generate(inputs_embeds=[latent, BOS embedding], attention_mask=None,
GenerationConfig(max_new_tokens, bos 2, pad 0, eos 3))``. As in
reference/bench_baseline.py (in the repository), the lm_head gets a bias of -1e4 on every byte that
could end a word, so every configuration generates exactly ``max_new_tokens`` tokens per row
and the times compare the same work.

Configurations, run interleaved (one call of each in turn, ``--calls`` times):
  reference  generate + UTF8ValidationLogitsProcessor + WordStoppingCriteria (WeLT today)
  welt       generate + WordConstraint's two hooks (the drop-in; Rust on CPU)
  welt_torch generate + WordConstraint(backend="torch") (the device path's torch ops)
  none       generate, no hooks
  words      welt.hf.generate_words (lean forward)
  words_model generate_words with the model's own forward (where the time of `words` goes)

Reported per batch size: median ms per call (one word per row), us per step, the hooks'
share of the step ((config - none) / config), and words per second relative to `none`; the
same from this thread's CPU time (``time.thread_time``), which other processes on a busy
machine disturb less than the wall clock (on CUDA the wall clock is the one that counts).
Plus the time spent inside each pair of hooks as generate calls them (``inside``: a timer
around each hook call, in extra interleaved calls, cold caches included; the difference of
medians above cannot resolve a share of 1 % on a busy machine, this can), and the direct cost
of each pair of hooks, called outside generate on generated prefixes.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time

import torch

STOP_PRONE = [*range(0x01, 0x21), 0x7F, 0xC2, 0xE1, 0xE2, 0xE3]  # what can end a word (+ EOS)
CONFIGS = ["reference", "welt", "welt_torch", "none", "words", "words_model"]


def _version(name):
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:
        return None


def build_model(a, device):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(a.seed)
    cfg = LlamaConfig(vocab_size=256, hidden_size=a.hidden, intermediate_size=a.intermediate,
                      num_hidden_layers=a.layers, num_attention_heads=a.heads, num_key_value_heads=a.heads,
                      max_position_embeddings=128, bos_token_id=2, eos_token_id=3, pad_token_id=0,
                      tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg)
    old = model.lm_head
    head = torch.nn.Linear(old.in_features, old.out_features, bias=True)
    with torch.no_grad():
        head.weight.copy_(old.weight)
        head.bias.zero_()
        if not a.allow_stop:
            head.bias[STOP_PRONE] = -1e4
    model.lm_head = head
    return model.to(device=device, dtype=getattr(torch, a.dtype)).eval()


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _reference_hooks():
    try:
        from utf8_tokenizer import UTF8Tokenizer
        from utf8_tokenizer.logits_processor import UTF8ValidationLogitsProcessor
        from words_segmentation.pretokenizer import WordStoppingCriteria
    except ImportError:
        return None
    return UTF8ValidationLogitsProcessor(), WordStoppingCriteria(UTF8Tokenizer())


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m welt.bench", description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch-sizes", default="1,3,32")
    ap.add_argument("--calls", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--intermediate", type=int, default=640)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0 = torch's default)")
    ap.add_argument("--allow-stop", action="store_true", help="no lm_head bias: words end where they end")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--direct-reps", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default="", help="also write the results as JSON to this file ('-' = stdout only)")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    from transformers import GenerationConfig

    import welt
    from welt.hf import WordConstraint, generate_words

    device = torch.device(a.device)
    batch_sizes = [int(x) for x in a.batch_sizes.split(",")]
    configs = [c for c in a.configs.split(",") if c]
    ref = _reference_hooks()
    if ref is None and "reference" in configs:
        print("# utf8-tokenizer / words-segmentation not installed: no 'reference' config", file=sys.stderr)
        configs.remove("reference")
    model = build_model(a, device)
    env = {"python": platform.python_version(), "torch": torch.__version__, "transformers": _version("transformers"),
           "welt": _version("welt"), "utf8-tokenizer": _version("utf8-tokenizer"),
           "words-segmentation": _version("words-segmentation"), "device": str(device),
           "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
           "threads": torch.get_num_threads(), "params": sum(p.numel() for p in model.parameters()), "args": vars(a)}
    if a.json != "-":
        print(json.dumps(env))
    gc = GenerationConfig(max_new_tokens=a.max_new_tokens, bos_token_id=2, pad_token_id=0, eos_token_id=3,
                          do_sample=False)
    welt_c = WordConstraint(welt.Decoder.default())
    torch_c = WordConstraint(welt.Decoder.default(), backend="torch")

    def run(cfg, embeds):
        if cfg == "words":
            return generate_words(model, embeds, welt_c, max_new_tokens=a.max_new_tokens).sequences
        if cfg == "words_model":
            return generate_words(model, embeds, welt_c, max_new_tokens=a.max_new_tokens, forward="model").sequences
        kw = {}
        if cfg == "reference":
            kw = {"logits_processor": [ref[0]], "stopping_criteria": [ref[1]]}
        elif cfg == "welt":
            kw = welt_c.generate_kwargs()
        elif cfg == "welt_torch":
            kw = torch_c.generate_kwargs()
        return model.generate(inputs_embeds=embeds, attention_mask=None, generation_config=gc, **kw)

    results = {}
    bos = model.get_input_embeddings()(torch.tensor([[2]], device=device)).detach()
    for B in batch_sizes:
        g = torch.Generator().manual_seed(1000 + B)
        lat = torch.randn(B, 1, a.hidden, generator=g).to(device=device, dtype=model.dtype)
        embeds = torch.cat([lat, bos.expand(B, -1, -1)], 1)
        times = {c: [] for c in configs}
        cpu = {c: [] for c in configs}  # this thread's CPU time: robust to other processes on a busy machine
        outs = {}
        with torch.inference_mode():
            for c in configs:
                for _ in range(a.warmup):
                    outs[c] = run(c, embeds)
            for _ in range(a.calls):
                for c in configs:
                    _sync(device)
                    t0, c0 = time.perf_counter(), time.thread_time()
                    outs[c] = run(c, embeds)
                    _sync(device)
                    times[c].append(time.perf_counter() - t0)
                    cpu[c].append(time.thread_time() - c0)
        res = {"configs": {}}
        none_ms = statistics.median(times["none"]) * 1e3 if "none" in times else None
        none_cpu = statistics.median(cpu["none"]) * 1e3 if "none" in cpu else None
        for c in configs:
            steps = outs[c].shape[1]
            med = statistics.median(times[c]) * 1e3
            med_cpu = statistics.median(cpu[c]) * 1e3
            r = {"median_ms_per_word": med, "steps": steps, "us_per_step": med * 1e3 / steps,
                 "median_cpu_ms_per_word": med_cpu}
            if none_ms is not None:
                r["words_per_s_vs_none"] = none_ms / med
                r["cpu_words_per_s_vs_none"] = none_cpu / med_cpu
                if c in ("reference", "welt", "welt_torch"):
                    r["hooks_share_of_step_pct"] = 100 * (med - none_ms) / med
                    r["hooks_us_per_step"] = (med - none_ms) * 1e3 / steps
                    r["cpu_hooks_share_of_step_pct"] = 100 * (med_cpu - none_cpu) / med_cpu
                    r["paired_hooks_us_per_step"] = statistics.median(
                        x - y for x, y in zip(times[c], times["none"])) * 1e6 / steps
            res["configs"][c] = r
        hooks = {}
        if "reference" in configs:
            hooks["reference"] = ref
        for c, wc in (("welt", welt_c), ("welt_torch", torch_c)):
            if c in configs:
                hooks[c] = (wc.logits_processor, wc.stopping_criteria)
        with torch.inference_mode():
            res["inside"] = bench_inside(a, model, embeds, gc, hooks, device) if hooks else {}
        res["same_lengths"] = len({outs[c].shape for c in configs}) == 1
        eq = {}
        for c in ("welt_torch", "words", "words_model"):
            if c in outs and "welt" in outs:
                eq[f"welt_eq_{c}"] = bool(torch.equal(outs["welt"], outs[c]))
        res["same_tokens"] = eq
        res["raw_times_s"] = times
        res["raw_cpu_s"] = cpu
        results[B] = res

    direct = bench_direct(a, device, ref, welt_c, torch_c, batch_sizes, configs) if a.direct_reps else {}
    out = {"env": env, "generate": results, "direct_us_per_step": direct}
    if a.json == "-":
        print(json.dumps(out, default=str))
        return out
    print_table(results, direct, configs)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1, default=str)
    return out


class _Timed:
    """A hook with a timer around it: the seconds generate spent inside it."""

    def __init__(self, inner):
        self.inner, self.seconds = inner, 0.0

    def __call__(self, input_ids, scores):  # no **kwargs: LogitsProcessorList would want them passed
        t0 = time.perf_counter()
        out = self.inner(input_ids, scores)
        self.seconds += time.perf_counter() - t0
        return out


def bench_inside(a, model, embeds, gc, hooks, device):
    """For each pair of hooks: the time inside them per step, and its share of the call's time,
    over ``a.calls`` interleaved generate calls."""
    timed = {c: (_Timed(p), _Timed(s)) for c, (p, s) in hooks.items()}
    wall = {c: 0.0 for c in hooks}
    steps = {c: 0 for c in hooks}
    for _ in range(a.calls):
        for c, (tp, ts) in timed.items():
            _sync(device)
            t0 = time.perf_counter()
            out = model.generate(inputs_embeds=embeds, attention_mask=None, generation_config=gc,
                                 logits_processor=[tp], stopping_criteria=[ts])
            _sync(device)
            wall[c] += time.perf_counter() - t0
            steps[c] += out.shape[1]
    res = {}
    for c, (tp, ts) in timed.items():
        inside = tp.seconds + ts.seconds
        res[c] = {"inside_hooks_us_per_step": inside * 1e6 / steps[c],
                  "inside_hooks_share_of_step_pct": 100 * inside / wall[c]}
    return res


def bench_direct(a, device, ref, welt_c, torch_c, batch_sizes, configs):
    """The hooks alone: one step = processor(ids[:, :k], scores) + criteria(ids[:, :k+1]),
    over every k of a generated word, timed outside generate (warm caches)."""
    out = {}
    from transformers import LogitsProcessorList, StoppingCriteriaList

    pairs = {k: c for k, c in (("welt", welt_c), ("welt_torch", torch_c)) if k in configs}
    for B in batch_sizes:
        g = torch.Generator().manual_seed(2000 + B)
        ids = torch.randint(0x61, 0x7B, (B, a.max_new_tokens), generator=g).to(device)
        scores = torch.randn(B, 256, device=device)
        res = {}
        hooks = {k: (c.logits_processor, c.stopping_criteria) for k, c in pairs.items()}
        if ref is not None and "reference" in configs:
            hooks["reference"] = ref
        for name, (p, s) in hooks.items():
            for via_lists in (False, True):
                pl, sl = (LogitsProcessorList([p]), StoppingCriteriaList([s])) if via_lists else (p, s)
                prefixes = [ids[:, :k] for k in range(a.max_new_tokens + 1)]

                def word():
                    for k in range(a.max_new_tokens):
                        pl(prefixes[k], scores)
                        sl(prefixes[k + 1], None)

                word()
                ts = []
                for _ in range(max(3, a.direct_reps // a.max_new_tokens)):
                    _sync(device)
                    t0 = time.perf_counter()
                    word()
                    _sync(device)
                    ts.append(time.perf_counter() - t0)
                res[name + ("_via_hf_lists" if via_lists else "")] = statistics.median(ts) * 1e6 / a.max_new_tokens
        out[B] = res
    return out


def print_table(results, direct, configs):
    print(f"\n{'B':>3} {'config':<12} {'ms/word':>9} {'steps':>5} {'us/step':>9} {'hooks %':>8} "
          f"{'hooks us/step':>13} {'words/s vs none':>15} | {'cpu ms/word':>11} {'hooks %':>8} {'vs none':>8}")
    for B, r in results.items():
        for c in configs:
            x = r["configs"][c]
            share = f"{x['hooks_share_of_step_pct']:.1f}" if "hooks_share_of_step_pct" in x else ""
            hus = f"{x['paired_hooks_us_per_step']:.1f}" if "paired_hooks_us_per_step" in x else ""
            rel = f"{x['words_per_s_vs_none']:.2f}x" if "words_per_s_vs_none" in x else ""
            cshare = f"{x['cpu_hooks_share_of_step_pct']:.1f}" if "cpu_hooks_share_of_step_pct" in x else ""
            crel = f"{x['cpu_words_per_s_vs_none']:.2f}x" if "cpu_words_per_s_vs_none" in x else ""
            print(f"{B:>3} {c:<12} {x['median_ms_per_word']:>9.3f} {x['steps']:>5} {x['us_per_step']:>9.1f} "
                  f"{share:>8} {hus:>13} {rel:>15} | {x['median_cpu_ms_per_word']:>11.3f} {cshare:>8} {crel:>8}")
        for c, x in r.get("inside", {}).items():
            print(f"    inside generate, {c}: {x['inside_hooks_us_per_step']:.1f} us per step in the hooks, "
                  f"{x['inside_hooks_share_of_step_pct']:.2f} % of the step")
        print(f"    same lengths: {r['same_lengths']}; same tokens: {r['same_tokens']}")
    if direct:
        print("\nhooks called directly (us per step: processor + criteria; _via_hf_lists: through "
              "LogitsProcessorList/StoppingCriteriaList as generate calls them)")
        for B, d in direct.items():
            print(f"  B={B:>2}: " + "  ".join(f"{k} {v:.1f}" for k, v in d.items()))


if __name__ == "__main__":
    main()
