import itertools
import tracemalloc

import numpy as np
import pytest

from nerwin.data.conll import TagError, to_iob2
from nerwin.decode import (
    PROB_FLOOR,
    allowed_transitions,
    argmax_decode,
    decode,
    span_confidence,
    spans,
    viterbi_decode,
    viterbi_decode_batch,
)

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
LABELS_3_TYPES = ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-PER", "I-PER"]


def random_p_tag(rng: np.random.Generator, num_tokens: int, num_labels: int, alpha: float):
    """Random probability rows, shape (T, C); small alpha gives peaked rows."""
    return rng.dirichlet(np.full(num_labels, alpha), size=num_tokens)


def log_score(p_tag: np.ndarray, tags: list[str], labels: list[str]) -> float:
    log_p = np.log(np.clip(p_tag, PROB_FLOOR, None))
    return float(sum(log_p[t, labels.index(tag)] for t, tag in enumerate(tags)))


def is_valid_iob2(tags) -> bool:
    """The oracle: the CoNLL reader takes ``tags`` as IOB2 as they are."""
    try:
        return to_iob2(tags, "IOB2") == list(tags)
    except TagError:
        return False


def brute_force_best(p_tag: np.ndarray, labels: list[str]) -> list[str]:
    valid = (
        list(tags)
        for tags in itertools.product(labels, repeat=p_tag.shape[0])
        if is_valid_iob2(tags)
    )
    return max(valid, key=lambda tags: log_score(p_tag, tags, labels))


# --- the IOB2 oracle and the transition tables ------------------------------------------------


@pytest.mark.parametrize(
    ("tags", "valid"),
    [
        ([], True),
        (["O", "B-PER", "I-PER", "I-PER", "B-LOC", "O"], True),
        (["B-PER", "B-PER", "I-PER"], True),
        (["I-PER"], False),
        (["O", "I-PER"], False),
        (["B-LOC", "I-PER"], False),
        (["B-PER", "I-PER", "I-LOC"], False),
        (["PER"], False),
        (["B-"], False),
    ],
)
def test_the_iob2_oracle(tags, valid):
    assert is_valid_iob2(tags) is valid


def test_allowed_transitions_agree_with_is_valid_iob2():
    start_allowed, trans_allowed = allowed_transitions(LABELS_3_TYPES)
    assert start_allowed.shape == (7,) and trans_allowed.shape == (7, 7)
    for i, first in enumerate(LABELS_3_TYPES):
        assert start_allowed[i] == is_valid_iob2([first])
        opening = [f"B-{first[2:]}"] if first.startswith("I-") else []  # makes `first` valid
        for j, second in enumerate(LABELS_3_TYPES):
            assert trans_allowed[i, j] == is_valid_iob2([*opening, first, second]), (first, second)


def test_allowed_transitions_by_hand():
    start_allowed, trans_allowed = allowed_transitions(LABELS)
    assert start_allowed.tolist() == [True, True, False, True, False]
    # rows = previous O, B-PER, I-PER, B-LOC, I-LOC; columns = next in the same order
    assert trans_allowed.astype(int).tolist() == [
        [1, 1, 0, 1, 0],
        [1, 1, 1, 1, 0],
        [1, 1, 1, 1, 0],
        [1, 1, 0, 1, 1],
        [1, 1, 0, 1, 1],
    ]


# --- decoders ---------------------------------------------------------------------------------


def test_argmax_decode_reads_a_stray_i_as_b():
    # Raw argmax is O I-PER; the stray I-PER opens an entity, as conlleval reads it.
    p_tag = np.array([[0.6, 0.3, 0.1, 0.0, 0.0], [0.2, 0.1, 0.7, 0.0, 0.0]])
    assert argmax_decode(p_tag, LABELS) == ["O", "B-PER"]
    p_tag = np.array([[0.1, 0.8, 0.1, 0.0, 0.0], [0.2, 0.1, 0.7, 0.0, 0.0]])
    assert argmax_decode(p_tag, LABELS) == ["B-PER", "I-PER"]


def test_argmax_output_is_always_valid_iob2():
    rng = np.random.default_rng(1)
    for _ in range(200):
        p_tag = random_p_tag(rng, int(rng.integers(1, 30)), len(LABELS_3_TYPES), 0.3)
        assert is_valid_iob2(argmax_decode(p_tag, LABELS_3_TYPES))


def test_viterbi_repairs_o_then_i_into_b_i_when_that_scores_higher():
    # O O: 0.6 * 0.2 = 0.12 < B-PER I-PER: 0.3 * 0.7 = 0.21
    p_tag = np.array([[0.6, 0.3, 0.1, 0.0, 0.0], [0.2, 0.1, 0.7, 0.0, 0.0]])
    assert viterbi_decode(p_tag, LABELS) == ["B-PER", "I-PER"]


def test_viterbi_repairs_o_then_i_into_o_o_when_that_scores_higher():
    # O O: 0.7 * 0.4 = 0.28 > B-PER I-PER: 0.2 * 0.5 = 0.10
    p_tag = np.array([[0.7, 0.2, 0.1, 0.0, 0.0], [0.4, 0.1, 0.5, 0.0, 0.0]])
    assert argmax_decode(p_tag, LABELS) == ["O", "B-PER"]
    assert viterbi_decode(p_tag, LABELS) == ["O", "O"]


def test_viterbi_output_is_always_valid_iob2():
    rng = np.random.default_rng(0)
    for _ in range(500):
        num_tokens = int(rng.integers(1, 30))
        alpha = float(rng.choice([0.05, 0.3, 1.0]))
        p_tag = random_p_tag(rng, num_tokens, len(LABELS_3_TYPES), alpha)
        tags = viterbi_decode(p_tag, LABELS_3_TYPES)
        assert len(tags) == num_tokens
        assert is_valid_iob2(tags), tags


@pytest.mark.parametrize("num_tokens", [1, 2, 3, 4])
def test_viterbi_equals_brute_force_on_tiny_cases(num_tokens):
    rng = np.random.default_rng(num_tokens)
    for _ in range(40):
        p_tag = random_p_tag(rng, num_tokens, len(LABELS), alpha=0.5)
        assert viterbi_decode(p_tag, LABELS) == brute_force_best(p_tag, LABELS)


def test_viterbi_equals_argmax_when_argmax_is_valid():
    rng = np.random.default_rng(1)
    for _ in range(200):
        num_tokens = int(rng.integers(1, 15))
        valid_tags = viterbi_decode(random_p_tag(rng, num_tokens, len(LABELS), 0.2), LABELS)
        p_tag = random_p_tag(rng, num_tokens, len(LABELS), 1.0)
        p_tag[np.arange(num_tokens), [LABELS.index(tag) for tag in valid_tags]] += 2.0
        p_tag /= p_tag.sum(axis=1, keepdims=True)
        assert argmax_decode(p_tag, LABELS) == valid_tags
        assert viterbi_decode(p_tag, LABELS) == valid_tags


def test_viterbi_ties_go_to_lower_label_index():
    uniform = np.full((6, len(LABELS)), 1 / len(LABELS))
    assert viterbi_decode(uniform, LABELS) == ["O"] * 6


def test_viterbi_survives_zero_probabilities():
    p_tag = np.array([[0.0, 0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0, 0.0]])
    assert viterbi_decode(p_tag, LABELS) == ["B-PER", "I-PER"]


def test_empty_sentence():
    empty = np.zeros((0, len(LABELS)))
    assert viterbi_decode(empty, LABELS) == []
    assert argmax_decode(empty, LABELS) == []


def test_decode_dispatches_and_rejects_unknown_method():
    p_tag = np.array([[0.6, 0.3, 0.1, 0.0, 0.0], [0.2, 0.1, 0.7, 0.0, 0.0]])
    assert decode(p_tag, LABELS) == ["B-PER", "I-PER"]
    assert decode(p_tag, LABELS, method="argmax") == ["O", "B-PER"]
    with pytest.raises(ValueError, match="beam"):
        decode(p_tag, LABELS, method="beam")


def test_decoders_reject_wrong_number_of_columns():
    with pytest.raises(ValueError, match="shape"):
        viterbi_decode(np.ones((2, 3)) / 3, LABELS)


# --- spans ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ([], []),
        (["O", "O"], []),
        (["B-PER"], [("PER", 0, 1)]),
        (["B-PER", "I-PER", "O", "B-LOC"], [("PER", 0, 2), ("LOC", 3, 4)]),
        (["B-LOC", "B-LOC", "I-LOC"], [("LOC", 0, 1), ("LOC", 1, 3)]),
        (["O", "I-PER", "I-PER"], [("PER", 1, 3)]),  # stray I- after O opens a span
        (["B-LOC", "I-PER", "O"], [("LOC", 0, 1), ("PER", 1, 2)]),  # I- of another type too
        (["B-PER", "I-PER", "I-PER"], [("PER", 0, 3)]),  # span reaching the sentence end
    ],
)
def test_spans(tags, expected):
    assert spans(tags) == expected


@pytest.mark.parametrize("tag", ["PER", "B-", "S-PER", "E-PER"])
def test_spans_and_transitions_reject_non_iob2_tags(tag):
    with pytest.raises(ValueError, match=f"not an IOB2 tag: '{tag}'"):
        spans(["O", tag])
    with pytest.raises(ValueError, match=f"not an IOB2 tag: '{tag}'"):
        allowed_transitions(["O", tag])


# --- span_confidence --------------------------------------------------------------------------

CONFIDENCE_LABELS = ["O", "B-PER", "I-PER"]
CONFIDENCE_P_TAG = np.array(
    [
        [0.1, 0.8, 0.1],
        [0.2, 0.1, 0.7],
        [0.5, 0.2, 0.3],
    ]
)


@pytest.mark.parametrize(
    ("span", "expected"),
    [
        (("PER", 0, 2), 0.8 * 0.7 * (1 - 0.3)),
        (("PER", 0, 1), 0.8 * (1 - 0.7)),
        (("PER", 0, 3), 0.8 * 0.7 * 0.3),  # reaches the end: no closing factor
        (("PER", 2, 3), 0.2),
    ],
)
def test_span_confidence(span, expected):
    confidence = span_confidence(CONFIDENCE_P_TAG, CONFIDENCE_LABELS, span)
    assert isinstance(confidence, float)
    assert confidence == pytest.approx(expected)


def test_batched_viterbi_equals_viterbi_sentence_by_sentence():
    rng = np.random.default_rng(7)
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    lengths = [0, 1, 7, 3, 12, 0, 5]
    p_tag = rng.dirichlet(np.full(len(labels), 0.3), size=sum(lengths))
    p_tag[:4] = 0.2  # exact ties: both must break them the same way
    bounds = np.r_[0, np.cumsum(lengths)]
    pairs = zip(bounds[:-1], bounds[1:], strict=True)
    expected = [viterbi_decode(p_tag[a:b], labels) for a, b in pairs]
    assert viterbi_decode_batch(p_tag, bounds, labels) == expected


@pytest.mark.parametrize("peak", [0.3, 3.0])
def test_batched_viterbi_equals_viterbi_when_most_argmax_paths_are_valid(peak):
    """Peaked rows make most argmax paths valid (the shortcut), flat rows few of them."""
    rng = np.random.default_rng(11)
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
    lengths = rng.integers(0, 30, size=200)
    scores = rng.normal(size=(lengths.sum(), len(labels)))
    scores[:, 0] += peak  # "O" most of the time, as in text
    p_tag = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    bounds = np.r_[0, np.cumsum(lengths)]
    pairs = zip(bounds[:-1], bounds[1:], strict=True)
    expected = [viterbi_decode(p_tag[a:b], labels) for a, b in pairs]
    assert viterbi_decode_batch(p_tag, bounds, labels) == expected
    assert viterbi_decode_batch(p_tag[:0], np.zeros(3, dtype=np.int64), labels) == [[], []]


def test_batch_breaks_ties_of_log_p_as_viterbi_decode_does():
    low = np.float32(0.3)
    while np.log(low) != np.log(np.nextafter(low, np.float32(1))):
        low = np.nextafter(low, np.float32(1))
    high = np.nextafter(low, np.float32(1))  # a larger p with the same float32 log
    p_tag = np.array([[low, 0.05, 0.05, high, 1 - low - high - 0.1]], dtype=np.float32)
    assert viterbi_decode(p_tag, LABELS) == ["O"]  # the tie goes to the lower label index
    assert viterbi_decode_batch(p_tag, np.array([0, 1]), LABELS) == [["O"]]


def test_batched_viterbi_of_one_long_sentence_among_short_ones_pads_nothing():
    rng = np.random.default_rng(5)
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    lengths = [3] * 500 + [5_000]  # padded to the longest: 500 x 5,000 x 5 x 16 bytes
    p_tag = rng.dirichlet(np.full(len(labels), 0.3), size=sum(lengths)).astype(np.float32)
    p_tag[:, 2] += 1.0  # I-PER first: every sentence breaks IOB2, all go to the programme
    bounds = np.r_[0, np.cumsum(lengths)]
    tracemalloc.start()
    got = viterbi_decode_batch(p_tag, bounds, labels)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 20 * p_tag.nbytes  # of the order of N x C, not S x longest x C (200 MB)
    pairs = zip(bounds[:-1], bounds[1:], strict=True)
    assert got == [viterbi_decode(p_tag[a:b], labels) for a, b in pairs]


def test_batched_viterbi_decides_only_up_to_the_first_o_or_b_after_the_last_broken_tag(
    monkeypatch,
):
    from nerwin import decode as decode_module

    peaked = {tag: np.eye(len(LABELS))[LABELS.index(tag)] * 0.8 + 0.04 for tag in LABELS}
    tie = np.full(len(LABELS), 0.2)  # after the cut, ties still go to the lower label index
    suffix = [peaked["I-PER"], peaked["O"], tie, peaked["B-LOC"], peaked["I-LOC"], tie]
    cut = np.array([peaked["O"], peaked["I-PER"], *suffix])  # O -> I-PER breaks at 1; cut at 3
    to_the_end = np.array([peaked["I-LOC"], peaked["I-LOC"], peaked["I-LOC"]])  # never cut
    p_tag = np.concatenate([cut, to_the_end])
    bounds = np.array([0, len(cut), len(p_tag)])
    decided = []

    def recording(log_p, sentence_bounds, labels):
        decided.append(np.diff(sentence_bounds).tolist())
        return viterbi_rows(log_p, sentence_bounds, labels)

    viterbi_rows = decode_module._viterbi_rows
    monkeypatch.setattr(decode_module, "_viterbi_rows", recording)
    expected = [
        viterbi_decode(p_tag[a:b], LABELS) for a, b in zip(bounds[:-1], bounds[1:], strict=True)
    ]
    assert viterbi_decode_batch(p_tag, bounds, LABELS) == expected
    assert decided == [[3, 3]]  # rows 0-2 of the first sentence, all of the second
