"""The training loop: batches, progress, dev evaluation, early stopping, the best model kept.

``train(config) -> Run`` never exits the process and never prints except
through ``log``: the CLI decides what reaches the terminal.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from nerwin.config import Config, TrainConfig
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
    interrupted: bool = False


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
    """Lines to the caller's ``log`` and to ``train.log``; records to ``metrics.jsonl``."""

    def __init__(self, output: Path, echo: Callable[[str], None]):
        output.mkdir(parents=True, exist_ok=True)
        self.echo = echo
        self.text = open(output / "train.log", "w", encoding="utf-8")  # noqa: SIM115
        self.records = open(output / "metrics.jsonl", "w", encoding="utf-8")  # noqa: SIM115

    def line(self, text: str) -> None:
        self.echo(text)
        self.text.write(text + "\n")
        self.text.flush()

    def record(self, values: dict) -> None:
        self.records.write(json.dumps(values) + "\n")
        self.records.flush()

    def close(self) -> None:
        self.text.close()
        self.records.close()


def _epoch_line(epoch: int, config: Config, loss: float, dev: dict | None, tps: float) -> str:
    dev_text = f"dev F1 {100 * dev['entity']['micro']['f1']:.2f}" if dev else "no dev"
    return (
        f"epoch {epoch}/{config.train.epochs} | loss {loss:.4f} | {dev_text} | "
        f"{tps / 1000:.1f}k tok/s"
    )


def train_epoch(
    model: WindowTagger,
    optimizer: Optimizer,
    windows: Windows,
    tags: np.ndarray,
    singleton: np.ndarray,
    rng: np.random.Generator,
    description: str,
) -> float:
    """One pass over the shuffled training windows; returns the mean batch loss."""
    config = model.config
    order = rng.permutation(len(windows))
    batch_size = config.train.batch_size
    total, batches = 0.0, 0
    bar = tqdm(total=len(order), desc=description, unit="tok", disable=None, leave=False)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        feeds = model.feeds(windows, rows, tags)
        feeds["word_ids"] = replace_rare_words(
            feeds["word_ids"], singleton, config.features.unk_replace, rng
        )
        total += model.loss(feeds)
        batches += 1
        optimizer.step(model.gradients())
        bar.update(len(rows))
        if batches % 50 == 0:
            bar.set_postfix(loss=f"{total / batches:.4f}")
    bar.close()
    return total / max(batches, 1)


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
    vector_words, vectors = [], None
    if config.features.vectors:
        vector_words, vectors = load_vectors(config.features.vectors)
    vocabs, word_counts = build_vocabs(train_sentences, config, vector_words)
    labels = build_labels(train_sentences)
    model = WindowTagger.create(config, vocabs, labels, rng)
    if vectors is not None:
        copy_vectors(model.params["word.table"], vocabs["word"], vector_words, vectors)
    windows = encode_windows([s.tokens for s in train_sentences], vocabs, config.features.window)
    label_index = {label: i for i, label in enumerate(labels)}
    tags = np.array([label_index[t] for s in train_sentences for t in s.tags], dtype=np.int64)
    data = TrainingData(
        windows, tags, word_counts == 1, read_split(config, "dev"), read_split(config, "test")
    )
    return model, data


def train(config: Config, log: Callable[[str], None] = print) -> Run:
    """Train on ``data.train``, select on ``data.dev``, score ``data.test``; save to ``output``."""
    rng = np.random.default_rng(config.train.seed)
    model, data = prepare(config, rng)
    run = Run(output=Path(config.output), model=model, best_epoch=0)
    logger = _Log(run.output, log)
    logger.line(
        f"training on {len(data.windows)} tokens ({len(data.windows.sentence_starts) - 1} "
        f"sentences), {len(model.labels)} tags, vocabulary {len(model.vocabs['word'])}, "
        f"{sum(p.size for p in model.params.values())} parameters"
    )
    started = time.perf_counter()
    _fit(model, data, rng, logger, run)
    run.seconds = time.perf_counter() - started
    run.scores = _final_scores(model, data.dev, data.test)
    model.save(
        run.output, {"best_epoch": run.best_epoch, "train_seconds": run.seconds, **run.scores}
    )
    logger.close()
    return run


def _fit(model: WindowTagger, data: TrainingData, rng, logger: _Log, run: Run) -> None:
    """Epochs until done, out of patience or interrupted; leaves the best epoch's parameters."""
    config = model.config
    optimizer = make_optimizer(config.train, model.params)
    best_f1, best_params, waited = -1.0, None, 0
    started = time.perf_counter()
    try:
        for epoch in range(1, config.train.epochs + 1):
            optimizer.lr = lr_at(config.train, epoch - 1)
            epoch_start = time.perf_counter()
            description = f"epoch {epoch}/{config.train.epochs}"
            loss = train_epoch(
                model, optimizer, data.windows, data.tags, data.singleton, rng, description
            )
            tokens_per_s = len(data.windows) / (time.perf_counter() - epoch_start)
            dev = evaluate(model, data.dev) if data.dev else None
            logger.line(_epoch_line(epoch, config, loss, dev, tokens_per_s))
            logger.record(_epoch_record(epoch, loss, optimizer.lr, tokens_per_s, dev, started))
            run.history.append({"epoch": epoch, "loss": loss, "dev": dev})
            f1 = dev["entity"]["micro"]["f1"] if dev else float(epoch)  # no dev: last is best
            if f1 > best_f1:
                best_f1, run.best_epoch, waited = f1, epoch, 0
                best_params = {name: p.copy() for name, p in model.params.items()}
                model.save(run.output, {"best_epoch": epoch, "dev": dev})
                continue
            waited += 1
            if config.train.patience and waited >= config.train.patience:
                logger.line(f"no better dev F1 for {waited} epochs: stopping")
                break
    except KeyboardInterrupt:
        run.interrupted = True
        logger.line("interrupted: keeping the best model so far")
    for name, best in (best_params or {}).items():
        model.params[name][...] = best


def _epoch_record(epoch, loss, lr, tokens_per_s, dev, started) -> dict:
    record = {"epoch": epoch, "loss": loss, "lr": lr, "tokens_per_s": tokens_per_s}
    record["elapsed_s"] = time.perf_counter() - started
    if dev:
        record["dev_f1"] = dev["entity"]["micro"]["f1"]
        record["dev_binary_f1"] = dev["binary"]["f1"]
    return record


def _final_scores(model, dev_sentences, test_sentences) -> dict[str, dict]:
    splits = {"dev": dev_sentences, "test": test_sentences}
    return {name: evaluate(model, sents) for name, sents in splits.items() if sents}
