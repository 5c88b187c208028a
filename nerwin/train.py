"""The training loop: batches, progress, dev evaluation, early stopping, the best model kept.

``train(config) -> Run`` never exits the process and never prints except
through ``log``: the CLI decides what reaches the terminal.

Ctrl-C while epochs run stops training after the current batch: a SIGINT
handler, installed only for the epochs, sets a flag that is read between
batches, so no optimizer step is ever cut in half. The run then checkpoints
where it stopped and saves the best model so far as usual. A second Ctrl-C
aborts at once, and saves nothing more.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from nerwin.checkpoint import (
    Progress,
    check_run,
    read_checkpoint_config,
    restore_checkpoint,
    save_checkpoint,
    start_run,
)
from nerwin.config import Config, TrainConfig, config_from_dict
from nerwin.data.conll import Sentence, entity_type, read_conll
from nerwin.data.features import FEATURES, Windows, encode_windows
from nerwin.data.vectors import copy_vectors, load_vectors
from nerwin.data.vocab import Vocab
from nerwin.errors import DataError
from nerwin.model import WindowTagger, feature_dims
from nerwin.nn.optim import OPTIMIZERS, SGD, Optimizer
from nerwin.predict import evaluate


@dataclass
class Run:
    """What a training run leaves: the best model and how it got there."""

    output: Path
    model: WindowTagger
    best_epoch: int
    history: list[dict] = field(default_factory=list)
    scores: dict[str, dict] = field(default_factory=dict)  # split -> evaluate() result
    seconds: float = 0.0
    interrupted: bool = False  # stopped by Ctrl-C


def read_split(config: Config, split: str) -> list[Sentence] | None:
    """The sentences of ``data.<split>``, or None when the config leaves it empty."""
    name = getattr(config.data, split)
    if not name:
        return None
    data = config.data
    return read_conll(
        Path(data.dir) / name,
        token_column=data.token_column,
        tag_column=data.tag_column,
        scheme=data.scheme,
        encoding=data.encoding,
    )


def build_labels(sentences: list[Sentence]) -> list[str]:
    """ "O", then B- and I- of each entity type in the training data, types sorted."""
    types = sorted({entity_type(tag) for s in sentences for tag in s.tags} - {None})
    return ["O"] + [f"{prefix}-{t}" for t in types for prefix in ("B", "I")]


def build_vocabs(
    sentences: list[Sentence], config: Config, vector_words: list[str] = ()
) -> tuple[dict[str, Vocab], np.ndarray]:
    """One vocabulary per feature turned on, and the training count of each word, shape (V,).

    The word vocabulary is the training words, then every word that has a
    pretrained vector, so the whole table serves words never seen in training.
    """
    tokens = [token for s in sentences for token in s.tokens]
    vocabs = {}
    for name in feature_dims(config):
        min_count = config.features.min_count if name == "word" else 1
        vocabs[name], counts = Vocab.build(map(FEATURES[name], tokens), min_count)
        if name == "word":
            vocabs[name] = vocabs[name].extend(vector_words)
            word_counts = np.pad(counts, (0, len(vocabs[name]) - len(counts)))
    return vocabs, word_counts


def frequent_tokens(sentences: list[Sentence], count: int = 4096) -> list[str]:
    """The ``count`` most frequent training tokens, most frequent first (ties: first seen)."""
    counts = Counter(token for s in sentences for token in s.tokens)
    return [token for token, _ in counts.most_common(count)]


def make_optimizer(train: TrainConfig, params: dict[str, np.ndarray]) -> Optimizer:
    """The optimizer the config names, over ``params``."""
    if train.optimizer == "sgd":
        return SGD(params, train.lr, train.momentum)
    return OPTIMIZERS[train.optimizer](params, train.lr)


def lr_at(train: TrainConfig, epoch: int) -> float:
    """Learning rate of 0-based ``epoch``: lr / (1 + lr_decay * epoch)."""
    return train.lr / (1.0 + train.lr_decay * epoch)


def replace_rare_words(
    word_ids: np.ndarray, singleton: np.ndarray, rate: float, rng: np.random.Generator
) -> np.ndarray:
    """Read each singleton word as ``<unk>`` with probability ``rate``, so ``<unk>`` is learned.

    word_ids: shape (B, K); singleton: shape (V,) bool. Returns a new array.
    """
    replace = singleton[word_ids] & (rng.random(word_ids.shape) < rate)
    return np.where(replace, Vocab.unk_id, word_ids)


class _Log:
    """Lines to the caller's ``log`` and to ``train.log``; records to ``metrics.jsonl``.

    A resumed run appends to ``train.log`` and rewrites ``metrics.jsonl`` from
    the checkpoint's records, dropping any written after the checkpoint.
    """

    def __init__(
        self, output: Path, echo: Callable[[str], None], records: list[dict], resumed: bool
    ):
        output.mkdir(parents=True, exist_ok=True)
        self.echo = echo
        mode = "a" if resumed else "w"
        self.text = open(output / "train.log", mode, encoding="utf-8")  # noqa: SIM115
        self.records = open(output / "metrics.jsonl", "w", encoding="utf-8")  # noqa: SIM115
        for record in records:
            self.record(record)

    def line(self, text: str) -> None:
        self.echo(text)
        self.text.write(text + "\n")
        self.text.flush()

    def record(self, values: dict) -> None:
        self.records.write(json.dumps(values) + "\n")
        self.records.flush()

    def __enter__(self) -> _Log:
        return self

    def __exit__(self, *exc) -> None:
        self.text.close()
        self.records.close()


class _CtrlC:
    """While entered, the first SIGINT only sets ``requested``; the second aborts as usual.

    Signal handlers can only be set from the main thread; elsewhere, or when
    SIGINT is ignored or not Python's to handle, this changes nothing.
    """

    def __init__(self):
        self.requested = False
        self.previous = None  # the handler to put back

    def __enter__(self) -> _CtrlC:
        previous = signal.getsignal(signal.SIGINT)
        in_main_thread = threading.current_thread() is threading.main_thread()
        if in_main_thread and previous not in (None, signal.SIG_IGN):
            self.previous = previous
            signal.signal(signal.SIGINT, self._request)
        return self

    def _request(self, signum, frame) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, self.previous)  # so a second Ctrl-C aborts

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def _epoch_line(epoch: int, config: Config, loss: float, dev: dict | None, tps: float) -> str:
    dev_text = f"dev F1 {100 * dev['entity']['micro']['f1']:.2f}" if dev else "no dev"
    return (
        f"epoch {epoch}/{config.train.epochs} | loss {loss:.4f} | {dev_text} | "
        f"{tps / 1000:.1f}k tok/s"
    )


def train_epoch(
    model: WindowTagger,
    optimizer: Optimizer,
    data: TrainingData,
    rng: np.random.Generator,
    progress: Progress,
    checkpoint: Callable[[], None],
    stop_requested: Callable[[], bool] = lambda: False,
) -> float:
    """Train from ``progress.cursor`` to the end of the epoch; returns the mean batch loss.

    Every ``train.checkpoint_batches`` batches (if set) ``checkpoint()`` saves
    the state, so a killed run loses at most that many batches. Before each
    batch ``stop_requested()`` is asked; if true the epoch ends early, with
    ``progress.cursor`` short of the epoch's end.
    """
    config = model.config
    if progress.order is None:
        progress.order = rng.permutation(len(data.windows))
    batch_size, every = config.train.batch_size, config.train.checkpoint_batches
    description = f"epoch {progress.epoch}/{config.train.epochs}"
    bar = tqdm(
        total=len(progress.order),
        initial=progress.cursor,
        desc=description,
        unit="tok",
        disable=None,
        leave=False,
    )
    while progress.cursor < len(progress.order) and not stop_requested():
        rows = progress.order[progress.cursor : progress.cursor + batch_size]
        feeds = model.feeds(data.windows, rows, data.tags)
        feeds["word_ids"] = replace_rare_words(
            feeds["word_ids"], data.singleton, config.features.unk_replace, rng
        )
        progress.loss_sum += model.loss(feeds)
        optimizer.step(model.gradients())
        progress.cursor += len(rows)
        progress.batches += 1
        bar.update(len(rows))
        if progress.batches % 50 == 0:
            bar.set_postfix(loss=f"{progress.loss_sum / progress.batches:.4f}")
        if every and progress.batches % every == 0 and progress.cursor < len(progress.order):
            checkpoint()
    bar.close()
    return progress.loss_sum / max(progress.batches, 1)


@dataclass
class TrainingData:
    """Everything the loop reads: training windows and labels, and the sentences it scores."""

    windows: Windows
    tags: np.ndarray  # (T,) label index of each training token
    singleton: np.ndarray  # (V,) bool: words seen once in training, read as <unk> now and then
    dev: list[Sentence] | None
    test: list[Sentence] | None


def prepare(config: Config, rng: np.random.Generator) -> tuple[WindowTagger, TrainingData]:
    """Read the data, build vocabularies and labels, and a fresh model (vectors copied in)."""
    train_sentences = read_split(config, "train")
    if not train_sentences:
        raise DataError(Path(config.data.dir) / config.data.train, None, "no training sentences")
    vectors = load_vectors(config.features.vectors) if config.features.vectors else None
    vocabs, word_counts = build_vocabs(train_sentences, config, vectors.words if vectors else [])
    labels = build_labels(train_sentences)
    model = WindowTagger.create(config, vocabs, labels, rng)
    model.frequent_tokens = frequent_tokens(train_sentences)
    if vectors is not None:
        copy_vectors(model.params["word.table"], vocabs["word"], vectors)
    windows = encode_windows([s.tokens for s in train_sentences], vocabs, config.features.window)
    label_index = {label: i for i, label in enumerate(labels)}
    tags = np.array([label_index[t] for s in train_sentences for t in s.tags], dtype=np.int64)
    data = TrainingData(
        windows, tags, word_counts == 1, read_split(config, "dev"), read_split(config, "test")
    )
    return model, data


def train(config: Config, log: Callable[[str], None] = print) -> Run:
    """Train on ``data.train``, select on ``data.dev``, score ``data.test``; save to ``output``.

    An earlier run's checkpoint and model in ``output`` are removed once the
    data has been read, and a checkpoint of the untrained state is written,
    so ``--resume`` after a kill in epoch 1 continues this run, not that one.
    """
    rng = np.random.default_rng(config.train.seed)
    model, data = prepare(config, rng)
    optimizer = make_optimizer(config.train, model.params)
    output = Path(config.output)
    start_run(output, config, _data_files(config))
    progress = Progress()
    save_checkpoint(output, config, model.params, optimizer, rng, progress)
    return _run(model, data, optimizer, rng, progress, _Log(output, log, [], resumed=False))


def resume(run_dir: str | Path, log: Callable[[str], None] = print) -> Run:
    """Continue the run in ``run_dir`` from its checkpoint, exactly as if it had never stopped.

    ModelError if the checkpoint is not the run's of ``run.json``, a data file
    has changed since, or the checkpoint's arrays do not fit the model.
    """
    run_dir = Path(run_dir)
    config = config_from_dict(read_checkpoint_config(run_dir))
    check_run(run_dir, config, _data_files(config))  # before output changes the config's hash
    config.output = str(run_dir)
    rng = np.random.default_rng(config.train.seed)
    model, data = prepare(config, rng)
    optimizer = make_optimizer(config.train, model.params)
    progress = restore_checkpoint(run_dir, model.params, optimizer, rng, len(data.windows))
    log(f"resuming {run_dir} at epoch {progress.epoch}, window {progress.cursor}")
    logger = _Log(run_dir, log, progress.history, resumed=True)
    return _run(model, data, optimizer, rng, progress, logger)


def calibrate_on(model: WindowTagger, sentences: list[Sentence]) -> float:
    """Fit the tag head's temperature on the tokens of ``sentences`` whose tag the model knows."""
    windows = model.encoder.windows([s.tokens for s in sentences], model.config.features.window)
    index = {label: i for i, label in enumerate(model.labels)}
    gold = np.array([index.get(tag, -1) for s in sentences for tag in s.tags])
    known = np.flatnonzero(gold >= 0)
    return model.calibrate(model.feeds(windows, known), gold[known])


def _data_files(config: Config) -> list[Path]:
    names = (config.data.train, config.data.dev, config.data.test)
    return [Path(config.data.dir) / name for name in names if name]


def _run(model, data, optimizer, rng, progress: Progress, logger: _Log) -> Run:
    """The epochs from ``progress`` on, then the final scores of the best model."""
    run = Run(output=Path(model.config.output), model=model, best_epoch=progress.best_epoch)
    with logger:
        logger.line(
            f"training on {len(data.windows)} tokens ({len(data.windows.sentence_starts) - 1} "
            f"sentences), {len(model.labels)} tags, vocabulary {len(model.vocabs['word'])}, "
            f"{sum(p.size for p in model.params.values())} parameters"
        )
        started = time.perf_counter()
        run.interrupted = _fit(model, data, optimizer, rng, progress, logger)
        run.seconds = time.perf_counter() - started
        run.best_epoch, run.history = progress.best_epoch, progress.history
        _finish(run, data, logger)
    return run


def _finish(run: Run, data: TrainingData, logger: _Log) -> None:
    """Take back the best epoch's weights, fit the temperature on dev, score, save the model.

    After Ctrl-C before any epoch ended, the model kept is the one after the
    last complete batch.
    """
    model = run.model
    if run.interrupted:
        kept = f"epoch {run.best_epoch}'s" if run.best_epoch else "the last complete batch's"
        logger.line(f"interrupted: keeping {kept} model; --resume goes on from here")
    if run.best_epoch:  # the best epoch's weights are the saved model's
        model.load_weights(run.output)
    if data.dev:
        temperature = calibrate_on(model, data.dev)
        logger.line(f"tag head temperature fitted on dev: {temperature:.3f}")
    run.scores = _final_scores(model, data.dev, data.test)
    model.save(
        run.output, {"best_epoch": run.best_epoch, "train_seconds": run.seconds, **run.scores}
    )


def _fit(model, data, optimizer, rng, progress: Progress, logger: _Log) -> bool:
    """Epochs until the last, no better dev F1 for ``patience`` epochs, or Ctrl-C.

    Both ends are tested before an epoch, not after it, so resuming a run that
    had already ended trains nothing more. Returns whether Ctrl-C stopped it.
    """
    config = model.config

    def checkpoint() -> None:
        save_checkpoint(Path(config.output), config, model.params, optimizer, rng, progress)

    with _CtrlC() as ctrl_c:
        while progress.epoch <= config.train.epochs and not ctrl_c.requested:
            if config.train.patience and progress.waited >= config.train.patience:
                logger.line(f"no better dev F1 for {progress.waited} epochs: stopping")
                break
            _epoch(model, data, optimizer, rng, progress, logger, checkpoint, ctrl_c)
        return ctrl_c.requested


def _epoch(model, data, optimizer, rng, progress, logger, checkpoint, ctrl_c: _CtrlC) -> None:
    """Train the rest of ``progress.epoch``, score it on dev, keep it if best; checkpoint.

    Stopped by Ctrl-C before its end, it only checkpoints where it stopped.
    """
    config = model.config
    optimizer.lr = lr_at(config.train, progress.epoch - 1)
    epoch_start = time.perf_counter()
    windows_left = len(data.windows) - progress.cursor
    loss = train_epoch(model, optimizer, data, rng, progress, checkpoint, lambda: ctrl_c.requested)
    if progress.cursor < len(data.windows):  # Ctrl-C: half an epoch gets no dev score
        checkpoint()
        return
    tokens_per_s = windows_left / (time.perf_counter() - epoch_start)
    dev = evaluate(model, data.dev) if data.dev else None
    logger.line(_epoch_line(progress.epoch, config, loss, dev, tokens_per_s))
    record = _epoch_record(progress.epoch, loss, optimizer.lr, tokens_per_s, dev)
    logger.record(record)
    progress.history.append(record)
    f1 = dev["entity"]["micro"]["f1"] if dev else float(progress.epoch)  # no dev: last wins
    if f1 > progress.best_f1:
        progress.best_f1, progress.best_epoch, progress.waited = f1, progress.epoch, 0
        model.save(config.output, {"best_epoch": progress.epoch, "dev": dev})
    else:
        progress.waited += 1
    progress.epoch += 1
    progress.cursor, progress.loss_sum, progress.batches, progress.order = 0, 0.0, 0, None
    checkpoint()


def _epoch_record(epoch, loss, lr, tokens_per_s, dev) -> dict:
    record = {"epoch": epoch, "loss": loss, "lr": lr, "tokens_per_s": tokens_per_s}
    if dev:
        record["dev_f1"] = dev["entity"]["micro"]["f1"]
        record["dev_binary_f1"] = dev["binary"]["f1"]
    return record


def _final_scores(model, dev_sentences, test_sentences) -> dict[str, dict]:
    splits = {"dev": dev_sentences, "test": test_sentences}
    return {name: evaluate(model, sents) for name, sents in splits.items() if sents}
