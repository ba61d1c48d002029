"""welt: WeLT's per-word byte decoding constraints as one generated automaton.

``Decoder`` holds the tables (``Decoder.default()`` for WeLT's UTF-8 byte tokenizer,
``Decoder.from_tokenizer(...)`` for a Hugging Face tokenizer); ``WordBatch`` generates B words
side by side on the CPU: ``apply_mask`` masks logits in place, ``advance``/``advance_last``
takes one token per row, ``finished_into`` writes which rows are done.

Importing welt imports numpy only; torch and transformers are needed by ``welt.hf``.
"""

from ._welt import DEAD, Decoder, WordBatch

__all__ = ["DEAD", "Decoder", "WordBatch"]
