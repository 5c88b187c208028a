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
import math
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from nerwin.checkpoint import (
    Progress,
    Sources,
    read_run,
    restore_checkpoint,
    save_checkpoint,
    start_run,
)
from nerwin.config import Config, TrainConfig
from nerwin.data.conll import Sentence, entity_type, read_conll
from nerwin.data.features import FEATURES, Windows, encode_windows
from nerwin.data.vectors import copy_vectors, load_vectors
from nerwin.data.vocab import Vocab
from nerwin.errors import DataError, ModelError, OutputError
from nerwin.inference import PRELOADED
from nerwin.model import WindowTagger, all_finite, feature_dims
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
    seconds: float = 0.0  # training time, summed over the run's every resume
    interrupted: bool = False  # stopped by Ctrl-C


def read_split(config: Config, split: str, data_dir: Path | None = None) -> list[Sentence] | None:
    """The sentences of ``data.<split>`` (read from ``data_dir``, by default ``data.dir``),
    or None when the config leaves it empty."""
    name = getattr(config.data, split)
    if not name:
        return None
    data = config.data
    return read_conll(
        Path(data_dir or data.dir) / name,
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


def frequent_tokens(sentences: list[Sentence], count: int = PRELOADED) -> list[str]:
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


class _LogFile:
    """A file of the run written a line at a time, each flushed at once so that a killed run
    keeps every line; an OSError is an OutputError naming the file."""

    def __init__(self, path: Path, mode: str):
        self.path = path
        try:
            self.file = open(path, mode, encoding="utf-8")  # noqa: SIM115
        except OSError as err:
            raise OutputError.of(path, err) from None

    def write_line(self, text: str) -> None:
        try:
            self.file.write(text + "\n")
            self.file.flush()
        except OSError as err:
            raise OutputError.of(self.path, err) from None

    def __enter__(self) -> _LogFile:
        return self

    def __exit__(self, exc_type, *_) -> None:
        try:
            self.file.close()
        except OSError as err:
            # Every line is flushed, so close fails only after a failed write, when it
            # flushes that text again: the write's error is already on its way out.
            if exc_type is None:
                raise OutputError.of(self.path, err) from None


@dataclass
class _Log:
    """Lines to the caller's ``echo`` and to ``train.log``; records to ``metrics.jsonl``."""

    echo: Callable[[str], None]
    text: _LogFile
    records: _LogFile

    def line(self, text: str) -> None:
        self.echo(text)
        self.text.write_line(text)

    def record(self, values: dict) -> None:
        self.records.write_line(json.dumps(values))


@contextmanager
def _open_log(
    output: Path, echo: Callable[[str], None], records: list[dict], resumed: bool
) -> Iterator[_Log]:
    """The run's log, its files open while the ``with`` lasts.

    A resumed run appends to ``train.log`` and rewrites ``metrics.jsonl`` from
    the checkpoint's records, dropping any written after the checkpoint.
    """
    text_mode = "a" if resumed else "w"
    with (
        _LogFile(output / "train.log", text_mode) as text,
        _LogFile(output / "metrics.jsonl", "w") as jsonl,
    ):
        log = _Log(echo, text, jsonl)
        for record in records:
            log.record(record)
        yield log


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
    ``progress.cursor`` short of the epoch's end. ModelError at the first batch
    whose loss is not finite.
    """
    config = model.config
    if progress.order is None:
        progress.order = rng.permutation(len(data.windows))
    batch_size, every = config.train.batch_size, config.train.checkpoint_batches
    description = f"epoch {progress.epoch}/{config.train.epochs}"
    # Closed even when divergence or a second Ctrl-C ends the epoch, so that no
    # half-drawn bar is left on the line of the error.
    with tqdm(
        total=len(progress.order),
        initial=progress.cursor,
        desc=description,
        unit="tok",
        disable=None,
        leave=False,
    ) as bar:
        while progress.cursor < len(progress.order) and not stop_requested():
            rows = progress.order[progress.cursor : progress.cursor + batch_size]
            feeds = model.feeds(data.windows, rows, data.tags)
            feeds["word_ids"] = replace_rare_words(
                feeds["word_ids"], data.singleton, config.features.unk_replace, rng
            )
            loss = model.loss(feeds)
            if not math.isfinite(loss):  # stop at once: the rest of the epoch would be NaN
                raise _diverged(config, progress.epoch, f"loss {loss}")
            progress.loss_sum += loss
            optimizer.step(model.gradients())
            progress.cursor += len(rows)
            progress.batches += 1
            bar.update(len(rows))
            if progress.batches % 50 == 0:
                bar.set_postfix(loss=f"{progress.loss_sum / progress.batches:.4f}")
            if every and progress.batches % every == 0 and progress.cursor < len(progress.order):
                checkpoint()
    return progress.loss_sum / max(progress.batches, 1)


@dataclass
class TrainingData:
    """Everything the loop reads: training windows and labels, and the sentences it scores."""

    windows: Windows
    tags: np.ndarray  # (T,) label index of each training token
    singleton: np.ndarray  # (V,) bool: words seen once in training, read as <unk> now and then
    dev: list[Sentence] | None
    test: list[Sentence] | None


def prepare(
    config: Config, rng: np.random.Generator, sources: Sources | None = None
) -> tuple[WindowTagger, TrainingData]:
    """Read the data, build vocabularies and labels, and a fresh model (vectors copied in).

    The data files and vectors are read from ``sources``, by default from
    ``data.dir`` and ``features.vectors``.
    """
    sources = sources or Sources(Path(config.data.dir), config.features.vectors)
    data_dir = sources.data_dir
    train_sentences = read_split(config, "train", data_dir)
    if not train_sentences:
        raise DataError(data_dir / config.data.train, None, "no training sentences")
    vectors = load_vectors(sources.vectors) if sources.vectors else None
    vocabs, word_counts = build_vocabs(train_sentences, config, vectors.words if vectors else [])
    labels = build_labels(train_sentences)
    model = WindowTagger.create(config, vocabs, labels, rng)
    model.frequent_tokens = frequent_tokens(train_sentences)
    if vectors is not None:
        copy_vectors(model.params["word.table"], vocabs["word"], vectors)
    windows = encode_windows([s.tokens for s in train_sentences], vocabs, config.features.window)
    label_index = {label: i for i, label in enumerate(labels)}
    tags = np.array([label_index[t] for s in train_sentences for t in s.tags], dtype=np.int64)
    dev, test = read_split(config, "dev", data_dir), read_split(config, "test", data_dir)
    return model, TrainingData(windows, tags, word_counts == 1, dev, test)


def train(config: Config, log: Callable[[str], None] = print) -> Run:
    """Train on ``data.train``, select on ``data.dev``, score ``data.test``; save to ``output``.

    An earlier run's checkpoint and model in ``output`` are removed once the
    data has been read, and a checkpoint of the untrained state is written,
    so ``--resume`` after a kill in epoch 1 continues this run, not that one.
    """
    rng = np.random.default_rng(config.train.seed)
    model, data = prepare(config, rng)
    optimizer = make_optimizer(config.train, model.params)
    start_run(Path(config.output), config)
    loop = _Loop(model, data, optimizer, rng, Progress())
    loop.checkpoint()
    return _run(loop, log)


def resume(run_dir: str | Path, log: Callable[[str], None] = print) -> Run:
    """Continue the run in ``run_dir`` from its checkpoint, exactly as if it had never stopped.

    A run that had already ended trains no more, and only saves its final
    model. ModelError if the checkpoint is not the run's of ``run.json``, a
    data or vectors file has changed since, or the checkpoint's arrays do not
    fit the model.
    """
    run_dir = Path(run_dir)
    config, sources = read_run(run_dir)
    config.output = str(run_dir)
    rng = np.random.default_rng(config.train.seed)
    model, data = prepare(config, rng, sources)
    optimizer = make_optimizer(config.train, model.params)
    progress = restore_checkpoint(run_dir, model.params, optimizer, rng, len(data.windows))
    loop = _Loop(model, data, optimizer, rng, progress)
    if loop.ended():
        opening = f"run {run_dir} had already ended: saving its final model"
    else:
        opening = f"resuming {run_dir} at epoch {progress.epoch}, window {progress.cursor}"
    return _run(loop, log, opening)


def calibrate_on(model: WindowTagger, sentences: list[Sentence]) -> float:
    """Fit the tag head's temperature on the tokens of ``sentences`` whose tag the model knows."""
    windows = model.encoder.windows([s.tokens for s in sentences], model.config.features.window)
    index = {label: i for i, label in enumerate(model.labels)}
    gold = np.array([index.get(tag, -1) for s in sentences for tag in s.tags])
    known = np.flatnonzero(gold >= 0)
    return model.calibrate(model.feeds(windows, known), gold[known])


def _run(loop: _Loop, echo: Callable[[str], None], opening: str | None = None) -> Run:
    """The epochs from ``loop.progress`` on, then the final scores of the best model.

    ``opening`` is the line a resumed run's log starts with; None for a new run.
    """
    model, data, progress = loop.model, loop.data, loop.progress
    output = Path(model.config.output)
    with _open_log(output, echo, progress.history, opening is not None) as log:
        if opening:
            log.line(opening)
        log.line(
            f"training on {len(data.windows)} tokens ({len(data.windows.sentence_starts) - 1} "
            f"sentences), {len(model.labels)} tags, vocabulary {len(model.vocabs['word'])}, "
            f"{sum(p.size for p in model.params.values())} parameters"
        )
        interrupted = loop.fit(log)
        run = Run(
            output,
            model,
            progress.best_epoch,
            progress.history,
            seconds=progress.seconds,
            interrupted=interrupted,
        )
        _finish(run, data, log)
    return run


def _finish(run: Run, data: TrainingData, log: _Log) -> None:
    """Take back the best epoch's weights, fit the temperature on dev, score, save the model.

    After Ctrl-C before any epoch ended, the model kept is the one after the
    last complete batch.
    """
    model = run.model
    if run.interrupted:
        kept = f"epoch {run.best_epoch}'s" if run.best_epoch else "the last complete batch's"
        log.line(f"interrupted: keeping {kept} model; --resume goes on from here")
    if run.best_epoch:  # the best epoch's weights are the saved model's
        model.load_weights(run.output)
    if data.dev:
        temperature = calibrate_on(model, data.dev)
        log.line(f"tag head temperature fitted on dev: {temperature:.3f}")
    run.scores = _final_scores(model, data.dev, data.test)
    model.save(
        run.output, {"best_epoch": run.best_epoch, "train_seconds": run.seconds, **run.scores}
    )


@dataclass
class _Loop:
    """What the epochs of a run share, and the steps that move it on."""

    model: WindowTagger
    data: TrainingData
    optimizer: Optimizer
    rng: np.random.Generator
    progress: Progress
    clock: float = field(default_factory=time.perf_counter)  # when progress.seconds was updated

    def ended(self) -> bool:
        """Whether the run has trained its last epoch or run out of patience."""
        return self.progress.epoch > self.model.config.train.epochs or self._out_of_patience()

    def fit(self, log: _Log) -> bool:
        """Epochs until the run has ended (``ended()``) or Ctrl-C.

        The end is tested before an epoch, not after it, so resuming a run that
        had already ended trains nothing more. Returns whether Ctrl-C stopped it.
        """
        self.clock = time.perf_counter()
        # A diverging run is reported once, as a non-finite loss or weight, not by
        # numpy's warnings from every overflowing batch.
        with _CtrlC() as ctrl_c, np.errstate(over="ignore", invalid="ignore"):
            while not self.ended() and not ctrl_c.requested:
                self.epoch(log, stop_requested=lambda: ctrl_c.requested)
        # A Ctrl-C in the last epoch's last batch cut nothing short: the run has ended.
        return ctrl_c.requested and not self.ended()

    def epoch(self, log: _Log, stop_requested: Callable[[], bool]) -> None:
        """Train the rest of ``progress.epoch``, score it on dev, keep it if best; checkpoint.

        Stopped before its end, it only checkpoints where it stopped: a resumed
        run scores the epoch. ModelError, with nothing of the epoch saved, if
        training has diverged.
        """
        progress = self.progress
        self.optimizer.lr = lr_at(self.model.config.train, progress.epoch - 1)
        started, windows_left = time.perf_counter(), len(self.data.windows) - progress.cursor
        model, optimizer, data, rng = self.model, self.optimizer, self.data, self.rng
        loss = train_epoch(
            model, optimizer, data, rng, progress, self.checkpoint, stop_requested=stop_requested
        )
        if progress.cursor < len(data.windows):  # no dev score, no epoch line: not yet an epoch
            self.checkpoint()
            return
        self._check_finite()  # before _score saves the weights as the model
        self._score(log, loss, windows_left / (time.perf_counter() - started))
        progress.epoch += 1
        progress.cursor, progress.loss_sum, progress.batches, progress.order = 0, 0.0, 0, None
        self.checkpoint()

    def checkpoint(self) -> None:
        """Save all that a resume needs, the training time so far included.

        ModelError, and nothing saved, if training has diverged.
        """
        self._check_finite()
        now = time.perf_counter()
        self.progress.seconds += now - self.clock
        self.clock = now
        config = self.model.config
        save_checkpoint(
            Path(config.output), config, self.model.params, self.optimizer, self.rng, self.progress
        )

    def _score(self, log: _Log, loss: float, tokens_per_s: float) -> None:
        """Log the epoch just trained with its dev score; save the model if it is the best yet."""
        config, progress = self.model.config, self.progress
        dev = evaluate(self.model, self.data.dev) if self.data.dev else None
        log.line(_epoch_line(progress.epoch, config, loss, dev, tokens_per_s))
        record = _epoch_record(progress.epoch, loss, self.optimizer.lr, tokens_per_s, dev)
        log.record(record)
        progress.history.append(record)
        f1 = dev["entity"]["micro"]["f1"] if dev else float(progress.epoch)  # no dev: last wins
        if f1 > progress.best_f1:
            progress.best_f1, progress.best_epoch, progress.waited = f1, progress.epoch, 0
            self.model.save(config.output, {"best_epoch": progress.epoch, "dev": dev})
        else:
            progress.waited += 1
            if self._out_of_patience() and progress.epoch < config.train.epochs:
                log.line(f"no better dev F1 for {progress.waited} epochs: stopping")

    def _check_finite(self) -> None:
        """ModelError if a weight has overflowed, before the weights are saved: non-finite
        weights would be refused by every later load. The batches' losses cannot tell, as
        each is computed before its batch's step."""
        for name, param in self.model.params.items():
            if not all_finite(param):
                raise _diverged(self.model.config, self.progress.epoch, f"'{name}' not finite")

    def _out_of_patience(self) -> bool:
        patience = self.model.config.train.patience
        return bool(patience) and self.progress.waited >= patience


def _diverged(config: Config, epoch: int, sign: str) -> ModelError:
    return ModelError(
        f"{config.output}: training diverged in epoch {epoch} ({sign}); try a lower train.lr"
    )


def _epoch_record(epoch, loss, lr, tokens_per_s, dev) -> dict:
    record = {"epoch": epoch, "loss": loss, "lr": lr, "tokens_per_s": tokens_per_s}
    if dev:
        record["dev_f1"] = dev["entity"]["micro"]["f1"]
        record["dev_binary_f1"] = dev["binary"]["f1"]
    return record


def _final_scores(model, dev_sentences, test_sentences) -> dict[str, dict]:
    splits = {"dev": dev_sentences, "test": test_sentences}
    return {name: evaluate(model, sents) for name, sents in splits.items() if sents}
