"""Exact resume: a run killed with SIGKILL mid-epoch and resumed ends bit-identical."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from nerwin.checkpoint import CHECKPOINT, sha256

from .conftest import REPO, SAMPLE

TRAIN = [
    sys.executable, "-m", "nerwin.cli", "train", "--config", str(REPO / "configs" / "sample.yaml"),
    "--set", f"data.dir={SAMPLE}", "--set", "train.epochs=3", "--set", "train.batch_size=8",
    "--set", "train.checkpoint_batches=25", "--set", "model.dropout=0.2",
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
