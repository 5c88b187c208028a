"""Exact resume: a run killed with SIGKILL mid-epoch and resumed ends bit-identical.

And resume refuses what it cannot continue exactly: a checkpoint of another
run, changed data, damaged arrays.
"""

import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from nerwin import train as train_module
from nerwin.checkpoint import CHECKPOINT, sha256, write_manifest
from nerwin.config import load_config
from nerwin.errors import ModelError
from nerwin.model import WindowTagger
from nerwin.train import resume, train

from .conftest import REPO, SAMPLE

TRAIN = [
    sys.executable, "-m", "nerwin.cli", "train", "--config", str(REPO / "configs" / "sample.yaml"),
    "--set", f"data.dir={SAMPLE}", "--set", "train.epochs=3", "--set", "train.batch_size=8",
    "--set", "train.checkpoint_batches=25", "--set", "model.dropout=0.2",
    "--set", "model.hidden=32",  # small: the test is about the state a checkpoint restores
]  # fmt: skip


def checkpoint_position(run_dir):
    """(epoch, cursor) of the run's checkpoint, or None before the first one."""
    try:
        with np.load(run_dir / CHECKPOINT, allow_pickle=False) as stored:
            progress = json.loads(str(stored["meta"]))["progress"]
    except (FileNotFoundError, ValueError, KeyError, EOFError, OSError):
        return None
    return progress["epoch"], progress["cursor"]


def weights(run_dir):
    with np.load(run_dir / "weights.npz", allow_pickle=False) as stored:
        return {name: stored[name].tobytes() for name in stored.files}


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_mid_epoch_then_resume_gives_identical_weights(tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run([*TRAIN, "--output", str(whole)], check=True, capture_output=True)

    process = subprocess.Popen([*TRAIN, "--output", str(killed)], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while (position := checkpoint_position(killed)) is None or position < (2, 1):
        assert process.poll() is None, "the run ended before a mid-epoch checkpoint of epoch 2"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    epoch, cursor = checkpoint_position(killed)
    assert epoch == 2 and cursor > 0, "killed mid-epoch"

    resumed = subprocess.run(
        [sys.executable, "-m", "nerwin.cli", "train", "--resume", str(killed)],
        check=True,
        capture_output=True,
        text=True,
    )
    # It trained only the rest: the state it restored, not a fresh start, made the weights.
    assert f"resuming {killed} at epoch 2, window {cursor}" in resumed.stdout
    assert "epoch 1/3 |" not in resumed.stdout and "epoch 2/3 |" in resumed.stdout
    assert weights(killed) == weights(whole)
    assert sha256(killed / "weights.npz") == sha256(whole / "weights.npz")
    records = [json.loads(line) for line in (killed / "metrics.jsonl").open()]
    assert [r["epoch"] for r in records] == [1, 2, 3]


def test_run_manifest_records_config_data_and_versions(tmp_path):
    subprocess.run(
        [*TRAIN, "--set", "train.epochs=1", "--output", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    manifest = json.loads((tmp_path / "run.json").read_text())
    assert manifest["seed"] == 1
    assert len(manifest["config_hash"]) == 16
    assert manifest["data"][str(SAMPLE / "train.conll")] == sha256(SAMPLE / "train.conll")
    assert manifest["packages"]["numpy"] == np.__version__
    assert "OPENBLAS_NUM_THREADS" in manifest["threads"]


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "nerwin.cli", "train", "--resume", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == f"nerwin: {tmp_path}: no {CHECKPOINT} to resume from"


def quiet(line):
    pass


def small_config(output, *overrides, data_dir=SAMPLE):
    return load_config(
        REPO / "configs" / "sample.yaml",
        (f"data.dir={data_dir}", f"output={output}", "model.hidden=8", *overrides),
    )


class Killed(Exception):
    """Stands in for SIGKILL in an in-process run: whatever is on disk stays as it is."""


def kill_at(monkeypatch, name):
    """Make ``nerwin.train.<name>`` die when it is called."""

    def die(*args, **kwargs):
        raise Killed

    monkeypatch.setattr(train_module, name, die)


def test_fresh_run_in_an_old_runs_directory_resumes_as_itself(tmp_path, monkeypatch):
    """A new run killed in its first epoch, in a directory holding an older finished run,
    resumes as the new run (not the old one) and ends as if never stopped."""
    reused, whole = tmp_path / "reused", tmp_path / "whole"
    train(small_config(reused, "train.epochs=2"), log=quiet)
    new_run = ("model.hidden=16", "train.epochs=2")
    train(small_config(whole, *new_run), log=quiet)

    with monkeypatch.context() as patch:
        kill_at(patch, "train_epoch")
        with pytest.raises(Killed):
            train(small_config(reused, *new_run), log=quiet)
    assert not (reused / "weights.npz").exists() and not (reused / "model.json").exists()

    lines = []
    run = resume(reused, log=lines.append)
    assert lines[0] == f"resuming {reused} at epoch 1, window 0"
    assert run.model.params["hidden.W"].shape[0] == 16
    assert weights(reused) == weights(whole)


def test_checkpoint_of_another_run_is_refused(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    train(small_config(first, "train.epochs=1"), log=quiet)
    train(small_config(second, "train.epochs=1", "train.seed=2"), log=quiet)
    shutil.copy(first / CHECKPOINT, second / CHECKPOINT)
    with pytest.raises(
        ModelError,
        match=r"checkpoint\.npz: belongs to another run than .*run\.json "
        r"\(config differs in train\.seed\)$",
    ):
        resume(second, log=quiet)


def pretend_older(run_dir):
    """Make the run in ``run_dir`` look started by a version without ``features.shape_dim``."""
    older = change_meta(lambda meta: meta["config"]["features"].pop("shape_dim"))
    damage_checkpoint(run_dir, older)
    manifest = json.loads((run_dir / "run.json").read_text())
    del manifest["config"]["features"]["shape_dim"]
    (run_dir / "run.json").write_text(json.dumps(manifest))


def test_a_run_from_before_a_config_key_existed_still_resumes(tmp_path):
    """A key that a later version adds (and fills with its default when reading the
    config) does not make an older run foreign."""
    train(small_config(tmp_path, "train.epochs=1"), log=quiet)
    pretend_older(tmp_path)
    lines = []
    resume(tmp_path, log=lines.append)
    assert lines[0] == f"run {tmp_path} had already ended: saving its final model"


def test_an_older_run_resumes_again_after_a_checkpoint_of_this_version(tmp_path, monkeypatch):
    """The checkpoint a resume writes holds today's keys, run.json the older run's: both are
    read with today's defaults before they are compared, so the run resumes again."""
    with monkeypatch.context() as patch, pytest.raises(Killed):
        kill_at(patch, "train_epoch")
        train(small_config(tmp_path, "train.epochs=1"), log=quiet)
    pretend_older(tmp_path)
    with monkeypatch.context() as patch, pytest.raises(Killed):
        kill_at(patch, "_finish")  # after the epoch's checkpoint
        resume(tmp_path, log=quiet)
    lines = []
    resume(tmp_path, log=lines.append)
    assert lines[0] == f"run {tmp_path} had already ended: saving its final model"


def copy_sample(directory):
    directory.mkdir()
    for name in ("train.conll", "dev.conll", "test.conll"):
        shutil.copy(SAMPLE / name, directory / name)
    return directory


def test_changed_data_file_is_one_line_and_exit_2(tmp_path):
    data, run_dir = copy_sample(tmp_path / "data"), tmp_path / "run"
    train(small_config(run_dir, "train.epochs=1", data_dir=data), log=quiet)
    with open(data / "train.conll", "a", encoding="utf-8") as f:
        f.write("Zyxxy B-PER\nqwertz O\n\n")  # new words: the vocabulary grows
    result = subprocess.run(
        [sys.executable, "-m", "nerwin.cli", "train", "--resume", str(run_dir)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr == (
        f"nerwin: {run_dir / CHECKPOINT}: data file {data / 'train.conll'} "
        "changed since the run started\n"
    )


@pytest.mark.parametrize("name", ["dev.conll", "test.conll"])
def test_changed_tags_with_the_same_vocabulary_are_refused(tmp_path, name):
    data, run_dir = copy_sample(tmp_path / "data"), tmp_path / "run"
    train(small_config(run_dir, "train.epochs=1", data_dir=data), log=quiet)
    path = data / name
    path.write_text(path.read_text(encoding="utf-8").replace("B-PER", "B-ORG", 1))
    with pytest.raises(ModelError, match=f"data file {path} changed since the run started"):
        resume(run_dir, log=quiet)
    path.unlink()
    with pytest.raises(ModelError, match=f"data file {path} is gone since the run started"):
        resume(run_dir, log=quiet)


def from_start_directory(tmp_path, monkeypatch):
    """Make ``tmp_path/start``, with the sample in its ``data``, the current directory, and
    a ``tmp_path/elsewhere`` without one; a run config reading ``data`` into ``tmp_path/run``."""
    (tmp_path / "start").mkdir()
    (tmp_path / "elsewhere").mkdir()
    copy_sample(tmp_path / "start" / "data")
    monkeypatch.chdir(tmp_path / "start")
    return lambda *overrides: small_config(tmp_path / "run", *overrides, data_dir="data")


def test_resume_from_another_directory_reads_the_data_the_run_started_with(tmp_path, monkeypatch):
    """``data.dir`` is relative to where the run started; run.json records it resolved."""
    whole = train(small_config(tmp_path / "whole", "train.epochs=2"), log=quiet)
    config = from_start_directory(tmp_path, monkeypatch)
    with monkeypatch.context() as patch, pytest.raises(Killed):
        kill_at(patch, "_finish")  # after both epochs: the resume must read dev and test
        train(config("train.epochs=2"), log=quiet)
    run_dir, data_dir = tmp_path / "run", (tmp_path / "start" / "data").resolve()
    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["data_dir"] == str(data_dir)
    assert manifest["data"][str(data_dir / "train.conll")] == sha256(data_dir / "train.conll")

    monkeypatch.chdir(tmp_path / "elsewhere")
    resumed = resume(run_dir, log=quiet)
    assert weights(run_dir) == weights(tmp_path / "whole")
    assert resumed.scores["test"] == whole.scores["test"]


def test_an_older_manifest_with_relative_data_paths_says_where_it_looked(tmp_path, monkeypatch):
    """A run.json written before ``data_dir`` was recorded holds the paths as configured."""
    config = from_start_directory(tmp_path, monkeypatch)
    train(config("train.epochs=1"), log=quiet)
    run_dir = tmp_path / "run"
    manifest = json.loads((run_dir / "run.json").read_text())
    del manifest["data_dir"]
    manifest["data"] = {f"data/{Path(path).name}": sha for path, sha in manifest["data"].items()}
    (run_dir / "run.json").write_text(json.dumps(manifest))

    monkeypatch.chdir(tmp_path / "elsewhere")
    message = (
        f"{run_dir / CHECKPOINT}: data file data/train.conll not found from "
        f"{tmp_path / 'elsewhere'} (run.json has it relative to the directory the run was "
        "started in)"
    )
    with pytest.raises(ModelError, match=f"^{re.escape(message)}$"):
        resume(run_dir, log=quiet)
    monkeypatch.chdir(tmp_path / "start")
    resume(run_dir, log=quiet)


def write_vectors(path, words, dim=50):
    path.write_text("".join(f"{word} {' '.join(['0.5'] * dim)}\n" for word in words))


def test_a_vectors_file_is_read_from_where_the_run_started_and_must_not_change(
    tmp_path, monkeypatch
):
    """run.json records a vectors file resolved, with its SHA-256, like the data files."""
    config = from_start_directory(tmp_path, monkeypatch)
    vectors = tmp_path / "start" / "vec.txt"
    write_vectors(vectors, ["london", "qqqx"])  # qqqx: in the vectors only
    with monkeypatch.context() as patch, pytest.raises(Killed):
        kill_at(patch, "_finish")
        train(config("train.epochs=1", "features.vectors=vec.txt"), log=quiet)
    run_dir, recorded = tmp_path / "run", str(vectors.resolve())
    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["vectors"] == {"path": recorded, "sha256": sha256(vectors)}

    monkeypatch.chdir(tmp_path / "elsewhere")
    resume(run_dir, log=quiet)
    model = WindowTagger.load(run_dir)
    assert "qqqx" in model.vocabs["word"].itos
    assert model.config.features.vectors == "vec.txt"  # the config as it was given
    write_vectors(vectors, ["london", "zzzr"])  # the same size of vocabulary
    message = f"{run_dir / CHECKPOINT}: vectors file {recorded} changed since the run started"
    with pytest.raises(ModelError, match=f"^{re.escape(message)}$"):
        resume(run_dir, log=quiet)


def test_packaged_vectors_are_recorded_by_name(tmp_path):
    write_manifest(tmp_path, small_config(tmp_path, "features.vectors=glove-6b-50d"))
    manifest = json.loads((tmp_path / "run.json").read_text())
    assert manifest["vectors"] is None
    assert manifest["config"]["features"]["vectors"] == "glove-6b-50d"


def damage_checkpoint(run_dir, change):
    with np.load(run_dir / CHECKPOINT, allow_pickle=False) as stored:
        arrays = {name: stored[name] for name in stored.files}
    change(arrays)
    np.savez(run_dir / CHECKPOINT, **arrays)


def change_meta(change):
    """A change to a checkpoint's arrays that applies ``change`` to its decoded meta."""

    def update(arrays):
        meta = json.loads(str(arrays["meta"]))
        change(meta)
        arrays["meta"] = np.array(json.dumps(meta))

    return update


DAMAGE = {
    "missing": (
        lambda arrays: arrays.pop("param/hidden.W"),
        "array 'param/hidden.W' is missing",
    ),
    "shape": (
        lambda arrays: arrays.update({"m/hidden.b": np.zeros(9, np.float32)}),
        r"array 'm/hidden.b' is float32 \(9,\), this run needs float32 \(8,\)",
    ),
    "dtype": (
        lambda arrays: arrays.update({"param/hidden.b": np.zeros(8)}),
        r"array 'param/hidden.b' is float64 \(8,\), this run needs float32 \(8,\)",
    ),
    "order": (
        lambda arrays: arrays.update({"order": np.arange(5)}),
        "array 'order' is not an order of the 4768 training windows",
    ),
    "bookkeeping": (
        change_meta(lambda meta: meta.pop("progress")),
        r"damaged checkpoint \(no progress\)$",
    ),
    **{
        f"progress.{key} {value!r}": (
            change_meta(lambda meta, key=key, value=value: meta["progress"].update({key: value})),
            rf"damaged checkpoint \(progress\.{key}\)$",
        )
        for key, value in [
            ("seconds", None),
            ("loss_sum", float("nan")),
            ("epoch", "1"),
            ("epoch", 0),
            ("cursor", 10**6),
            ("waited", -1),
            ("batches", True),
            ("history", None),
        ]
    },
    "progress.cursor without its order": (
        lambda arrays: (
            arrays.pop("order", None),
            change_meta(lambda meta: meta["progress"].update(epoch=1, cursor=96))(arrays),
        ),
        r"damaged checkpoint \(progress\.cursor\)$",
    ),
    "progress field unknown": (
        change_meta(lambda meta: meta["progress"].update(speed=1)),
        r"damaged checkpoint \(progress: .*'speed'\)$",
    ),
    "config": (
        change_meta(lambda meta: meta.pop("config")),
        r"damaged checkpoint \(no config\)",
    ),
    "config value": (
        change_meta(lambda meta: meta["config"]["model"].update(hidden="x")),
        r"damaged checkpoint \(config: model\.hidden: expected int, got 'x'\)$",
    ),
    **{
        f"optimizer.{key} {value!r}": (
            change_meta(lambda meta, key=key, value=value: meta["optimizer"].update({key: value})),
            r"damaged checkpoint \(ValueError: optimizer steps .*, lr .*\)$",
        )
        for key, value in [("steps", -1), ("steps", 1.5), ("lr", float("nan")), ("lr", 0.0)]
    },
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_checkpoint_is_a_model_error(tmp_path, damage):
    change, message = DAMAGE[damage]
    train(small_config(tmp_path, "train.epochs=1"), log=quiet)
    damage_checkpoint(tmp_path, change)
    with pytest.raises(ModelError, match=f"{CHECKPOINT}: {message}"):
        resume(tmp_path, log=quiet)


FILE_DAMAGE = {
    "empty": lambda data: b"",
    "cut in half": lambda data: data[: len(data) // 2],
    "a byte flipped": lambda data: (
        data[: len(data) // 2] + bytes([data[len(data) // 2] ^ 1]) + data[len(data) // 2 + 1 :]
    ),
}


@pytest.mark.parametrize("damage", FILE_DAMAGE)
def test_a_damaged_checkpoint_file_is_a_model_error(tmp_path, damage):
    train(small_config(tmp_path, "train.epochs=1"), log=quiet)
    path = tmp_path / CHECKPOINT
    path.write_bytes(FILE_DAMAGE[damage](path.read_bytes()))
    with pytest.raises(ModelError, match=f"{CHECKPOINT}: unreadable checkpoint"):
        resume(tmp_path, log=quiet)


STOPPED = {
    "early stopping": ("train.epochs=30", "train.patience=1"),
    "last epoch": ("train.epochs=2", "train.patience=0"),
}


@pytest.mark.parametrize("killed_before_final_save", [False, True])
@pytest.mark.parametrize("stop", STOPPED)
def test_resuming_a_run_that_had_stopped_trains_no_more(
    tmp_path, monkeypatch, stop, killed_before_final_save
):
    """Resumed, a run that had stopped (and perhaps was killed before saving its final model)
    trains no further epoch and ends with the uninterrupted run's weights, bit for bit."""
    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    whole_run = train(small_config(whole, *STOPPED[stop]), log=quiet)
    if killed_before_final_save:
        with monkeypatch.context() as patch, pytest.raises(Killed):
            kill_at(patch, "_finish")
            train(small_config(stopped, *STOPPED[stop]), log=quiet)
    else:
        train(small_config(stopped, *STOPPED[stop]), log=quiet)

    lines = []
    run = resume(stopped, log=lines.append)
    assert lines[0] == f"run {stopped} had already ended: saving its final model"
    assert not [line for line in lines if line.startswith(("epoch ", "no better dev F1"))]
    log = (stopped / "train.log").read_text()
    assert log.count(lines[0]) == 1
    assert log.count("no better dev F1") == (stop == "early stopping")
    assert run.best_epoch == whole_run.best_epoch
    assert weights(stopped) == weights(whole)
    records = [json.loads(line) for line in (stopped / "metrics.jsonl").open()]
    scores = [(r["epoch"], r["loss"], r["dev_f1"]) for r in whole_run.history]
    assert [(r["epoch"], r["loss"], r["dev_f1"]) for r in records] == scores


def test_resume_after_ctrl_c_ends_as_if_never_interrupted(tmp_path, monkeypatch):
    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    train(small_config(whole, "train.epochs=2"), log=quiet)
    real_epoch = train_module.train_epoch

    def ctrl_c_after_three_batches(*args, stop_requested, **kwargs):
        asked = itertools.count()  # stop_requested() is asked once before each batch

        def press_after_three():
            if next(asked) == 3:
                os.kill(os.getpid(), signal.SIGINT)
            return stop_requested()

        return real_epoch(*args, stop_requested=press_after_three, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(train_module, "train_epoch", ctrl_c_after_three_batches)
        try:
            assert train(small_config(stopped, "train.epochs=2"), log=quiet).interrupted
        except KeyboardInterrupt:
            pytest.fail("Ctrl-C escaped train()")
    lines = []
    resume(stopped, log=lines.append)
    assert lines[0] == f"resuming {stopped} at epoch 1, window {3 * 32}"
    assert f"\n{lines[0]}\n" in (stopped / "train.log").read_text()
    assert weights(stopped) == weights(whole)


def test_a_resumed_run_that_had_ended_reports_its_whole_training_time(tmp_path):
    first = train(small_config(tmp_path, "train.epochs=1"), log=quiet)
    resumed = resume(tmp_path, log=quiet)
    seconds = WindowTagger.load(tmp_path).metrics["train_seconds"]
    assert seconds == resumed.seconds
    # The time up to the last checkpoint: all of the first run's but its final save.
    assert seconds == pytest.approx(first.seconds, rel=0.5)
