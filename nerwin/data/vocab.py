"""Vocabularies: feature values <-> row ids, in first-seen order (never from a set)."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

UNK, BOS, EOS = "<unk>", "<s>", "</s>"
RESERVED = (UNK, BOS, EOS)


class Vocab:
    """Strings to ids and back. Ids 0, 1, 2 are always ``<unk>``, ``<s>``, ``</s>``."""

    def __init__(self, itos: Sequence[str]):
        if tuple(itos[: len(RESERVED)]) != RESERVED:
            raise ValueError(f"a vocabulary must start with {RESERVED}")
        self.itos = list(itos)
        self.stoi = {value: index for index, value in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError("a vocabulary must list each value once")

    unk_id, bos_id, eos_id = 0, 1, 2

    @classmethod
    def build(cls, values: Iterable[str], min_count: int = 1) -> tuple[Vocab, np.ndarray]:
        """Vocabulary of the values seen at least ``min_count`` times, and each id's count.

        Returns (vocab, counts) with counts: shape (V,) int64, 0 for the reserved ids.
        """
        counts = Counter(values)  # a dict: keeps first-seen order
        kept = [v for v, n in counts.items() if n >= min_count and v not in RESERVED]
        vocab = cls([*RESERVED, *kept])
        return vocab, np.array([0, 0, 0] + [counts[v] for v in kept], dtype=np.int64)

    def extend(self, values: Iterable[str]) -> Vocab:
        """A new vocabulary with the values not yet present appended, in order."""
        new = [v for v in dict.fromkeys(values) if v not in self.stoi]
        return Vocab(self.itos + new)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, values: Iterable[str]) -> np.ndarray:
        """values -> ids: shape (T,) int32; unknown values map to ``<unk>``."""
        # map() with a repeated default calls dict.get with no Python frame per value.
        return np.fromiter(map(self.stoi.get, values, itertools.repeat(0)), dtype=np.int32)
