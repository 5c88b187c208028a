import json

import numpy as np
import pytest

from nerwin import train as train_module
from nerwin.config import load_config
from nerwin.model import WindowTagger
from nerwin.train import build_labels, lr_at, replace_rare_words, train

from .conftest import REPO


def sample_config(tmp_path, *overrides):
    return load_config(
        REPO / "configs" / "sample.yaml",
        (f"data.dir={REPO / 'data' / 'sample'}", f"output={tmp_path}", *overrides),
    )


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    output = tmp_path_factory.mktemp("sample")
    return train(sample_config(output), log=lambda line: None)


def test_sample_model_beats_the_most_frequent_tag_baseline(sample_run):
    # Tagging each token with its most frequent training tag scores about 32 F1 on this test set.
    assert sample_run.scores["test"]["entity"]["micro"]["f1"] > 0.60
    assert sample_run.scores["dev"]["entity"]["micro"]["f1"] > 0.65
    assert sample_run.scores["test"]["binary"]["f1"] > 0.85


def test_run_directory_has_model_metrics_and_log(sample_run):
    records = [json.loads(line) for line in (sample_run.output / "metrics.jsonl").open()]
    assert [r["epoch"] for r in records] == list(range(1, len(records) + 1))
    assert all(0.0 <= r["dev_f1"] <= 1.0 for r in records)
    log = (sample_run.output / "train.log").read_text()
    assert "epoch 1/" in log and "dev F1" in log
    model = WindowTagger.load(sample_run.output)
    assert model.metrics["best_epoch"] == sample_run.best_epoch
    assert model.metrics["test"]["entity"]["micro"]["f1"] == pytest.approx(
        sample_run.scores["test"]["entity"]["micro"]["f1"]
    )


def test_best_epoch_is_the_best_dev_f1(sample_run):
    f1s = [epoch["dev_f1"] for epoch in sample_run.history]
    assert sample_run.best_epoch == 1 + int(np.argmax(f1s))
    assert sample_run.scores["dev"]["entity"]["micro"]["f1"] == pytest.approx(max(f1s))


def test_same_seed_same_weights_bit_for_bit(tmp_path):
    runs = [
        train(sample_config(tmp_path / str(i), "train.epochs=2"), log=lambda line: None)
        for i in range(2)
    ]
    for name, array in runs[0].model.params.items():
        assert array.tobytes() == runs[1].model.params[name].tobytes(), name
    other = train(sample_config(tmp_path / "other", "train.epochs=2", "train.seed=2"), log=print)
    assert other.model.params["hidden.W"].tobytes() != runs[0].model.params["hidden.W"].tobytes()


def test_interrupt_keeps_the_best_model_so_far(tmp_path, monkeypatch):
    real_epoch = train_module.train_epoch
    calls = []

    def interrupted_on_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(train_module, "train_epoch", interrupted_on_third)
    run = train(sample_config(tmp_path), log=lambda line: None)
    assert run.interrupted and len(run.history) == 2
    saved = WindowTagger.load(tmp_path)
    assert saved.metrics["best_epoch"] in (1, 2)
    assert "dev" in saved.metrics


def test_early_stopping_respects_patience(tmp_path):
    run = train(sample_config(tmp_path, "train.patience=1", "train.epochs=40"), log=print)
    assert len(run.history) == run.best_epoch + 1 or len(run.history) == 40


def test_replace_rare_words_only_touches_singletons():
    rng = np.random.default_rng(0)
    singleton = np.array([False, False, False, True, False])
    ids = np.full((200, 5), 3)
    ids[:, 0] = 4
    replaced = replace_rare_words(ids, singleton, 0.5, rng)
    assert (replaced[:, 0] == 4).all()
    assert 0.4 < (replaced[:, 1:] == 0).mean() < 0.6


def test_labels_and_schedule():
    from nerwin.data.conll import Sentence

    sentences = [Sentence(("a", "b"), ("B-PER", "O"), 1, 0), Sentence(("c",), ("B-LOC",), 4, 0)]
    assert build_labels(sentences) == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    config = load_config(None, ("train.lr=0.1", "train.lr_decay=1.0"))
    assert [lr_at(config.train, e) for e in range(3)] == pytest.approx([0.1, 0.05, 0.1 / 3])


def test_labels_only_in_dev_and_test_are_scored_as_errors_not_crashes(tmp_path):
    (tmp_path / "train.conll").write_text("Peter B-PER\nwalks O\n\nAnna B-PER\nsings O\n")
    held_out = "The O\nOlympics B-EVENT\nstart O\n\nPeter B-PER\nwalks O\n"
    (tmp_path / "dev.conll").write_text(held_out)
    (tmp_path / "test.conll").write_text(held_out)
    overrides = (f"data.dir={tmp_path}", f"output={tmp_path / 'run'}", "train.epochs=2")
    run = train(load_config(None, overrides), log=lambda line: None)
    assert "B-EVENT" not in run.model.labels
    event = run.scores["test"]["entity"]["per_type"]["EVENT"]
    assert event["support"] == 1 and event["recall"] == 0.0
    assert "EVENT" in run.scores["test"]["confusion"]["labels"]
