"""The per-step cost of the core calls made straight from Python: ``advance_last`` +
``apply_mask`` + ``finished_into``, as a Hugging Face ``generate`` hook makes them, on torch CPU
tensors (and numpy arrays), at a few batch sizes. A measurement, not a test.

    python -m welt._microbench [--rows 1,3,32] [--steps 20000] [--numpy]

Each batch size runs ``--steps`` steps in a loop (restarting finished rows as they finish, so
the batch never empties), repeated ``--repeat`` times; the best repeat is reported in
microseconds per step (the machine is shared: the best is the least disturbed)."""

import argparse
import time

import numpy as np

from . import Decoder, WordBatch


def measure(rows, steps, repeat, use_numpy, dtype):
    dec = Decoder.default()
    batch = WordBatch(dec, rows)
    v = dec.vocab_size
    if use_numpy:
        logits = np.zeros((rows, v), dtype)
        ids = np.full((rows, 4), ord("a"), np.int64)
        out = np.zeros(rows, np.bool_)
    else:
        import torch

        logits = torch.zeros(rows, v, dtype=getattr(torch, dtype))
        ids = torch.full((rows, 4), ord("a"), dtype=torch.int64)
        out = torch.zeros(rows, dtype=torch.bool)
    best = float("inf")
    for _ in range(repeat):
        batch.reset()
        t0 = time.perf_counter()
        for _ in range(steps):
            batch.apply_mask(logits)
            batch.advance_last(ids)
            batch.finished_into(out)
            if batch.is_done():
                batch.restart_finished()
        best = min(best, (time.perf_counter() - t0) / steps)
    # The loop's own cost (is_done) is included; it is a few tens of nanoseconds.
    return best * 1e6


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m welt._microbench", description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", default="1,3,32")
    p.add_argument("--steps", type=int, default=20000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--numpy", action="store_true", help="numpy arrays instead of torch tensors")
    p.add_argument("--dtype", default="float32")
    a = p.parse_args(argv)
    kind = "numpy" if a.numpy else "torch"
    for rows in [int(r) for r in a.rows.split(",")]:
        us = measure(rows, a.steps, a.repeat, a.numpy, a.dtype)
        print(f"{kind} {a.dtype} B={rows}: advance_last + apply_mask + finished_into = {us:.2f} us/step")


if __name__ == "__main__":
    main()
