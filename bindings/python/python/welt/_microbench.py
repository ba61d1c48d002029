"""The per-step cost of the core calls made straight from Python: ``advance_last`` +
``apply_mask`` + ``finished_into``, as a Hugging Face ``generate`` hook makes them, on torch CPU
tensors (and numpy arrays), at a few batch sizes. A measurement, not a test.

    python -m welt._microbench [--rows 1,3,32] [--steps 20000] [--numpy]

Each batch size runs ``--steps`` steps in a loop (restarting finished rows as they finish, so
the batch never empties), repeated ``--repeat`` times; the best repeat is reported in
microseconds per step, wall-clock and CPU time of this process (the machine is shared: the
best is the least disturbed, and CPU time leaves out the time other processes held the core)."""

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
    wall = cpu = float("inf")
    for _ in range(repeat):
        batch.reset()
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(steps):
            batch.apply_mask(logits)
            batch.advance_last(ids)
            batch.finished_into(out)
            if batch.is_done():
                batch.restart_finished()
        wall = min(wall, (time.perf_counter() - t0) / steps)
        cpu = min(cpu, (time.process_time() - c0) / steps)
    # The loop's own cost (is_done, restart_finished) is included: a few tens of nanoseconds.
    return wall * 1e6, cpu * 1e6


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
        wall, cpu = measure(rows, a.steps, a.repeat, a.numpy, a.dtype)
        print(
            f"{kind} {a.dtype} B={rows}: advance_last + apply_mask + finished_into = "
            f"{wall:.2f} us/step wall, {cpu:.2f} us/step CPU"
        )


if __name__ == "__main__":
    main()
