import json
import math
import os
import re
import signal
import warnings
from pathlib import Path

import numpy as np
import pytest

from nerwin import train as train_module
from nerwin.checkpoint import CHECKPOINT
from nerwin.config import load_config
from nerwin.data.conll import read_conll
from nerwin.errors import ModelError, OutputError
from nerwin.model import WindowTagger
from nerwin.train import build_labels, lr_at, replace_rare_words, train

from .conftest import REPO, SAMPLE
from .test_cli import run


def sample_config(tmp_path, *overrides):
    return load_config(
        REPO / "configs" / "sample.yaml",
        (f"data.dir={SAMPLE}", f"output={tmp_path}", *overrides),
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
    small = ("train.epochs=2", "model.hidden=16")
    runs = [
        train(sample_config(tmp_path / str(i), *small), log=lambda line: None) for i in range(2)
    ]
    for name, array in runs[0].model.params.items():
        assert array.tobytes() == runs[1].model.params[name].tobytes(), name
    other = train(sample_config(tmp_path / "other", *small, "train.seed=2"), log=print)
    assert other.model.params["hidden.W"].tobytes() != runs[0].model.params["hidden.W"].tobytes()


def ctrl_c_inside_step(monkeypatch, step: int, presses: int = 1) -> dict[str, np.ndarray]:
    """Press Ctrl-C (SIGINT to this process) inside optimizer step ``step``.

    The first press comes after the step has updated its first parameter and
    before the others, the spot where an exception would leave the parameters
    half-updated; a second press comes at its second parameter. Returns the
    parameters as that step leaves them, filled in once it has ended.
    """
    after_step = {}
    real_make = train_module.make_optimizer

    def make_optimizer(train_config, params):
        optimizer = real_make(train_config, params)
        update, run_step = optimizer._update, optimizer.step
        names = list(params)[:presses]

        # Optimizer.step updates the parameters one _update call at a time, so _update is
        # the one place to press in the middle of a step; this test depends on that.
        def update_then_press(name, index, grad):
            update(name, index, grad)
            if optimizer.steps == step and name in names:
                os.kill(os.getpid(), signal.SIGINT)

        def step_then_copy(grads):
            run_step(grads)
            if optimizer.steps == step:
                after_step.update({name: p.copy() for name, p in params.items()})

        optimizer._update, optimizer.step = update_then_press, step_then_copy
        return optimizer

    monkeypatch.setattr(train_module, "make_optimizer", make_optimizer)
    return after_step


def train_through_ctrl_c(config):
    # Were the press not caught, KeyboardInterrupt would end the whole pytest session.
    try:
        return train(config, log=lambda line: None)
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C escaped train()")


def saved_weights(run_dir):
    with np.load(run_dir / "weights.npz", allow_pickle=False) as stored:
        return {name: stored[name] for name in stored.files}


def checkpoint_meta(run_dir):
    with np.load(run_dir / CHECKPOINT, allow_pickle=False) as stored:
        return json.loads(str(stored["meta"]))


def assert_same_arrays(got, expected):
    assert got.keys() == expected.keys()
    for name, array in expected.items():
        assert got[name].tobytes() == array.tobytes(), name


def test_ctrl_c_inside_a_step_finishes_that_batch_and_keeps_its_weights(tmp_path, monkeypatch):
    """Before any epoch has ended, the model kept is the one after the last complete batch:
    the batch whose optimizer step the Ctrl-C arrived in, all of its update applied."""
    after_step = ctrl_c_inside_step(monkeypatch, step=5)
    handler = signal.getsignal(signal.SIGINT)
    run = train_through_ctrl_c(sample_config(tmp_path, "model.hidden=8", "train.epochs=2"))
    assert run.interrupted and run.history == [] and run.best_epoch == 0
    assert signal.getsignal(signal.SIGINT) is handler
    assert_same_arrays(saved_weights(tmp_path), after_step)
    meta = checkpoint_meta(tmp_path)  # written where it stopped, for --resume
    assert meta["optimizer"]["steps"] == 5
    assert meta["progress"]["epoch"] == 1 and meta["progress"]["cursor"] == 5 * 32
    assert "interrupted: keeping the last complete batch's model" in (
        (tmp_path / "train.log").read_text()
    )


def test_an_ignored_ctrl_c_stays_ignored(tmp_path, monkeypatch):
    """Under nohup SIGINT is ignored: training neither stops nor takes the signal over."""
    ctrl_c_inside_step(monkeypatch, step=5)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        run = train_through_ctrl_c(sample_config(tmp_path, "model.hidden=8", "train.epochs=1"))
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
    assert not run.interrupted


def test_nerwin_train_stopped_by_ctrl_c_exits_130(tmp_path, monkeypatch):
    """So that `nerwin train && next-step` does not go on with a model half trained."""
    ctrl_c_inside_step(monkeypatch, step=5)
    args = ["train", "--set", f"data.dir={SAMPLE}", "--set", "model.hidden=8", "--output", tmp_path]
    try:
        result = run(*args)
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C escaped nerwin train")
    assert result.exit_code == 130, result.output
    assert "interrupted: keeping the last complete batch's model" in result.output
    assert (tmp_path / "weights.npz").is_file()


def test_ctrl_c_in_a_later_epoch_keeps_the_best_epochs_weights(tmp_path, monkeypatch):
    """After Ctrl-C in epoch 3 the model is the best of epochs 1 and 2, the same, bit for bit,
    as that of a run of two epochs."""
    config = sample_config(tmp_path / "two", "model.hidden=8", "train.epochs=2")
    two_epochs = train(config, log=lambda line: None)
    steps_per_epoch = checkpoint_meta(tmp_path / "two")["optimizer"]["steps"] // 2
    ctrl_c_inside_step(monkeypatch, step=2 * steps_per_epoch + 3)
    config = sample_config(tmp_path / "stopped", "model.hidden=8", "train.epochs=5")
    run = train_through_ctrl_c(config)
    assert run.interrupted and len(run.history) == 2
    assert run.best_epoch == two_epochs.best_epoch
    assert_same_arrays(saved_weights(tmp_path / "stopped"), saved_weights(tmp_path / "two"))
    assert WindowTagger.load(tmp_path / "stopped").metrics["best_epoch"] == run.best_epoch


@pytest.mark.parametrize("epochs", [2, 1])
def test_ctrl_c_in_an_epochs_last_batch_keeps_that_whole_epoch(tmp_path, monkeypatch, epochs):
    """The batch ends the epoch: the epoch is scored and kept, and no further one begins.
    In the last epoch, that is the run's normal end, not an interruption."""
    windows = sum(len(s.tokens) for s in read_conll(SAMPLE / "train.conll"))
    after_step = ctrl_c_inside_step(monkeypatch, step=math.ceil(windows / 32))
    config = sample_config(tmp_path, "model.hidden=8", f"train.epochs={epochs}")
    run = train_through_ctrl_c(config)
    assert run.interrupted == (epochs > 1) and [r["epoch"] for r in run.history] == [1]
    assert run.best_epoch == 1
    assert_same_arrays(saved_weights(tmp_path), after_step)
    progress = checkpoint_meta(tmp_path)["progress"]
    assert (progress["epoch"], progress["cursor"]) == (2, 0)
    log = (tmp_path / "train.log").read_text()
    assert f"epoch 1/{epochs} |" in log
    assert ("--resume goes on from here" in log) == (epochs > 1)


def test_second_ctrl_c_aborts_and_saves_nothing_more(tmp_path, monkeypatch):
    ctrl_c_inside_step(monkeypatch, step=5, presses=2)
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        train(sample_config(tmp_path, "model.hidden=8", "train.epochs=2"), log=lambda line: None)
    assert signal.getsignal(signal.SIGINT) is handler
    assert not (tmp_path / "weights.npz").exists()  # no epoch ended: no model
    assert checkpoint_meta(tmp_path)["optimizer"]["steps"] == 0  # the one written at the start


NEEDS_DEV_FULL = pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
# name: (the log file, what makes it fail, the reason in the message)
BAD_LOGS = {
    # Each write fails: no space left on device.
    "full train.log": (
        "train.log",
        lambda path: path.symlink_to("/dev/full"),
        "No space left on device",
    ),
    "full metrics.jsonl": (
        "metrics.jsonl",
        lambda path: path.symlink_to("/dev/full"),
        "No space left on device",
    ),
    "train.log a directory": (
        "train.log",
        lambda path: path.mkdir(),
        "Is a directory",
    ),  # cannot open
}


@pytest.mark.parametrize(
    ("name", "make", "reason"),
    [
        pytest.param(*case, id=key, marks=NEEDS_DEV_FULL if "full" in key else ())
        for key, case in BAD_LOGS.items()
    ],
)
def test_a_log_that_fails_is_one_error_naming_the_file(tmp_path, name, make, reason):
    make(tmp_path / name)
    message = f"{tmp_path / name}: cannot write ({reason})"
    with pytest.raises(OutputError, match=f"^{re.escape(message)}$"):
        train(sample_config(tmp_path, "model.hidden=8", "train.epochs=1"), log=lambda line: None)


# name: (overrides, what the message gives as the cause)
DIVERGING = {
    "a loss": (("train.epochs=2", "train.optimizer=sgd", "train.lr=1e30"), "loss (nan|inf)"),
    # The step that ends a one-batch epoch overflows, after the only loss computed.
    "in the epoch's last step": (("train.batch_size=100000", "train.lr=1e39"), ".+"),
    "between checkpoints": (
        ("train.optimizer=sgd", "train.lr=1e30", "train.checkpoint_batches=1"),
        ".+",
    ),
}


@pytest.mark.parametrize(("overrides", "cause"), DIVERGING.values(), ids=DIVERGING.keys())
def test_training_that_diverges_is_one_error_and_saves_no_non_finite_weights(
    tmp_path, overrides, cause
):
    config = sample_config(tmp_path, "model.hidden=8", "train.epochs=1", *overrides)
    message = rf"^{re.escape(str(tmp_path))}: training diverged in epoch 1 \({cause}\); try a lower"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the run stops with its one line, no numpy warnings
        with pytest.raises(ModelError, match=message):
            train(config, log=lambda line: None)
    assert not (tmp_path / "weights.npz").exists()
    with np.load(tmp_path / CHECKPOINT, allow_pickle=False) as stored:
        for name in stored.files:
            if name.startswith("param/"):
                assert np.isfinite(stored[name]).all(), name


def test_patience_that_runs_out_in_the_last_epoch_stops_nothing(tmp_path):
    config = sample_config(
        tmp_path, "model.hidden=8", "train.epochs=2", "train.patience=1", "train.lr=1e-9"
    )
    lines = []
    run = train(config, log=lines.append)
    assert [r["epoch"] for r in run.history] == [1, 2] and run.best_epoch == 1
    assert not [line for line in lines if line.startswith("no better dev F1")]


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
