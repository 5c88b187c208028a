"""The frozen model's per-token tables against the graph, the reference path."""

import itertools
import math
import string
import threading
import warnings

import numpy as np
import pytest

from nerwin import inference
from nerwin.config import Config
from nerwin.data.features import FEATURES, TokenEncoder, encode_windows
from nerwin.data.vocab import Vocab
from nerwin.inference import CAPACITY, RESERVED_ROWS, keyable
from nerwin.model import WindowTagger, init_params
from nerwin.nn import gates
from nerwin.train import frequent_tokens

TEXT = [
    sentence.split()
    for sentence in (
        "Peter Blackburn flew to Brussels on Monday .",
        "The EU said on Thursday it disagreed with German advice .",
        "Peter",
        "",
        "Germany 's representative to the EU 's veterinary committee Werner Zwingmann said .",
    )
]
LABELS = ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]


def make_model(
    window: int = 2, activation: str = "tanh", dtype=np.float32, tokens: list[str] | None = None
) -> WindowTagger:
    """A model of random weights over ``tokens``' vocabularies, by default those of TEXT[:2]."""
    config = Config()
    config.model.hidden = 12
    config.model.activation = activation
    config.features.window = window
    config.features.suffix_dim = 3
    config.features.shape_dim = 2
    tokens = tokens or [token for sentence in TEXT[:2] for token in sentence]
    vocabs = {name: Vocab.build(map(FEATURES[name], tokens))[0] for name in FEATURES}
    rng = np.random.default_rng(3)
    params = init_params(config, vocabs, len(LABELS), rng, dtype=dtype)
    params = {name: p + rng.uniform(-0.3, 0.3, p.shape).astype(dtype) for name, p in params.items()}
    return WindowTagger(config, vocabs, LABELS, params, rng)


def graph_probabilities(model: WindowTagger, sentences):
    """(p_ent, p_tag) from the graph, the reference path, for ``sentences``."""
    windows = encode_windows(sentences, model.vocabs, model.config.features.window)
    return model.probabilities(model.feeds(windows, np.arange(len(windows))))


def graph_and_frozen(model: WindowTagger, sentences, capacity: int = CAPACITY):
    """(p_ent, p_tag) from the graph, then from the frozen model, for ``sentences``."""
    graph = graph_probabilities(model, sentences)
    model.freeze(capacity)
    return graph, model.token_probabilities(*model.encoder.sentence_ids(sentences))


@pytest.mark.parametrize("window", [0, 1, 2])
@pytest.mark.parametrize("activation", ["tanh", "relu", "hardtanh"])
def test_frozen_model_gives_the_graphs_probabilities(window, activation):
    model = make_model(window, activation, dtype=np.float64)
    (p_ent, p_tag), (fast_ent, fast_tag) = graph_and_frozen(model, TEXT)
    assert model.projections.held.size > 0  # the tables did the work
    np.testing.assert_allclose(fast_ent, p_ent, atol=1e-12)
    np.testing.assert_allclose(fast_tag, p_tag, atol=1e-12)


@pytest.mark.parametrize("block", [1, 3, 7])
def test_any_block_and_projection_step_give_the_graphs_probabilities(block, monkeypatch):
    monkeypatch.setattr(inference, "BLOCK", block)  # many blocks in each thread's half
    monkeypatch.setattr(inference, "PROJECT_STEP", block)  # and many steps of new tokens
    model = make_model(dtype=np.float64)
    expected = graph_probabilities(model, TEXT)
    model.freeze()
    got = model.token_probabilities(*model.encoder.sentence_ids(TEXT))
    for fast, graph in zip(got, expected, strict=True):
        np.testing.assert_allclose(fast, graph, atol=1e-12)


def test_frozen_float32_model_within_float32_rounding():
    model = make_model()
    (p_ent, p_tag), (fast_ent, fast_tag) = graph_and_frozen(model, TEXT)
    assert fast_tag.dtype == np.float32
    assert model.projections.centre_b.dtype == np.float32  # no float64 pass in projecting
    np.testing.assert_allclose(fast_ent, p_ent, atol=2e-6)
    np.testing.assert_allclose(fast_tag, p_tag, atol=2e-6)


def tag_probabilities_one_by_one(model: WindowTagger, sentences) -> np.ndarray:
    """p_tag of every token, ``sentences`` given to the model one at a time: shape (T, C)."""
    return np.concatenate(
        [
            model.token_probabilities(model.encoder.ids(sentence), np.array([len(sentence)]))[1]
            for sentence in sentences
        ]
    )


def test_a_small_memory_evicts_and_still_agrees():
    model = make_model(dtype=np.float64)
    sentences = TEXT * 3
    # Room for 20 tokens: every batch below brings new ones, so rows are reused.
    expected = graph_probabilities(model, sentences)[1]
    model.freeze(capacity=RESERVED_ROWS + 20)
    np.testing.assert_allclose(tag_probabilities_one_by_one(model, sentences), expected, atol=1e-12)
    projections = model.projections
    assert len(projections.held) + len(projections.free) == 20
    assert_finds_every_held_token(projections)


def test_remembered_tokens_are_found_at_their_rows():
    model = make_model().freeze()
    ids = model.encoder.ids(TEXT[4])
    rows = model.projections.token_rows(ids)
    found, known = model.projections._find(model.projections.keys(ids))
    assert known.all()
    np.testing.assert_array_equal(found, rows)


# Every key's own slot is the first, or (wrapping around to the first) the last.
@pytest.mark.parametrize("multiplier", [0, 2**64 - 1])
def test_keys_sharing_a_slot_still_find_their_rows(monkeypatch, multiplier):
    monkeypatch.setattr(inference, "FIBONACCI", np.uint64(multiplier))
    model = make_model(dtype=np.float64)
    sentences = TEXT * 2  # the second time, every token is remembered
    expected = graph_probabilities(model, sentences)[1]
    model.freeze(capacity=RESERVED_ROWS + 20)  # and rows are reused
    np.testing.assert_allclose(tag_probabilities_one_by_one(model, sentences), expected, atol=1e-12)
    assert_finds_every_held_token(model.projections)


def assert_finds_every_held_token(projections):
    """Each remembered key, once only, is found at its own row."""
    held_keys = projections.row_keys[projections.held]
    assert len(np.unique(held_keys)) == len(held_keys)
    rows, known = projections._find(held_keys)
    assert known.all()
    np.testing.assert_array_equal(rows, projections.held)


def test_rows_in_any_order_hold_their_tokens_projections():
    model = make_model(dtype=np.float64).freeze(capacity=RESERVED_ROWS + 20)
    projections = model.projections
    ids = model.encoder.ids(TEXT[0][:5])
    expected = projections.project(ids)
    projections.form.encode(expected)
    for rows in ([10, 11, 12, 13, 14], [15, 3, 20, 8, 4]):  # in place, then scattered
        projections._project_into(np.array(rows), ids)
        np.testing.assert_allclose(projections.rows[rows], expected, rtol=1e-15)


def test_a_reused_row_counts_only_its_new_tokens_uses():
    model = make_model().freeze(capacity=RESERVED_ROWS + 10)
    projections = model.projections
    for _ in range(3):  # the first sentence's tokens are read often
        projections.token_rows(model.encoder.ids(TEXT[0]))
    before = projections.row_keys[projections.held]
    ids = model.encoder.ids(TEXT[4])  # brings more new tokens than there are free rows
    rows = projections.token_rows(ids)
    keys = projections.keys(ids)
    new = ~np.isin(keys, before)
    new_rows, reads = np.unique(rows[new], return_counts=True)
    np.testing.assert_array_equal(projections.uses[new_rows], reads)


def test_a_batch_too_big_for_the_memory_falls_back_to_the_graph():
    model = make_model(dtype=np.float64)
    (_, p_tag), (_, fast_tag) = graph_and_frozen(model, TEXT, capacity=RESERVED_ROWS + 5)
    np.testing.assert_allclose(fast_tag, p_tag, atol=1e-12)
    assert model.projections.held.size == 0  # nothing was remembered


def test_training_unfreezes():
    model = make_model().freeze()
    windows = encode_windows(TEXT, model.vocabs, 2)
    model.loss(model.feeds(windows, np.arange(len(windows)), np.zeros(len(windows), int)))
    assert model.projections is None


def test_freeze_starts_with_the_frequent_training_tokens():
    model = make_model()
    model.frequent_tokens = frequent_tokens_of(TEXT[:2])  # all known: one key each
    model.freeze()
    assert len(model.projections.held) == len(set(model.frequent_tokens))
    rows_before = model.projections.held
    model.token_probabilities(model.encoder.ids(["Peter", "EU"]), np.array([2]))
    np.testing.assert_array_equal(model.projections.held, rows_before)  # both were there


def test_freeze_preloads_five_sixths_of_the_rows_never_the_reserved_ones():
    model = make_model(dtype=np.float64)
    model.frequent_tokens = frequent_tokens_of(TEXT)  # more than the small tables below hold
    sentence = TEXT[0]
    ids, lengths = model.encoder.ids(sentence), np.array([len(sentence)])
    expected = graph_probabilities(model, [sentence])[1]
    for capacity, kept in [(24, 20), (RESERVED_ROWS + 5, 5)]:
        model.freeze(capacity)
        assert len(model.projections.held) == kept  # 5/6 of 24 rows; all 5 free rows of 8
        if len(set(sentence)) <= capacity - RESERVED_ROWS:  # else the graph, by design
            assert model.projections.scores(ids, lengths) is not None
        np.testing.assert_allclose(model.token_probabilities(ids, lengths)[1], expected, atol=1e-12)


def frequent_tokens_of(sentences):
    from nerwin.data.conll import Sentence

    return frequent_tokens([Sentence(tuple(s), ("O",) * len(s), 1, 0) for s in sentences])


def test_frequent_tokens_most_common_first():
    assert frequent_tokens_of([["a", "b", "b"], ["c", "b", "a"]]) == ["b", "a", "c"]
    assert frequent_tokens_of([["a", "b", "b"]]) == ["b", "a"]


def test_frequent_tokens_survive_save_and_load(tmp_path):
    model = make_model()
    model.frequent_tokens = ["EU", "Peter"]
    model.save(tmp_path)
    loaded = WindowTagger.load(tmp_path)
    assert loaded.frequent_tokens == ["EU", "Peter"]
    assert loaded.projections is not None


def windows_near_the_bound(form, rng, width, count=20_000):
    """a: shape (count, width), every |a_j| <= M, most at +-M, and z = sum_j a_j mostly in
    [-12, 12] where the bound allows."""
    bound = form.bound
    a = rng.choice([-bound, bound], size=(count, width)) * rng.uniform(0.9, 1.0, (count, width))
    a[:, -1] = np.clip(rng.uniform(-12, 12, count) - a[:, :-1].sum(axis=1), -bound, bound)
    return rng.permuted(a, axis=1)  # the large partial products come at any position


@pytest.mark.parametrize("width", [1, 3, 5])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tanh_as_a_product_is_tanh_up_to_the_bound(dtype, width):
    form = inference.TanhProductForm(dtype, width=width)
    a = windows_near_the_bound(form, np.random.default_rng(0), width).astype(dtype)
    scales = np.array([form.scale] * (width - 1) + [form.last_scale], dtype=dtype)
    rows = (scales * a).reshape(-1, 1)  # one row per window position
    assert form.encode(rows).all()
    *before_last, last = rows.reshape(-1, width).T.copy()  # positions in order
    with np.errstate(over="ignore", under="ignore"):
        product = form.reduce.reduce(before_last, axis=0, initial=form.identity)
    h = 2 * form.finish(product, last) - 1
    z = [math.fsum(window) for window in a.astype(np.float64)]  # float64's own sum: 1e-13 off
    expected = np.tanh(z)
    np.testing.assert_allclose(h, expected, atol=8 * np.finfo(dtype).eps, rtol=0)


@pytest.mark.parametrize(
    "dtype, width, bound",
    [(np.float32, 5, 15.67), (np.float64, 5, 137.87), (np.float32, 1, 43.67)],
)
def test_tanh_as_a_product_flags_rows_beyond_the_bound(dtype, width, bound):
    form = inference.TanhProductForm(dtype, width=width)
    assert form.bound == pytest.approx(bound, abs=0.01)  # (2 L - S) / (2 K), at most L / 2
    a = np.array([[0.0, form.bound], [-1.0001 * form.bound, 1.0], [2.0, 1.0001 * form.bound]])
    for scale in (form.scale, form.last_scale):
        np.testing.assert_array_equal(form.encode(scale * a.astype(dtype)), [True, False, False])


def test_rows_beyond_the_bound_go_through_the_graph():
    model = make_model(dtype=np.float64)
    model.params["hidden.W"] *= 2_000.0  # pre-activations far beyond any trained model's
    (p_ent, p_tag), (fast_ent, fast_tag) = graph_and_frozen(model, TEXT)
    assert not model.projections.within_bound[model.projections.held].all()
    np.testing.assert_allclose(fast_ent, p_ent, atol=1e-12)
    np.testing.assert_allclose(fast_tag, p_tag, atol=1e-12)


def test_padding_rows_beyond_the_bound_send_the_batch_to_the_graph():
    model = make_model(window=1)
    model.params["word.table"][[Vocab.bos_id, Vocab.eos_id]] *= 300.0  # only <s> and </s>
    sentences = [["Peter"], ["EU"], ["Peter", "flew"]]
    (p_ent, p_tag), (fast_ent, fast_tag) = graph_and_frozen(model, sentences)
    assert not model.projections.within_bound[[Vocab.bos_id, Vocab.eos_id]].any()
    np.testing.assert_allclose(fast_ent, p_ent, atol=2e-6)
    np.testing.assert_allclose(fast_tag, p_tag, atol=2e-6)


def test_the_unknown_tokens_row_is_not_read_so_not_checked():
    model = make_model(window=1)
    for name in model.encoder.vocabs:  # a token <unk> in every feature: beyond the bound
        model.params[f"{name}.table"][Vocab.unk_id] *= 300.0
    (p_ent, p_tag), (fast_ent, fast_tag) = graph_and_frozen(model, TEXT[:2])
    projections = model.projections
    assert projections.scores(model.encoder.ids(TEXT[0]), np.array([len(TEXT[0])])) is not None
    np.testing.assert_allclose(fast_ent, p_ent, atol=2e-6)
    np.testing.assert_allclose(fast_tag, p_tag, atol=2e-6)


def test_threads_sharing_a_frozen_model_get_the_graphs_probabilities():
    letters = itertools.product(string.ascii_lowercase, repeat=3)  # digits would read as 0s
    words = ["".join(three) for three in itertools.islice(letters, 400)]
    model = make_model(dtype=np.float64, tokens=words[:300])  # and 100 unknown words
    model.encoder = TokenEncoder(model.vocabs, capacity=64)  # both memories restart, evict
    model.freeze(capacity=64)
    rng = np.random.default_rng(0)
    batches = [[list(rng.choice(words, size=6)) for _ in range(4)] for _ in range(300)]
    reference = make_model(dtype=np.float64, tokens=words[:300])
    expected = [graph_probabilities(reference, batch)[1] for batch in batches]
    got = {}

    def tag(indexes):
        for i in indexes:
            ids = model.encoder.ids([token for sentence in batches[i] for token in sentence])
            got[i] = model.token_probabilities(ids, np.array([6] * 4))[1]

    threads = [threading.Thread(target=tag, args=(range(j, 300, 2),)) for j in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(got) == list(range(300))  # neither thread stopped at an error
    for i, p_tag in got.items():
        np.testing.assert_allclose(p_tag, expected[i], atol=1e-12)


def test_saturated_windows_leave_float_range_without_a_warning():
    tables = [np.ones((10, 1), dtype=np.float32)]
    W = np.full((4, 5), -15.0, dtype=np.float32)  # every a_j = -15, within the bound; z = -75
    heads = np.ones((4, 2), dtype=np.float32), np.zeros(2, dtype=np.float32)
    projections = inference.Projections(
        tables, W, np.zeros(4, np.float32), heads, k=2, activation="tanh"
    )
    assert projections.within_bound.all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # in either thread: in_halves raises the other's error
        scores = projections.scores(np.arange(3, 9)[:, None], np.array([2, 4]))
    np.testing.assert_allclose(scores, -4.0)  # tanh(-75) = -1 on each of 4 units


@pytest.mark.parametrize("a, expected", [(40.0, 4.0), (-40.0, -4.0), (50.0, None)])
def test_a_window_of_one_position_saturates_within_the_bound_and_no_further(a, expected):
    tables = [np.ones((10, 1), dtype=np.float32)]
    W = np.full((4, 1), a, dtype=np.float32)  # every unit's z = a; q = e^(2a) is inf from 44.4
    heads = np.ones((4, 2), dtype=np.float32), np.zeros(2, dtype=np.float32)
    projections = inference.Projections(
        tables, W, np.zeros(4, np.float32), heads, k=0, activation="tanh"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = projections.scores(np.arange(3, 9)[:, None], np.array([2, 4]))
    if expected is None:  # beyond the bound: the batch goes to the graph
        assert scores is None
    else:
        np.testing.assert_allclose(scores, expected)  # tanh(+-40) = +-1 on each of 4 units


@pytest.mark.parametrize("gate", [gates.ReLU, gates.HardTanh])
def test_activation_apply_is_forward_in_place(gate):
    z = np.linspace(-50, 50, 20001, dtype=np.float32)
    expected = gate().forward(z.copy())
    out = gate.apply(z)
    assert out is z
    np.testing.assert_allclose(out, expected, atol=2e-7, rtol=0)


@pytest.mark.parametrize("capacity", [0, 4, 1 << 16])
def test_token_encoder_ids_whatever_it_remembers(capacity):
    vocabs = {name: Vocab.build(map(fn, TEXT[0]))[0] for name, fn in FEATURES.items()}
    encoder = TokenEncoder(vocabs, capacity)
    for sentence in TEXT + TEXT:
        ids = encoder.ids(sentence)
        expected = np.stack(
            [vocabs[name].encode(map(FEATURES[name], sentence)) for name in vocabs], axis=1
        ).reshape(len(sentence), len(vocabs))
        np.testing.assert_array_equal(ids, expected)
    assert len(encoder.rows) <= capacity


def test_token_encoder_computes_features_of_unseen_strings_only(monkeypatch):
    vocabs = {name: Vocab.build(map(fn, TEXT[0]))[0] for name, fn in FEATURES.items()}
    encoder = TokenEncoder(vocabs)
    computed = []
    feature_ids = encoder._feature_ids
    monkeypatch.setattr(
        encoder, "_feature_ids", lambda strings: computed.append(strings) or feature_ids(strings)
    )
    encoder.ids(["Peter", "flew", "Peter"])
    encoder.ids(["Peter", "to", "Brussels", "to", "flew"])
    assert computed == [["Peter", "flew"], ["to", "Brussels"]]


def test_tokens_keyed_by_one_int64_only_when_the_vocabularies_allow():
    tables = [np.empty((n, 0)) for n in (400_000, 8, 3_000, 300)]  # only their lengths count
    assert keyable(tables)
    assert not keyable([*tables, np.empty((10**7, 0))])
