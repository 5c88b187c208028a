"""Training state on disk, for exact resume, and the run manifest.

A checkpoint is one file, ``checkpoint.npz`` in the run directory, written
atomically: the parameters (``param/NAME``), the optimizer's state
(``SLOT/NAME``), the epoch's window order, and a JSON string ``meta`` with
the config, the epoch and batch cursor, the optimizer's step count, the
random generator's state and the early-stopping bookkeeping. Restoring all
of it and running on gives the same weights, bit for bit, as never having
stopped.

``run.json`` beside it is the run's manifest. A checkpoint is resumed only
if its config has the manifest's hash and every data file still has the
manifest's SHA-256: otherwise the run would go on with another config or
other data than it started with.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

from nerwin.config import Config
from nerwin.errors import ModelError
from nerwin.model import atomic_write
from nerwin.nn.optim import Optimizer

CHECKPOINT = "checkpoint.npz"
MANIFEST = "run.json"
MODEL_FILES = ("weights.npz", "model.json")  # what WindowTagger.save writes
FORMAT_VERSION = 1


@dataclass
class Progress:
    """Where training stands; with parameters, optimizer and generator, all a resume needs."""

    epoch: int = 1  # the epoch being trained, from 1
    cursor: int = 0  # windows of this epoch already trained on
    loss_sum: float = 0.0  # summed batch losses of this epoch so far
    batches: int = 0  # batches of this epoch so far
    best_f1: float = -1.0
    best_epoch: int = 0
    waited: int = 0  # epochs since the best
    history: list[dict] = field(default_factory=list)  # one record per finished epoch
    order: np.ndarray | None = field(default=None, repr=False)  # (T,) this epoch's order


def save_checkpoint(
    run_dir: Path,
    config: Config,
    params: dict[str, np.ndarray],
    optimizer: Optimizer,
    rng: np.random.Generator,
    progress: Progress,
) -> None:
    """Write everything needed to continue exactly where training is now."""
    bookkeeping = {k: v for k, v in asdict(progress).items() if k != "order"}
    meta = {
        "format_version": FORMAT_VERSION,
        "config": config.to_dict(),
        "progress": bookkeeping,
        "optimizer": {"steps": optimizer.steps, "lr": optimizer.lr},
        "rng": rng.bit_generator.state,
    }
    arrays = _state_arrays(params, optimizer)
    if progress.order is not None:
        arrays["order"] = progress.order
    arrays["meta"] = np.array(json.dumps(meta))
    atomic_write(run_dir / CHECKPOINT, lambda f: np.savez(f, **arrays))


def read_checkpoint_config(run_dir: Path) -> dict:
    """The config a checkpointed run was started with (as a dict)."""
    config = _read(run_dir)[0].get("config")
    if not isinstance(config, dict):
        raise ModelError(f"{Path(run_dir) / CHECKPOINT}: damaged checkpoint (no config)")
    return config


def restore_checkpoint(
    run_dir: Path,
    params: dict[str, np.ndarray],
    optimizer: Optimizer,
    rng: np.random.Generator,
    windows: int,
) -> Progress:
    """Load the checkpoint into ``params``, ``optimizer`` and ``rng`` in place; its Progress.

    ``windows`` is the number of training windows T, the length of a stored
    epoch order. ModelError if an array is missing or of another shape or
    type than the one it restores, or the bookkeeping is damaged.
    """
    meta, arrays = _read(run_dir)
    path = Path(run_dir) / CHECKPOINT
    targets = _state_arrays(params, optimizer)
    for key, target in targets.items():
        _check_array(path, key, arrays.get(key), target.shape, target.dtype)
    order = arrays.get("order")
    if order is not None:
        _check_order(path, order, windows)
    for key, target in targets.items():
        target[...] = arrays[key]
    try:
        optimizer.steps = int(meta["optimizer"]["steps"])
        optimizer.lr = float(meta["optimizer"]["lr"])
        rng.bit_generator.state = meta["rng"]
        return Progress(**meta["progress"], order=order)
    except (KeyError, TypeError, ValueError) as err:
        raise ModelError(f"{path}: damaged checkpoint ({type(err).__name__}: {err})") from None


def check_run(run_dir: Path, config: Config, data_files: list[Path]) -> None:
    """ModelError unless ``config`` (the checkpoint's) is the one in ``run.json`` and
    every file of ``data_files`` still has the SHA-256 recorded there."""
    path = Path(run_dir) / CHECKPOINT
    manifest = _read_manifest(Path(run_dir))
    if manifest.get("config_hash") != config.digest():
        raise ModelError(
            f"{path}: belongs to another run than {Path(run_dir) / MANIFEST} "
            f"(config hash {config.digest()}, not {manifest.get('config_hash')})"
        )
    recorded = manifest.get("data")
    recorded = recorded if isinstance(recorded, dict) else {}
    for file in data_files:
        if not file.is_file():
            raise ModelError(f"{path}: data file {file} is gone since the run started")
        if recorded.get(str(file)) != sha256(file):
            raise ModelError(f"{path}: data file {file} changed since the run started")


def _state_arrays(params: dict[str, np.ndarray], optimizer: Optimizer) -> dict[str, np.ndarray]:
    """Parameters and optimizer state by checkpoint key: ``param/NAME``, ``SLOT/NAME``."""
    arrays = {f"param/{name}": p for name, p in params.items()}
    for slot, state in optimizer.state.items():
        arrays.update({f"{slot}/{name}": s for name, s in state.items()})
    return arrays


def _check_array(path: Path, key: str, stored: np.ndarray | None, shape, dtype) -> None:
    # Checked, not cast: a float64 array cast to float32 would resume with other bits.
    if stored is None:
        raise ModelError(f"{path}: array '{key}' is missing")
    if stored.shape != shape or stored.dtype != dtype:
        raise ModelError(
            f"{path}: array '{key}' is {stored.dtype} {stored.shape}, "
            f"this run needs {dtype} {shape}"
        )


def _check_order(path: Path, order: np.ndarray, windows: int) -> None:
    """The stored epoch order, shape (T,), must be a permutation of the T training windows."""
    if (
        order.shape != (windows,)
        or order.dtype.kind not in "iu"
        or not np.array_equal(np.sort(order), np.arange(windows))
    ):
        raise ModelError(f"{path}: array 'order' is not an order of the {windows} training windows")


def _read_manifest(run_dir: Path) -> dict:
    path = run_dir / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{path}: missing, so {CHECKPOINT} cannot be matched to its run") from None
    except (OSError, ValueError) as err:
        raise ModelError(f"{path}: unreadable run manifest ({err})") from None
    if not isinstance(manifest, dict):
        raise ModelError(f"{path}: unreadable run manifest (not a JSON object)")
    return manifest


def _read(run_dir: Path) -> tuple[dict, dict[str, np.ndarray]]:
    path = Path(run_dir) / CHECKPOINT
    if not path.is_file():
        raise ModelError(f"{run_dir}: no {CHECKPOINT} to resume from")
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
        meta = json.loads(str(arrays.pop("meta")))
    except (OSError, ValueError, KeyError) as err:
        raise ModelError(f"{path}: unreadable checkpoint ({err})") from None
    if not isinstance(meta, dict):
        raise ModelError(f"{path}: unreadable checkpoint (its meta is not a JSON object)")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelError(f"{path}: checkpoint format {meta.get('format_version')!r} unknown")
    return meta, arrays


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def start_run(run_dir: Path, config: Config, data_files: list[Path]) -> None:
    """Make ``run_dir`` a new run's: drop an earlier run's checkpoint and model, write run.json.

    The checkpoint goes first: whatever happens next, ``--resume`` can no
    longer pick up the earlier run beside this run's manifest.
    """
    for name in (CHECKPOINT, *MODEL_FILES):
        (run_dir / name).unlink(missing_ok=True)
    write_manifest(run_dir, config, data_files)


def write_manifest(run_dir: Path, config: Config, data_files: list[Path]) -> None:
    """``run.json``: config and its hash, data checksums, seed, versions, BLAS threads."""
    packages = ("nerwin", "numpy", "click", "pyyaml", "tqdm", "seqeval")
    manifest = {
        "config": config.to_dict(),
        "config_hash": config.digest(),
        "seed": config.train.seed,
        "data": {str(path): sha256(path) for path in data_files},
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in packages},
        "threads": _thread_settings(),
    }
    text = json.dumps(manifest, indent=1)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(run_dir / MANIFEST, lambda f: f.write(text.encode("utf-8")))


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _thread_settings() -> dict:
    """The thread-count variables and, where threadpoolctl is installed, what BLAS uses."""
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_CORETYPE")
    settings: dict = {name: os.environ.get(name) for name in names}
    settings["cpu_count"] = os.cpu_count()
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return settings
    settings["blas"] = [
        {key: pool.get(key) for key in ("internal_api", "num_threads", "version", "architecture")}
        for pool in threadpool_info()
    ]
    return settings
