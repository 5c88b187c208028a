"""Token features and the window index matrices built from them.

Each feature maps a token to a string value (``normalise_word``,
``caps_class``, ...); a vocabulary turns values into ids; ``window_ids``
turns a corpus of ids into one row of 2k+1 ids per token, padded with
``<s>`` / ``</s>`` at sentence edges, and ``position_ids`` into one row per
window position.
"""

from __future__ import annotations

import re
import string
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat

import numpy as np

from nerwin.data.vocab import Vocab

_DIGIT = re.compile(r"\d")


def normalise_word(token: str) -> str:
    """The word feature: lowercased, every digit replaced by 0 ("Q3-2024" -> "q0-0000")."""
    return _DIGIT.sub("0", token.lower())


def caps_class(token: str) -> str:
    """Collobert's capitalisation feature: lower | title | upper | mixed | noletter."""
    if not any(c.isalpha() for c in token):
        return "noletter"
    if token.islower():
        return "lower"
    if token.isupper():
        return "upper"
    if token[0].isupper() and token[1:] == token[1:].lower():
        return "title"
    return "mixed"


def suffix(token: str) -> str:
    """The last three characters, lowercased and digit-normalised."""
    return normalise_word(token)[-3:]


_SHAPE_RUN = re.compile(r"(.)\1{2,}")
_ASCII_SHAPE = str.maketrans(
    {
        **dict.fromkeys(string.ascii_uppercase, "X"),
        **dict.fromkeys(string.ascii_lowercase, "x"),
        **dict.fromkeys(string.digits, "d"),
    }
)


def word_shape(token: str) -> str:
    """X for upper, x for lower, d for digit, other characters kept; runs cut at 2.

    >>> word_shape("McDonald's"), word_shape("1996-08-22"), word_shape("U.S.")
    ("XxXxx'x", 'dd-dd-dd', 'X.X.')
    """
    if token.isascii():
        mapped = token.translate(_ASCII_SHAPE)  # the common case, without a loop per character
    else:
        mapped = "".join(
            "X" if c.isupper() else "x" if c.isalpha() else "d" if c.isdigit() else c for c in token
        )
    return _SHAPE_RUN.sub(lambda run: run.group(1) * 2, mapped)


FEATURES = {"word": normalise_word, "caps": caps_class, "suffix": suffix, "shape": word_shape}


def window_ids(flat_ids: np.ndarray, lengths: np.ndarray, k: int) -> np.ndarray:
    """One row of 2k+1 ids per token, padded with ``<s>`` and ``</s>`` ids at sentence edges.

    flat_ids: shape (T,) the ids of every token, sentences one after another.
    lengths: shape (S,) tokens per sentence, summing to T.
    Returns shape (T, 2k+1). Built by indexing a padded copy, no loop per token:

    >>> window_ids(np.array([7, 8, 9, 5]), np.array([3, 1]), 1)
    array([[1, 7, 8],
           [7, 8, 9],
           [8, 9, 2],
           [1, 5, 2]], dtype=int32)
    """
    padded, centres = _padded(flat_ids, lengths, k, np.int32)
    return padded[centres[:, None] + np.arange(-k, k + 1)]


def position_ids(flat_ids: np.ndarray, lengths: np.ndarray, k: int) -> np.ndarray:
    """``window_ids`` transposed, in flat_ids' dtype: shape (2k+1, T), row j the ids at
    position j of every window, each row one gather from the padded copy.

    >>> position_ids(np.array([7, 8, 9, 5]), np.array([3, 1]), 1)
    array([[1, 7, 8, 1],
           [7, 8, 9, 5],
           [8, 9, 2, 2]])
    """
    padded, centres = _padded(flat_ids, lengths, k, flat_ids.dtype)
    by_position = np.empty((2 * k + 1, len(centres)), dtype=padded.dtype)
    for position, offset in enumerate(range(-k, k + 1)):
        # take writes straight into `out` with mode="clip" (every index is valid), else via a copy
        np.take(padded, centres + offset, out=by_position[position], mode="clip")
    return by_position


def _padded(
    flat_ids: np.ndarray, lengths: np.ndarray, k: int, dtype: np.dtype
) -> tuple[np.ndarray, np.ndarray]:
    """(The ids with k ``<s>`` before and k ``</s>`` after each sentence: shape (T + 2kS,);
    where each token's id went in it: shape (T,))."""
    lengths = np.asarray(lengths, dtype=np.int64)
    padded_lengths = lengths + 2 * k
    ends = np.cumsum(padded_lengths)  # (S,)
    starts = ends - padded_lengths
    padded = np.full(int(padded_lengths.sum()), Vocab.eos_id, dtype=dtype)
    is_token = np.ones(len(padded), dtype=bool)
    for i in range(k):
        padded[starts + i] = Vocab.bos_id
        is_token[starts + i] = is_token[ends - 1 - i] = False
    centres = np.flatnonzero(is_token)  # (T,)
    padded[centres] = flat_ids
    return padded, centres


@dataclass
class Windows:
    """A corpus as windows: ``ids[feature]`` has shape (T, K), one row per token.

    sentence_starts: shape (S + 1,), the tokens of sentence i are rows
    [sentence_starts[i], sentence_starts[i + 1]).
    """

    ids: dict[str, np.ndarray]
    sentence_starts: np.ndarray

    def __len__(self) -> int:
        return int(self.sentence_starts[-1])


class TokenEncoder:
    """Token strings -> the id of each feature, remembering the ids of the strings it has seen.

    Text repeats its words, so a stream of batches mostly looks up strings
    whose features were computed before. At most ``capacity`` strings are
    remembered; past that the memory starts afresh, so it stays bounded on
    any stream.
    """

    def __init__(self, vocabs: dict[str, Vocab], capacity: int = 1 << 16):
        self.vocabs = vocabs
        self.capacity = capacity
        self.rows: dict[str, int] = {}  # string -> its row of self.table
        self.table = np.empty((capacity, len(vocabs)), dtype=np.int32)  # (capacity, F)
        self.lock = threading.Lock()

    def ids(self, tokens: Sequence[str]) -> np.ndarray:
        """tokens: T strings -> shape (T, F), one column per feature in ``vocabs`` order."""
        with self.lock:  # threads that share the encoder take turns with its memory
            if not self.rows:  # nothing to look up: every string is new
                return self._ids_afresh(tokens)
            index = _rows_of(self.rows, tokens)  # (T,) -1 for a string not seen yet
            missing = np.flatnonzero(index < 0)
            if len(missing):  # once a stream is under way, most batches have none
                unseen = [tokens[i] for i in missing.tolist()]
                new = list(dict.fromkeys(unseen))
                if len(self.rows) + len(new) > self.capacity:
                    return self._ids_afresh(tokens)
                self._remember(new)
                index[missing] = _rows_of(self.rows, unseen)
            return self.table[index]

    def _ids_afresh(self, tokens: Sequence[str]) -> np.ndarray:
        """``ids`` with the memory started afresh on this batch: it was empty, or had no room."""
        self.rows.clear()
        distinct = list(dict.fromkeys(tokens))
        if len(distinct) > self.capacity:  # too many to remember: this batch on its own
            rows = dict(zip(distinct, range(len(distinct)), strict=True))
            return self._feature_ids(distinct)[_rows_of(rows, tokens)]
        self._remember(distinct)
        return self.table[_rows_of(self.rows, tokens)]

    def _remember(self, strings: list[str]) -> None:
        """Compute the ids of distinct new ``strings`` into the next free rows of the table."""
        start = len(self.rows)
        self.table[start : start + len(strings)] = self._feature_ids(strings)
        self.rows.update(zip(strings, range(start, start + len(strings)), strict=True))

    def _feature_ids(self, strings: list[str]) -> np.ndarray:
        """strings: U distinct strings -> shape (U, F), every feature computed and looked up."""
        columns = [vocab.encode(map(FEATURES[n], strings)) for n, vocab in self.vocabs.items()]
        return np.stack(columns, axis=1) if columns else np.zeros((len(strings), 0), np.int32)

    def sentence_ids(self, sentences: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        """Token lists -> (``ids`` of their tokens one after another: shape (T, F); tokens
        per sentence: shape (S,))."""
        lengths = np.array([len(tokens) for tokens in sentences], dtype=np.int64)
        return self.ids([token for tokens in sentences for token in tokens]), lengths

    def windows(self, sentences: Sequence[Sequence[str]], k: int) -> Windows:
        """Token lists -> ``Windows`` of half-width k for every feature."""
        ids, lengths = self.sentence_ids(sentences)
        return windows_of(ids, list(self.vocabs), lengths, k)


def _rows_of(rows: dict[str, int], tokens: Sequence[str]) -> np.ndarray:
    """The row of each token in ``rows``, -1 where it has none: shape (T,)."""
    return np.fromiter(map(rows.get, tokens, repeat(-1)), dtype=np.int64, count=len(tokens))


def windows_of(ids: np.ndarray, names: list[str], lengths: np.ndarray, k: int) -> Windows:
    """Token ids -> ``Windows``: ids of shape (T, F), column f the feature ``names[f]``."""
    windows = {name: window_ids(ids[:, column], lengths, k) for column, name in enumerate(names)}
    return Windows(windows, np.r_[0, np.cumsum(lengths)])


def encode_windows(sentences: Sequence[Sequence[str]], vocabs: dict[str, Vocab], k: int) -> Windows:
    """Token lists -> ``Windows`` for every feature that has a vocabulary.

    Each feature is computed once per distinct token string and then
    gathered, so a corpus costs one dict lookup per token, not one per
    token per feature. For a stream of batches, keep a ``TokenEncoder``.
    """
    return TokenEncoder(vocabs, capacity=0).windows(sentences, k)
