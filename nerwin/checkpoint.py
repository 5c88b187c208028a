"""Training state on disk, for exact resume, and the run manifest.

A checkpoint is one file, ``checkpoint.npz`` in the run directory, written
atomically: the parameters (``param/NAME``), the optimizer's state
(``SLOT/NAME``), the epoch's window order, and a JSON string ``meta`` with
the config, the epoch and batch cursor, the optimizer's step count, the
random generator's state and the early-stopping bookkeeping. Restoring all
of it and running on gives the same weights, bit for bit, as never having
stopped.
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
    arrays = {f"param/{name}": p for name, p in params.items()}
    for slot, state in optimizer.state.items():
        arrays.update({f"{slot}/{name}": s for name, s in state.items()})
    if progress.order is not None:
        arrays["order"] = progress.order
    arrays["meta"] = np.array(json.dumps(meta))
    atomic_write(run_dir / CHECKPOINT, lambda f: np.savez(f, **arrays))


def read_checkpoint_config(run_dir: Path) -> dict:
    """The config a checkpointed run was started with (as a dict)."""
    return _read(run_dir)[0]["config"]


def restore_checkpoint(
    run_dir: Path, params: dict[str, np.ndarray], optimizer: Optimizer, rng: np.random.Generator
) -> Progress:
    """Load the checkpoint into ``params``, ``optimizer`` and ``rng`` in place; its Progress."""
    meta, arrays = _read(run_dir)
    for name, p in params.items():
        p[...] = arrays[f"param/{name}"]
    for slot, state in optimizer.state.items():
        for name, s in state.items():
            s[...] = arrays[f"{slot}/{name}"]
    optimizer.steps = meta["optimizer"]["steps"]
    optimizer.lr = meta["optimizer"]["lr"]
    rng.bit_generator.state = meta["rng"]
    return Progress(**meta["progress"], order=arrays.get("order"))


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
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelError(f"{path}: checkpoint format {meta.get('format_version')!r} unknown")
    return meta, arrays


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
    atomic_write(run_dir / "run.json", lambda f: f.write(text.encode("utf-8")))


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
