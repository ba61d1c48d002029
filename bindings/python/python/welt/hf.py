"""welt for Hugging Face transformers: drop-in hooks for ``generate`` and a lean word loop.

``WordConstraint`` replaces WeLT's two per-token hooks (``UTF8ValidationLogitsProcessor`` and
``WordStoppingCriteria``) with one automaton shared by a logits processor and a stopping
criteria::

    constraint = WordConstraint()          # WeLT's byte decoder; reuse it for every word
    ids = bytes_decoder.generate(inputs_embeds=embeds, generation_config=config,
                                 logits_processor=[constraint.logits_processor],
                                 stopping_criteria=[constraint.stopping_criteria])

``generate_words`` (from ``welt._loop``) runs the same word without ``generate``'s machinery.

Two back ends, chosen per ``generate`` call from the device of ``input_ids``:

- CPU tensors: the Rust ``WordBatch`` masks the scores in place and advances from the newest
  column of ``input_ids`` (no copy, no allocation per step).
- any other device (CUDA, ...): the state stays on the device as a tensor, and each step is a
  few torch ops over the decoder's tables (uploaded once per device). welt adds no host
  synchronization there. ``backend="torch"`` forces this path on CPU tensors too.

Differences between the two on bad input, because the device path cannot raise without a
synchronization: on the CPU path a token id outside the vocabulary or one the mask forbids
raises ``ValueError`` and changes nothing; on the device path an id outside the vocabulary
ends its row, and a forbidden id (possible only if something after the processor changed the
token) puts the row in the dead state, whose mask forbids every token.
"""

from __future__ import annotations

import inspect

import numpy as np
import torch
from transformers import LogitsProcessor, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

__all__ = ["WordConstraint", "generate_words", "custom_generate", "WordsOutput", "LeanLlama"]

_NEG_INF = float("-inf")
_SCORE_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
_BACKENDS = ("auto", "torch", "cpu")
# A WordBatch limit that never binds: the word then ends by the rule, EOS, or generate's own
# max_new_tokens, exactly as with the reference hooks.
_NO_LIMIT = 2**31 - 1


def _upload(t: torch.Tensor, device: torch.device, non_blocking: bool) -> torch.Tensor:
    if device.type == "cpu":
        return t
    if non_blocking:
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


class _DeviceTables:
    """The decoder's tables, laid out for torch ops, on one device.

    Row r is decoder state r - 1; row 0 is a spare that no state reaches (it keeps every flat
    index of a clamped token non-negative), row ``fin`` is the finished state. Column j is
    token j - 1 for the clamped token range -1 ..= vocab: columns 0 and vocab + 1 stand for
    ids outside the vocabulary, which finish the row.
    """

    __slots__ = ("next", "forbid", "start", "fin", "width", "_forbid_gen", "_pad", "_vocab")

    def __init__(self, host: "_HostTables", device: torch.device, width: int):
        # Uploaded without a blocking copy (pinned memory), so that even the first call on a
        # CUDA device does not wait for the device.
        nb = device.type == "cuda"
        self.next = _upload(host.next_flat, device, nb)[1:]
        forbid = host.forbid
        if width > host.vocab:
            # Columns past the vocabulary (a padded lm_head) are left as they are, as the Rust
            # WordBatch leaves them; the word loop forbids them (forbid_gen).
            forbid = torch.cat([forbid, torch.zeros(forbid.shape[0], width - host.vocab, dtype=torch.bool)], dim=1)
        self.forbid = _upload(forbid, device, nb)
        self.start = torch.full((1,), host.start, dtype=torch.long, device=device)
        self.fin = host.fin
        self.width = width
        self._pad = host.pad
        self._vocab = host.vocab
        self._forbid_gen = None

    def forbid_gen(self) -> torch.Tensor:
        """``forbid`` for the word loop: a finished row keeps only PAD, so that picking a token
        (greedy or sampled) gives the PAD that ``generate`` writes for it."""
        if self._forbid_gen is None:
            f = self.forbid.clone()
            f[:, self._vocab :] = True
            f[self.fin] = True
            f[self.fin, self._pad] = False
            self._forbid_gen = f
        return self._forbid_gen


class _HostTables:
    def __init__(self, decoder):
        t = decoder.tables()
        nxt = np.asarray(t["next_state"]).astype(np.int64)
        stops = np.asarray(t["stops"], dtype=bool)
        allowed = np.asarray(t["allowed"], dtype=bool)
        s, v = nxt.shape
        if stops.shape != (s, v) or allowed.shape != (s, v) or v != decoder.vocab_size:
            raise ValueError(f"decoder tables have inconsistent shapes: {nxt.shape}, {stops.shape}, {allowed.shape}")
        fin = s + 1
        table = np.full((s + 2, v + 2), fin, dtype=np.int64)
        table[1 : s + 1, 1 : v + 1] = np.where(stops, fin, nxt + 1)
        forbid = np.ones((s + 2, v), dtype=bool)
        forbid[1 : s + 1] = ~allowed
        forbid[fin] = False  # a finished row is left unmasked, as the Rust WordBatch leaves it
        self.next_flat = torch.from_numpy(table.reshape(-1).copy())
        self.forbid = torch.from_numpy(forbid)
        self.vocab = v
        self.row = v + 2
        self.fin = fin
        self.start = int(decoder.start_state) + 1
        self.pad = int(decoder.pad)


def _fast_signature(proc):
    """A ``__call__`` instance attribute for `proc` that carries its signature.

    LogitsProcessorList runs ``inspect.signature(processor.__call__)`` on every step: about
    40 us for a bound method on this class of machine, more than welt's whole mask. An
    instance attribute ``__call__`` is found first by that attribute lookup and, carrying a
    ready ``__signature__``, answers in a few microseconds; calling the processor still goes
    through the class's ``__call__`` (Python looks special methods up on the type).
    """
    cls_call = type(proc).__call__

    def __call__(input_ids, scores):
        return cls_call(proc, input_ids, scores)

    __call__.__signature__ = inspect.signature(__call__)
    return __call__


class _Processor(LogitsProcessor):
    """The logits processor half of a WordConstraint (masks the scores in place)."""

    def __init__(self, constraint: "WordConstraint"):
        self._c = constraint
        self.__call__ = _fast_signature(self)

    def __call__(self, input_ids, scores):
        c = self._c
        if input_ids is c._ids:
            return c._mask(scores)
        return c._proc_slow(input_ids, scores)

    def __repr__(self):
        return f"WordConstraint.logits_processor({self._c!r})"


class _Criteria(StoppingCriteria):
    """The stopping criteria half of a WordConstraint (advances from the newest column)."""

    def __init__(self, constraint: "WordConstraint"):
        self._c = constraint

    def __call__(self, input_ids, scores=None, **kwargs):
        c = self._c
        try:
            shape = input_ids.shape
        except AttributeError:
            raise TypeError(f"welt: input_ids must be a torch.Tensor, not {type(input_ids).__name__}") from None
        if shape == c._expect:
            return c._advance(input_ids)
        return c._crit_slow(input_ids)

    def __repr__(self):
        return f"WordConstraint.stopping_criteria({self._c!r})"


class WordConstraint:
    """One word's worth of welt state, shared by ``.logits_processor`` and ``.stopping_criteria``.

    The drop-in for ``UTF8ValidationLogitsProcessor()`` + ``WordStoppingCriteria(tokenizer)``:
    pass both hooks to ``generate`` and reuse the object for every word. Each hook reads only
    the newest column of ``input_ids``; ``input_ids`` may start empty (``inputs_embeds``). A new
    ``generate`` call is recognised by itself (the processor sees an ``input_ids`` it has not
    seen the criteria return, or the criteria sees a length that does not continue the last
    step), and so is a different batch size; ``reset()`` forces a fresh word (needed only when
    a call's prompt is exactly the previous call's output, which looks like a continuation).

    Args:
        decoder: a ``welt.Decoder``; ``None`` = ``Decoder.default()`` (WeLT's UTF-8 bytes).
        max_word_len: a word length limit of the hooks' own (tokens); ``None`` = none, as the
            reference hooks (``generate``'s ``max_new_tokens`` is the limit).
        backend: ``"auto"`` (Rust on CPU tensors, torch ops elsewhere), ``"torch"`` (torch ops
            everywhere, e.g. to test the device path on CPU) or ``"cpu"`` (Rust only).
    """

    def __init__(self, decoder=None, *, max_word_len: int | None = None, backend: str = "auto"):
        if decoder is None:
            from . import Decoder

            decoder = Decoder.default()
        if backend not in _BACKENDS:
            raise ValueError(f"backend must be one of {_BACKENDS}, not {backend!r}")
        if max_word_len is not None:
            if isinstance(max_word_len, bool) or not isinstance(max_word_len, int):
                raise TypeError(f"max_word_len must be an int or None, not {type(max_word_len).__name__}")
            if not 1 <= max_word_len <= _NO_LIMIT:
                raise ValueError(f"max_word_len must be in 1..={_NO_LIMIT}, not {max_word_len}")
        self.decoder = decoder
        self.backend = backend
        self.max_word_len = max_word_len
        self._host = _HostTables(decoder)
        self._dev: dict = {}
        self.logits_processor = _Processor(self)
        self.stopping_criteria = _Criteria(self)
        self._clear()

    # ---- public ----------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        return self._host.vocab

    @property
    def batch_size(self) -> int | None:
        """Rows of the current word (None before the first call)."""
        return self._B

    @property
    def active_backend(self) -> str | None:
        """``"cpu"`` (Rust) or ``"torch"`` for the current call; None before the first."""
        return self._mode

    def generate_kwargs(self) -> dict:
        """``logits_processor`` and ``stopping_criteria`` for ``model.generate(**...)``."""
        return {
            "logits_processor": LogitsProcessorList([self.logits_processor]),
            "stopping_criteria": StoppingCriteriaList([self.stopping_criteria]),
        }

    def reset(self) -> None:
        """Forget the current word: the next hook call starts a new one."""
        self._clear()

    def finished(self) -> torch.Tensor:
        """Per row of the current word: finished (stopped, or at the limit). Reading it on a
        device tensor is the caller's synchronization, not the hooks'."""
        if self._mode is None:
            raise RuntimeError("no word yet: the hooks have not been called")
        if self._mode == "cpu":
            out = torch.empty(self._B, dtype=torch.bool)
            self._wb.finished_into(out)
            return out
        return self._state == self._tab.fin

    def __repr__(self):
        return (
            f"WordConstraint(vocab_size={self._host.vocab}, backend={self.backend!r}, "
            f"max_word_len={self.max_word_len}, batch_size={self._B}, active={self._mode})"
        )

    # ---- state -----------------------------------------------------------------------------

    def _clear(self):
        self._ids = None  # the input_ids the state has consumed (identity = continuation)
        self._n = -2  # its number of columns
        self._expect = None  # the shape the criteria's next call continues from
        self._B = None
        self._mode = None
        self._proc_drives = False  # processor alone: it advances too
        self._mask = self._no_mask
        self._advance = self._no_advance

    def _no_mask(self, scores):
        raise RuntimeError("welt: WordConstraint has no word (internal)")

    _no_advance = _no_mask

    def _tables_for(self, device: torch.device, width: int) -> _DeviceTables:
        key = (device, width)
        t = self._dev.get(key)
        if t is None:
            t = self._dev[key] = _DeviceTables(self._host, device, width)
        return t

    def _start(self, input_ids: torch.Tensor, width: int | None, n0: int, fresh: bool = False):
        """A new word for input_ids' batch. `fresh`: a new WordBatch rather than resetting the
        current one, so that the caller can restore the old word if what follows fails."""
        B = input_ids.shape[0]
        device = input_ids.device
        use_cpu = device.type == "cpu" and self.backend != "torch"
        if self.backend == "cpu" and device.type != "cpu":
            raise ValueError(f"welt: backend='cpu' needs CPU tensors, got input_ids on {device}")
        if use_cpu:
            wb = self._wb if (self._mode == "cpu" and self._B == B and not fresh) else None
            if wb is None:
                from . import WordBatch

                wb = WordBatch(self.decoder, B, max_word_len=self.max_word_len or _NO_LIMIT)
                self._done = torch.zeros(B, dtype=torch.bool)
            else:
                wb.reset()
            self._wb = wb
            self._mode = "cpu"
            self._mask = self._mask_cpu
            self._advance = self._advance_cpu
        else:
            tab = self._tables_for(device, width if width is not None else self._host.vocab)
            self._tab = tab
            self._next = tab.next
            self._forbid = tab.forbid
            self._row = self._host.row
            self._fin = tab.fin
            self._vmax = self._host.vocab
            self._state = tab.start.expand(B).clone()
            self._mode = "torch"
            self._mask = self._mask_torch
            self._advance = self._advance_torch
        self._B = B
        self._n0 = n0
        self._limit_at = None if self.max_word_len is None else n0 + self.max_word_len

    # ---- the two back ends (fast paths) ------------------------------------------------------

    def _mask_cpu(self, scores):
        self._wb.apply_mask(scores)
        return scores

    def _advance_cpu(self, input_ids):
        self._wb.advance_last(input_ids)
        self._wb.finished_into(self._done)
        self._ids = input_ids
        n = self._n = self._n + 1
        self._expect = (self._B, n + 1)
        return self._done

    def _mask_torch(self, scores):
        try:
            return scores.masked_fill_(self._forbid.index_select(0, self._state), _NEG_INF)
        except (RuntimeError, IndexError, TypeError, AttributeError) as e:
            raise self._scores_error(scores) from e

    def _advance_torch(self, input_ids):
        try:
            idx = torch.add(input_ids[:, -1].clamp(-1, self._vmax), self._state, alpha=self._row)
            state = self._next.index_select(0, idx)
        except (RuntimeError, IndexError, TypeError, AttributeError) as e:
            raise self._ids_error(input_ids, self._B) from e
        n = self._n + 1
        if n == self._limit_at:
            state.fill_(self._fin)
        self._state = state
        self._ids = input_ids
        self._n = n
        self._expect = (self._B, n + 1)
        return state == self._fin

    # ---- slow paths: validation, new calls ------------------------------------------------------

    def _proc_slow(self, input_ids, scores):
        ids_shape = self._check_ids(input_ids, min_cols=0)
        self._check_scores(scores, ids_shape[0], input_ids.device)
        B, n = ids_shape
        if self._proc_drives and self._B == B and n == self._n + 1:
            if self._mode == "torch" and self._tab.width != scores.shape[1]:
                raise ValueError(
                    f"welt: scores have {scores.shape[1]} columns, but this word started with {self._tab.width}"
                )
            # The processor alone (no criteria): it advances over the newest token itself, and
            # as nothing stops a row at the end of its word, a finished row starts a new word:
            # the mask is then welt's UTF-8 mask over the whole sequence.
            self._advance(input_ids)
            if self._mode == "cpu":
                self._wb.restart_finished()
            else:
                self._state = torch.where(self._state == self._fin, self._tab.start, self._state)
        elif self._mode is not None and self._B == B and n == self._n and n > 0:
            # The criteria consumed this length already; generate passed a copy of input_ids.
            self._ids = input_ids
        else:
            width = scores.shape[1]
            self._start(input_ids, width, n0=n)
            self._ids = input_ids
            self._n = n
            self._expect = (B, n + 1)
            self._proc_drives = True
        if self._mode == "torch" and self._tab.width != scores.shape[1]:
            raise ValueError(
                f"welt: scores have {scores.shape[1]} columns, but this word started with {self._tab.width}"
            )
        return self._mask(scores)

    def _crit_slow(self, input_ids):
        B, n = self._check_ids(input_ids, min_cols=1)
        if self._B is not None and n == self._n + 1 and B != self._B:
            raise ValueError(
                f"welt: the batch size changed mid-call: the word has {self._B} rows, input_ids has {B}"
            )
        # The criteria alone (no processor), or a new call it sees first: a new word whose
        # first token is the newest column.
        saved = self._snapshot()
        try:
            self._start(input_ids, None, n0=n - 1, fresh=True)
            self._n = n - 1
            self._proc_drives = False
            return self._advance(input_ids)
        except BaseException:
            self._restore(saved)
            raise

    def _snapshot(self):
        return dict(self.__dict__)

    def _restore(self, saved):
        self.__dict__.clear()
        self.__dict__.update(saved)

    def _check_ids(self, input_ids, min_cols):
        if not isinstance(input_ids, torch.Tensor):
            raise TypeError(f"welt: input_ids must be a torch.Tensor, not {type(input_ids).__name__}")
        if input_ids.dim() != 2:
            raise ValueError(f"welt: input_ids must be 2-D [batch, length], got shape {tuple(input_ids.shape)}")
        if input_ids.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"welt: input_ids must be int64 (or int32), not {input_ids.dtype}")
        B, n = input_ids.shape
        if B == 0:
            raise ValueError("welt: input_ids has no rows")
        if n < min_cols:
            raise ValueError("welt: the stopping criteria needs at least one generated token in input_ids")
        return B, n

    def _check_scores(self, scores, B, device):
        if not isinstance(scores, torch.Tensor):
            raise TypeError(f"welt: scores must be a torch.Tensor, not {type(scores).__name__}")
        if scores.dtype not in _SCORE_DTYPES:
            raise TypeError(f"welt: scores must be float32, float16, bfloat16 or float64, not {scores.dtype}")
        if scores.dim() != 2 or scores.shape[0] != B or scores.shape[1] < self._host.vocab:
            raise ValueError(
                f"welt: scores must be [batch={B}, >= vocab={self._host.vocab}], got {tuple(scores.shape)}"
            )
        if scores.device != device:
            raise ValueError(f"welt: scores are on {scores.device}, input_ids on {device}")

    def _scores_error(self, scores):
        try:
            B = self._state.shape[0]
            self._check_scores(scores, B, self._state.device)
        except (TypeError, ValueError) as e:
            return e
        return ValueError(f"welt: could not mask scores of shape {tuple(scores.shape)} on {scores.device}")

    def _ids_error(self, input_ids, B):
        try:
            self._check_ids(input_ids, 1)
            if input_ids.device != self._state.device:
                return ValueError(f"welt: input_ids moved from {self._state.device} to {input_ids.device} mid-call")
        except (TypeError, ValueError) as e:
            return e
        return ValueError("welt: a token id is outside the vocabulary")


from ._loop import LeanLlama, WordsOutput, custom_generate, generate_words  # noqa: E402  (welt.hf is their home)
