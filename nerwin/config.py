"""YAML -> typed config, dotted ``--set`` overrides, validation.

One defaults block: the dataclasses below, every key commented. A config
file names only what it changes; ``--set section.key=value`` (parsed with
``yaml.safe_load``) wins over the file. Unknown keys and wrong types are
errors that name the key, and the file and line where the file set it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from nerwin.errors import ConfigError


@dataclass
class DataConfig:
    dir: str = "data/sample"  # folder the three file names below are relative to
    train: str = "train.conll"  # training sentences
    dev: str = "dev.conll"  # model selection and early stopping; "" for none
    test: str = "test.conll"  # scored once at the end; "" for none
    scheme: str = "auto"  # tag scheme of the files: auto | IOB1 | IOB2 | BIOES
    encoding: str = "utf-8"  # text encoding (latin-1 for CoNLL-2002)
    token_column: int = 0  # column of the token
    tag_column: int = -1  # column of the tag; negative counts from the end


@dataclass
class FeaturesConfig:
    window: int = 2  # k: each token sees k words either side, a window of 2k+1
    word_dim: int = 50  # word embedding size (must match the vectors if given)
    caps_dim: int = 5  # capitalisation embedding size; 0 turns it off
    suffix_dim: int = 0  # embedding size of the last three characters; 0 turns it off
    shape_dim: int = 0  # embedding size of the word shape (Xxxx, dd-dd); 0 turns it off
    vectors: str = (
        ""  # pretrained word vectors: "" none, glove-6b-50d, or a GloVe/word2vec .txt(.gz)
    )
    min_count: int = 1  # training words seen fewer times than this are <unk>
    unk_replace: float = 0.5  # probability a singleton training word is read as <unk>
    init_scale: float = 0.1  # random embeddings are uniform in +-init_scale


@dataclass
class ModelConfig:
    hidden: int = 300  # H, units of the hidden layer
    activation: str = "tanh"  # tanh | relu | hardtanh
    binary_weight: float = 1.0  # lambda, the weight of the binary entity head's loss
    l2: float = 0.0  # mu, L2 penalty on W, V and u
    dropout: float = 0.0  # dropout on the window vector and the hidden layer while training
    decode: str = "viterbi"  # viterbi (valid IOB2 only) | argmax


@dataclass
class TrainConfig:
    seed: int = 1  # seeds initialisation, shuffling and dropout: same seed, same model
    epochs: int = 20  # passes over the training data at most
    batch_size: int = 128  # windows per update
    optimizer: str = "adam"  # adam | adagrad | sgd
    lr: float = 0.001  # learning rate
    lr_decay: float = 0.0  # the rate in epoch e is lr / (1 + lr_decay * e)
    momentum: float = 0.9  # sgd only
    patience: int = 5  # stop after this many epochs without a better dev F1; 0 never stops
    checkpoint_batches: int = 0  # also checkpoint every this many batches; 0: at epoch ends only


@dataclass
class Config:
    output: str = "runs/sample"  # directory of the trained model, its metrics and log
    data: DataConfig = field(default_factory=DataConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def digest(self) -> str:
        """A short hash of the resolved config, for run manifests."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


CHOICES = {
    "data.scheme": ("auto", "IOB1", "IOB2", "BIOES"),
    "model.activation": ("tanh", "relu", "hardtanh"),
    "model.decode": ("viterbi", "argmax"),
    "train.optimizer": ("adam", "adagrad", "sgd"),
}
POSITIVE = ("model.hidden", "train.epochs", "train.batch_size", "train.lr", "features.word_dim")
NON_NEGATIVE = (
    "train.seed",
    "features.window",
    "features.caps_dim",
    "features.suffix_dim",
    "features.shape_dim",
    "features.min_count",
    "features.init_scale",
    "model.binary_weight",
    "model.l2",
    "train.lr_decay",
    "train.patience",
    "train.checkpoint_batches",
)
FRACTIONS = ("features.unk_replace", "model.dropout", "train.momentum")  # in [0, 1)


def _read_yaml(path: Path) -> tuple[Any, dict[str, str]]:
    """The file's values, and for each dotted key the ``FILE:LINE: `` where it is set."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read config ({getattr(err, 'strerror', err)})") from None
    where: dict[str, str] = {}

    def walk(node, prefix: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                dotted = f"{prefix}{key_node.value}"
                line = f"{path}:{key_node.start_mark.line + 1}: "
                if dotted in where:  # safe_load would silently keep the last one
                    raise ConfigError(f"{line}duplicate key '{dotted}'")
                where[dotted] = line
                walk(value_node, dotted + ".")

    try:
        walk(yaml.compose(text), "")
        values = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        location = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(err, "problem", None) or err
        raise ConfigError(f"{location}: not valid YAML ({problem})") from None
    where.setdefault("", f"{path}: ")  # the whole file, for what no one key says
    return values, where


def _coerce(value: Any, expected: type, key: str) -> Any:
    """``value`` as ``expected``, or a ConfigError naming the key."""
    if expected is float:
        return _finite_float(value, key)
    if expected is str and value is None:
        return ""
    if isinstance(value, expected) and not (expected is int and isinstance(value, bool)):
        return value
    raise ConfigError(f"{key}: expected {expected.__name__}, got {value!r}")


def _finite_float(value: Any, key: str) -> float:
    """``value`` as a finite float: nan and inf would pass every range check in ``validate``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"{key}: expected float, got {value!r}")
    try:
        number = float(value)  # a str too: YAML 1.1 reads 1e-3 (no dot) as one
    except ValueError:
        raise ConfigError(f"{key}: expected float, got {value!r}") from None
    except OverflowError:  # an int beyond the range of a float
        number = math.inf
    if not math.isfinite(number):
        raise ConfigError(f"{key}: must be a finite number, got {value!r}")
    return number


def _apply(target: Any, values: Any, prefix: str, where: dict[str, str]) -> None:
    """Set the dataclass ``target``'s fields from nested ``values``, checking keys and types."""
    section = prefix.rstrip(".")
    if values is None:  # a section with every key commented out
        return
    if not isinstance(values, dict):
        what = f"'{section}'" if section else "the top level"
        raise ConfigError(f"{where.get(section, '')}{what} must be a mapping of keys to values")
    hints = get_type_hints(type(target))
    for key, value in values.items():
        dotted = f"{prefix}{key}"
        location = where.get(dotted, "")
        if key not in hints:
            raise ConfigError(f"{location}unknown config key '{dotted}'")
        current = getattr(target, key)
        if dataclasses.is_dataclass(current):
            _apply(current, value, dotted + ".", where)
            continue
        try:
            setattr(target, key, _coerce(value, hints[key], dotted))
        except ConfigError as err:
            raise ConfigError(f"{location}{err}") from None


def check_encoding(encoding: str, prefix: str = "") -> None:
    """ConfigError unless ``encoding`` exists and keeps ASCII as is (files are split as bytes)."""
    try:
        ascii_compatible = "\n a".encode(encoding) == b"\n a"
    except LookupError:  # unknown, or a codec that is not a text encoding (rot13)
        raise ConfigError(f"{prefix}unknown text encoding {encoding!r}") from None
    if not ascii_compatible:
        raise ConfigError(f"{prefix}encoding {encoding!r} is not ASCII-compatible; use utf-8")


def validate(config: Config, where: dict[str, str] | None = None) -> None:
    """Ranges and choices; ConfigError naming the first bad key (and where it was set)."""
    where = where or {}

    def get(dotted: str) -> Any:
        section, key = dotted.split(".")
        return getattr(getattr(config, section), key)

    def fail(key: str, problem: str) -> None:
        raise ConfigError(f"{where.get(key, '')}{key}: {problem}")

    for key, options in CHOICES.items():
        if get(key) not in options:
            fail(key, f"{get(key)!r} is not one of {', '.join(options)}")
    for key in POSITIVE:
        if get(key) <= 0:
            fail(key, f"must be positive, got {get(key)}")
    for key in NON_NEGATIVE:
        if get(key) < 0:
            fail(key, f"must not be negative, got {get(key)}")
    for key in FRACTIONS:
        if not 0.0 <= get(key) < 1.0:
            fail(key, f"must be in [0, 1), got {get(key)}")
    if not config.output:
        fail("output", "must name a directory, got ''")
    check_encoding(config.data.encoding, f"{where.get('data.encoding', '')}data.encoding: ")


def parse_override(text: str) -> dict[str, Any]:
    """ "a.b=value" -> {"a": {"b": value}}, the value read as YAML."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {text!r}: expected key=value, e.g. train.lr=0.01")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        raise ConfigError(f"--set {text!r}: the value is not valid YAML") from None
    nested: dict[str, Any] = {}
    inner = nested
    *sections, last = key.split(".")
    for part in sections:
        inner = inner.setdefault(part, {})
    inner[last] = value
    return nested


def load_config(path: str | Path | None = None, overrides: tuple[str, ...] = ()) -> Config:
    """Defaults, then the YAML file, then each ``--set`` override, then validation."""
    config = Config()
    where: dict[str, str] = {}
    if path is not None:
        values, where = _read_yaml(Path(path))
        _apply(config, values, "", where)
    for text in overrides:
        where.pop(text.partition("=")[0].strip(), None)  # no longer the file's value
        _apply(config, parse_override(text), "", where)
    validate(config, where)
    return config


def config_from_dict(values: dict[str, Any]) -> Config:
    """The config stored in a model directory, read back and checked."""
    config = Config()
    _apply(config, values, "", {})
    validate(config)
    return config
