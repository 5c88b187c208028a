"""Training state on disk, for exact resume, and the run manifest.

A checkpoint is one file, ``checkpoint.npz`` in the run directory, written
atomically: the parameters (``param/NAME``), the optimizer's state
(``SLOT/NAME``), the epoch's window order, and a JSON string ``meta`` with
the config, the epoch and batch cursor, the optimizer's step count, the
random generator's state, the early-stopping bookkeeping and the training
time so far. Restoring all of it and running on gives the same weights, bit
for bit, as never having stopped.

``run.json`` beside it is the run's manifest. A checkpoint is resumed only
if its config is the manifest's and every data file still has the
manifest's SHA-256: otherwise the run would go on with another config or
other data than it started with. The manifest records the data files, and
a vectors file, by absolute path, so a run resumed from any working
directory reads the data it started with; a changed vectors file is
refused like a changed data file.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import sys
import zipfile
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

from nerwin.config import Config, config_from_dict
from nerwin.data.vectors import PACKAGED
from nerwin.errors import ConfigError, ModelError, OutputError
from nerwin.model import META_FILE, WEIGHTS_FILE, atomic_write
from nerwin.nn.optim import Optimizer

CHECKPOINT = "checkpoint.npz"
MANIFEST = "run.json"
RUN_FILES = (CHECKPOINT, WEIGHTS_FILE, META_FILE)  # a new run removes an earlier run's
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
    seconds: float = 0.0  # training time up to the checkpoint, summed over every resume
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


@dataclass
class Sources:
    """Where a resumed run reads what it started with, as ``run.json`` records it."""

    data_dir: Path  # the directory of the data files
    vectors: str  # features.vectors: a packaged name, a file's path, or "" for none


def read_run(run_dir: Path) -> tuple[Config, Sources]:
    """The config of the checkpointed run in ``run_dir``, and where its data and vectors are.

    ModelError if the checkpoint's config is damaged or not the one in
    ``run.json``, or a data or vectors file no longer has the SHA-256 recorded there.
    """
    path, manifest_path = Path(run_dir) / CHECKPOINT, Path(run_dir) / MANIFEST
    stored = _read(run_dir, arrays=False)[0].get("config")
    config = _stored_config(path, stored, "damaged checkpoint")
    manifest = _read_manifest(manifest_path)
    recorded = _stored_config(manifest_path, manifest.get("config"), "unreadable run manifest")
    _check_config(path, manifest_path, config, recorded)
    data_dir = _recorded_data_dir(manifest_path, manifest, config)
    _check_data(path, manifest, _data_files(config, data_dir))
    return config, Sources(data_dir, _recorded_vectors(path, manifest_path, manifest, config))


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
    progress = _read_progress(path, meta.get("progress"), order, windows)
    try:  # checked before the parameters are overwritten
        steps, lr = meta["optimizer"]["steps"], meta["optimizer"]["lr"]
        if not (_valid_field(steps, 0) and _valid_field(lr, 0.0) and lr > 0):
            raise ValueError(f"optimizer steps {steps!r}, lr {lr!r}")
        rng.bit_generator.state = meta["rng"]  # the generator checks the state it is given
    except (KeyError, TypeError, ValueError) as err:
        raise ModelError(f"{path}: damaged checkpoint ({type(err).__name__}: {err})") from None
    for key, target in targets.items():
        target[...] = arrays[key]
    optimizer.steps, optimizer.lr = steps, float(lr)
    return progress


def _read_progress(path: Path, stored, order: np.ndarray | None, windows: int) -> Progress:
    """The checkpoint's bookkeeping as a Progress, each field of the type and range it needs.

    A field missing takes its default, as in a checkpoint written before the
    field existed; any other damage is a ModelError naming the field.
    """
    if not isinstance(stored, dict):
        raise ModelError(f"{path}: damaged checkpoint (no progress)")
    try:
        progress = Progress(**stored, order=order)
    except TypeError as err:  # a field this version does not know
        raise ModelError(f"{path}: damaged checkpoint (progress: {err})") from None
    defaults = Progress()
    for key in stored:
        if not _valid_field(getattr(progress, key), getattr(defaults, key)):
            raise _damaged_progress(path, key)
    if progress.epoch < 1:
        raise _damaged_progress(path, "epoch")
    if progress.cursor > windows:
        raise _damaged_progress(path, "cursor")
    if progress.cursor and order is None:  # a new order would train other windows than it did
        raise _damaged_progress(path, "cursor")
    return progress


def _damaged_progress(path: Path, key: str) -> ModelError:
    return ModelError(f"{path}: damaged checkpoint (progress.{key})")


def _valid_field(value, default) -> bool:
    """Whether ``value`` can stand where Progress has ``default``: a count (int >= 0),
    a finite number, or a list."""
    if isinstance(default, list):
        return isinstance(value, list)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(default, int):
        return isinstance(value, int) and value >= 0
    return math.isfinite(value)


def _stored_config(path: Path, stored, problem: str) -> Config:
    """The config dict ``stored`` in ``path``; ModelError saying ``problem`` if it is none."""
    if not isinstance(stored, dict):
        raise ModelError(f"{path}: {problem} (no config)")
    try:
        return config_from_dict(stored)
    except ConfigError as err:
        raise ModelError(f"{path}: {problem} (config: {err})") from None


def _check_config(path: Path, manifest_path: Path, config: Config, recorded: Config) -> None:
    """ModelError unless the checkpoint's ``config`` is the one ``run.json`` ``recorded``.

    Both are compared as read with today's defaults: a key a later version
    adds is then on both sides, so an older run is not turned away, neither
    now nor after a checkpoint written by this version holds the key.
    """
    # ``output`` is not part of what a run is: a resume saves wherever the run now is.
    differing = [
        key for key in _differences(config.to_dict(), recorded.to_dict()) if key != "output"
    ]
    if differing:
        raise ModelError(
            f"{path}: belongs to another run than {manifest_path} "
            f"(config differs in {', '.join(differing)})"
        )


def _differences(first: dict, second: dict, prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two nested dicts of the same keys, sorted."""
    keys = []
    for key in sorted(first):
        a, b = first[key], second[key]
        if isinstance(a, dict):
            keys += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            keys.append(prefix + key)
    return keys


def _recorded_data_dir(manifest_path: Path, manifest: dict, config: Config) -> Path:
    """Where the run read its data: the manifest's absolute path, or (in a manifest written
    before one was recorded) ``data.dir`` as configured, read from the current directory."""
    data_dir = manifest.get("data_dir", config.data.dir)
    if not isinstance(data_dir, str):
        raise ModelError(f"{manifest_path}: unreadable run manifest (data_dir is not a path)")
    return Path(data_dir)


def _check_data(path: Path, manifest: dict, data_files: list[Path]) -> None:
    """ModelError unless every file of ``data_files`` has the SHA-256 ``run.json`` recorded."""
    recorded = manifest.get("data")
    recorded = recorded if isinstance(recorded, dict) else {}
    for file in data_files:
        if not file.is_file() and not file.is_absolute():
            # Only a manifest written before data_dir was recorded holds a relative path.
            raise ModelError(
                f"{path}: data file {file} not found from {Path.cwd()} (run.json has it "
                "relative to the directory the run was started in)"
            )
        _check_unchanged(path, "data", file, recorded.get(str(file)))


def _check_unchanged(path: Path, kind: str, file: Path, recorded_sha256: object) -> None:
    """ModelError unless ``file`` is still there with the SHA-256 ``run.json`` recorded."""
    if not file.is_file():
        raise ModelError(f"{path}: {kind} file {file} is gone since the run started")
    if recorded_sha256 != sha256(file):
        raise ModelError(f"{path}: {kind} file {file} changed since the run started")


def _recorded_vectors(path: Path, manifest_path: Path, manifest: dict, config: Config) -> str:
    """``features.vectors`` to resume with: the file ``run.json`` records, checked against
    its SHA-256, or (a packaged name, none, or an older manifest) the config's as it is."""
    recorded = manifest.get("vectors")
    if recorded is None:
        return config.features.vectors
    if not isinstance(recorded, dict) or not isinstance(recorded.get("path"), str):
        raise ModelError(f"{manifest_path}: unreadable run manifest (vectors)")
    file = Path(recorded["path"])
    _check_unchanged(path, "vectors", file, recorded.get("sha256"))
    return str(file)


def _data_files(config: Config, data_dir: Path) -> list[Path]:
    """The files of the splits ``config`` names, in ``data_dir``."""
    names = (config.data.train, config.data.dev, config.data.test)
    return [data_dir / name for name in names if name]


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


def _read_manifest(path: Path) -> dict:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{path}: missing, so {CHECKPOINT} cannot be matched to its run") from None
    except (OSError, ValueError) as err:
        raise ModelError(f"{path}: unreadable run manifest ({err})") from None
    if not isinstance(manifest, dict):
        raise ModelError(f"{path}: unreadable run manifest (not a JSON object)")
    return manifest


def _read(run_dir: Path, arrays: bool = True) -> tuple[dict, dict[str, np.ndarray]]:
    """The checkpoint's meta and its arrays; with ``arrays=False`` the meta alone (the
    arrays, an optimizer's state of a 400k-word table among them, are then not read)."""
    path = Path(run_dir) / CHECKPOINT
    if not path.is_file():
        raise ModelError(f"{run_dir}: no {CHECKPOINT} to resume from")
    try:
        with np.load(path, allow_pickle=False) as stored:  # reads a member when it is asked for
            meta = json.loads(str(stored["meta"]))
            names = [name for name in stored.files if name != "meta"] if arrays else []
            read = {name: stored[name] for name in names}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise ModelError(f"{path}: unreadable checkpoint ({err})") from None
    if not isinstance(meta, dict):
        raise ModelError(f"{path}: unreadable checkpoint (its meta is not a JSON object)")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelError(f"{path}: checkpoint format {meta.get('format_version')!r} unknown")
    return meta, read


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def start_run(run_dir: Path, config: Config) -> None:
    """Make ``run_dir`` a new run's: drop an earlier run's checkpoint and model, write run.json.

    The checkpoint goes first: whatever happens next, ``--resume`` can no
    longer pick up the earlier run beside this run's manifest. Any of these
    files in a directory that holds no nerwin run is the user's: OutputError,
    and nothing is removed.
    """
    _refuse_others_files(run_dir)
    try:
        for name in RUN_FILES:
            (run_dir / name).unlink(missing_ok=True)
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        where = err.filename or run_dir
        raise OutputError.of(where, err) from None
    write_manifest(run_dir, config)


def _refuse_others_files(run_dir: Path) -> None:
    """OutputError if ``run_dir`` holds a file start_run removes but no nerwin run is there.

    A run is known by its model.json (which records nerwin's version) or its
    run.json (which records nerwin among its packages).
    """
    if _written_by_nerwin(run_dir / META_FILE) or _written_by_nerwin(run_dir / MANIFEST):
        return
    for name in RUN_FILES:
        if (run_dir / name).exists():
            raise OutputError(
                f"{run_dir / name}: not beside a nerwin run's model.json or run.json, so not "
                "replaced; train into another directory (--output)"
            )


def _written_by_nerwin(path: Path) -> bool:
    """Whether ``path`` is a model.json or run.json that nerwin wrote."""
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # absent or unreadable
        return False
    if not isinstance(stored, dict):
        return False
    packages = stored.get("packages")
    return "nerwin_version" in stored or (isinstance(packages, dict) and "nerwin" in packages)


def write_manifest(run_dir: Path, config: Config) -> None:
    """``run.json``: config and hash, data directory and checksums, seed, versions, BLAS threads.

    The data directory is recorded resolved, and the data files in it, and so
    is a vectors file: a relative path is read from the directory the run is
    started in, and a resume may start elsewhere.
    """
    packages = ("nerwin", "numpy", "click", "pyyaml", "tqdm", "seqeval")
    data_dir = Path(config.data.dir).resolve()
    manifest = {
        "config": config.to_dict(),
        "config_hash": config.digest(),
        "seed": config.train.seed,
        "data_dir": str(data_dir),
        "data": {str(path): sha256(path) for path in _data_files(config, data_dir)},
        "vectors": _vectors_file(config.features.vectors),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in packages},
        "threads": _thread_settings(),
    }
    text = json.dumps(manifest, indent=1)
    atomic_write(run_dir / MANIFEST, lambda f: f.write(text.encode("utf-8")))


def _vectors_file(vectors: str) -> dict | None:
    """A vectors file's absolute path and SHA-256; None for a packaged name or no vectors."""
    if not vectors or vectors in PACKAGED:
        return None
    path = Path(vectors).resolve()
    return {"path": str(path), "sha256": sha256(path)}


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
