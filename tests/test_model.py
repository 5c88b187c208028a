import json

import numpy as np
import pytest

from nerwin.config import Config
from nerwin.data.features import FEATURES, encode_windows
from nerwin.data.vocab import Vocab
from nerwin.errors import ModelError
from nerwin.model import WindowTagger, check_gradients, gradcheck_small_model, init_params
from nerwin.nn.gradcheck import STEP, TOLERANCE

WORDS = [
    "Peter",
    "Blackburn",
    "flew",
    "to",
    "Brussels",
    "on",
    "Monday",
    "with",
    "the",
    "EU",
    "team",
    ".",
]
LABELS = ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
TAGS = [5, 6, 0, 0, 1, 0, 0, 0, 0, 3, 0, 0]


def small_config(**model) -> Config:
    config = Config()
    config.model.hidden = 16
    config.features.suffix_dim = 3
    for key, value in model.items():
        setattr(config.model, key, value)
    return config


def make_model(config: Config, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    vocabs = {name: Vocab.build(map(fn, WORDS))[0] for name, fn in FEATURES.items()}
    vocabs = {name: vocabs[name] for name in ("word", "caps", "suffix")}
    params = init_params(config, vocabs, len(LABELS), rng, dtype=dtype)
    model = WindowTagger(config, vocabs, LABELS, params, rng)
    windows = encode_windows([WORDS[:6], WORDS[6:]], vocabs, config.features.window)
    feeds = model.feeds(windows, np.arange(len(windows)), np.array(TAGS))
    return model, feeds


@pytest.mark.parametrize("activation", ["tanh", "relu", "hardtanh"])
def test_whole_graph_gradient(activation):
    config = small_config(activation=activation, l2=0.01, binary_weight=0.7, dropout=0.25)
    model, feeds = make_model(config, dtype=np.float64, seed=2)
    # Central differences across a kink of relu / hardtanh are meaningless: this seed keeps
    # every hidden pre-activation well away from 0 and +-1.
    z = np.abs(model.graph.forward(feeds)["z"])
    assert min(z.min(), np.abs(z - 1).min()) > 10 * STEP
    checks = check_gradients(model, feeds)
    assert {c.name for c in checks} == set(model.params) | {"x"}
    for check in checks:
        assert check.error < TOLERANCE, check


def test_gradcheck_small_model_checks_every_parameter():
    checks = gradcheck_small_model(Config())
    assert [c.name for c in checks][-1] == "x"
    assert all(c.ok for c in checks)


def test_initial_loss_is_log_of_tag_count():
    model, feeds = make_model(small_config(binary_weight=0.0))
    assert model.loss(feeds) == pytest.approx(np.log(len(LABELS)), rel=0.1)


def test_overfits_twelve_windows():
    from nerwin.nn.optim import Adam

    model, feeds = make_model(small_config())
    optimizer = Adam(model.params, lr=0.01)
    for _ in range(300):
        model.loss(feeds)
        optimizer.step(model.gradients())
    p_ent, p_tag = model.probabilities(feeds)
    assert p_tag.argmax(axis=1).tolist() == TAGS
    assert ((p_ent > 0.5) == (np.array(TAGS) != 0)).all()
    assert model.loss(feeds) < 0.01


def test_save_load_round_trip_gives_identical_probabilities(tmp_path):
    model, feeds = make_model(small_config())
    model.save(tmp_path, {"note": "x"})
    loaded = WindowTagger.load(tmp_path)
    for before, after in zip(model.probabilities(feeds), loaded.probabilities(feeds), strict=True):
        np.testing.assert_array_equal(before, after)
    # A loaded model predicts from its frozen per-token tables, not through the graph.
    assert loaded.projections is not None and model.projections is None
    ids, lengths = model.encoder.ids(WORDS), np.array([6, len(WORDS) - 6])
    before = model.token_probabilities(ids, lengths)
    after = loaded.token_probabilities(ids, lengths)
    assert loaded.projections.held.size > 0  # the tables did the work
    for p_before, p_after in zip(before, after, strict=True):
        np.testing.assert_allclose(p_after, p_before, atol=2e-6)
    assert loaded.metrics == {"note": "x"}
    assert loaded.labels == LABELS
    assert not list(tmp_path.glob(".*")), "no temporary files left behind"


def test_load_rejects_other_format_version(tmp_path):
    model, _ = make_model(small_config())
    model.save(tmp_path)
    meta = json.loads((tmp_path / "model.json").read_text())
    meta["format_version"] = 99
    (tmp_path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="format version 99"):
        WindowTagger.load(tmp_path)


def test_load_rejects_missing_directory(tmp_path):
    with pytest.raises(ModelError, match="no model here"):
        WindowTagger.load(tmp_path / "nothing")


def test_weights_are_not_pickled(tmp_path):
    model, _ = make_model(small_config())
    model.save(tmp_path)
    with np.load(tmp_path / "weights.npz", allow_pickle=False) as weights:
        assert set(weights.files) == set(model.params)


def test_fit_temperature_recovers_the_temperature_that_made_the_labels():
    from nerwin.model import fit_temperature
    from nerwin.nn.gates import softmax

    rng = np.random.default_rng(0)
    scores = 3.0 * rng.standard_normal((20000, 5))
    p_true = softmax(scores / 2.5)
    gold = (rng.random((20000, 1)) > p_true.cumsum(axis=1)).sum(axis=1)  # sampled labels
    assert fit_temperature(scores, gold) == pytest.approx(2.5, rel=0.05)


def test_temperature_scales_p_tag_and_survives_save_load(tmp_path):
    model, feeds = make_model(small_config())
    _, p_one = model.probabilities(feeds)
    model.temperature = 2.0
    _, p_two = model.probabilities(feeds)
    np.testing.assert_array_equal(p_one.argmax(axis=1), p_two.argmax(axis=1))
    assert p_two.max() < p_one.max()
    model.save(tmp_path)
    assert WindowTagger.load(tmp_path).temperature == 2.0
