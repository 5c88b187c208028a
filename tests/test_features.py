import numpy as np
import pytest

from nerwin.data.features import (
    caps_class,
    encode_windows,
    normalise_word,
    position_ids,
    suffix,
    window_ids,
    word_shape,
)
from nerwin.data.vocab import Vocab


def test_window_ids_on_three_tokens():
    # "Peter visits Brussels" with ids 7 8 9, k = 2: <s>=1 pads the left, </s>=2 the right
    windows = window_ids(np.array([7, 8, 9]), np.array([3]), 2)
    assert windows.tolist() == [[1, 1, 7, 8, 9], [1, 7, 8, 9, 2], [7, 8, 9, 2, 2]]


def test_windows_never_cross_sentences():
    windows = window_ids(np.array([5, 6, 7]), np.array([1, 0, 2]), 1)  # an empty one between
    assert windows.tolist() == [[1, 5, 2], [1, 6, 7], [6, 7, 2]]


def test_window_ids_with_k_zero_is_the_token():
    assert window_ids(np.array([4, 3]), np.array([2]), 0).tolist() == [[4], [3]]


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_position_ids_are_window_ids_transposed(k):
    rng = np.random.default_rng(k)
    lengths = rng.integers(0, 6, size=40)  # empty sentences and shorter ones than the window
    flat_ids = rng.integers(3, 100, size=lengths.sum())
    by_position = position_ids(flat_ids, lengths, k)
    assert by_position.dtype == flat_ids.dtype
    np.testing.assert_array_equal(by_position, window_ids(flat_ids, lengths, k).T)


def test_vocab_first_seen_order_and_reserved_ids():
    vocab, counts = Vocab.build(["b", "a", "b", "c"])
    assert vocab.itos == ["<unk>", "<s>", "</s>", "b", "a", "c"]
    assert counts.tolist() == [0, 0, 0, 2, 1, 1]
    assert vocab.encode(["a", "zzz"]).tolist() == [4, Vocab.unk_id]


def test_vocab_min_count():
    vocab, _ = Vocab.build(["b", "a", "b"], min_count=2)
    assert vocab.itos[3:] == ["b"]


def test_token_features():
    assert normalise_word("Q3-2024") == "q0-0000"
    assert [caps_class(t) for t in ["the", "Peter", "EU", "McDonald", "1996", "iPhone"]] == [
        "lower",
        "title",
        "upper",
        "mixed",
        "noletter",
        "mixed",
    ]
    assert suffix("Running") == "ing"
    assert word_shape("Blackburn") == "Xxx"


def test_encode_windows_offsets():
    vocabs = {"word": Vocab.build(["a", "b"])[0]}
    windows = encode_windows([["a", "b"], ["b"]], vocabs, 1)
    assert windows.sentence_starts.tolist() == [0, 2, 3]
    assert windows.ids["word"].tolist() == [[1, 3, 4], [3, 4, 2], [1, 4, 2]]
