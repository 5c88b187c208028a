"""YAML -> typed config, dotted ``--set`` overrides, validation.

One defaults block: the dataclasses below, every key commented. A config
file names only what it changes; ``--set section.key=value`` (parsed with
``yaml.safe_load``) wins over the file. Unknown keys and wrong types are
errors that name the key, and the file and line where the file set it.
"""

from __future__ import annotations

import codecs
import dataclasses
import hashlib
import json
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
)
PROBABILITIES = ("features.unk_replace", "model.dropout")


def _key_lines(path: Path, text: str) -> dict[str, int]:
    """Dotted key -> 1-based line where the YAML file sets it."""
    lines: dict[str, int] = {}

    def walk(node, prefix: str) -> None:
        if not isinstance(node, yaml.MappingNode):
            return
        for key_node, value_node in node.value:
            dotted = f"{prefix}{key_node.value}"
            lines[dotted] = key_node.start_mark.line + 1
            walk(value_node, dotted + ".")

    try:
        walk(yaml.compose(text), "")
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML ({getattr(err, 'problem', err)})") from None
    return lines


def _coerce(value: Any, expected: type, key: str) -> Any:
    """``value`` as ``expected``, or a ConfigError naming the key."""
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is str and value is None:
        return ""
    if isinstance(value, expected) and not (expected is int and isinstance(value, bool)):
        return value
    raise ConfigError(f"{key}: expected {expected.__name__}, got {value!r}")


def _apply(target: Any, values: dict[str, Any], prefix: str, where: dict[str, str]) -> None:
    """Set the dataclass ``target``'s fields from nested ``values``, checking keys and types."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where.get(prefix.rstrip('.'), '')}{prefix.rstrip('.')}: not a mapping")
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


def validate(config: Config) -> None:
    """Ranges and choices; raises ConfigError naming the first bad key."""

    def get(dotted: str) -> Any:
        section, key = dotted.split(".")
        return getattr(getattr(config, section), key)

    for key, options in CHOICES.items():
        if get(key) not in options:
            raise ConfigError(f"{key}: {get(key)!r} is not one of {', '.join(options)}")
    for key in POSITIVE:
        if get(key) <= 0:
            raise ConfigError(f"{key}: must be positive, got {get(key)}")
    for key in NON_NEGATIVE:
        if get(key) < 0:
            raise ConfigError(f"{key}: must not be negative, got {get(key)}")
    try:
        codecs.lookup(config.data.encoding)
    except LookupError:
        raise ConfigError(f"data.encoding: unknown encoding {config.data.encoding!r}") from None
    for key in PROBABILITIES:
        if not 0.0 <= get(key) < 1.0:
            raise ConfigError(f"{key}: must be in [0, 1), got {get(key)}")


def parse_override(text: str) -> dict[str, Any]:
    """ "a.b=value" -> {"a": {"b": value}}, value read as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text!r}: expected key=value, e.g. train.lr=0.01")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        raise ConfigError(f"--set {text!r}: the value is not valid YAML") from None
    nested: dict[str, Any] = {}
    parts = key.strip().split(".")
    inner = nested
    for part in parts[:-1]:
        inner = inner.setdefault(part, {})
    inner[parts[-1]] = value
    return nested


def load_config(path: str | Path | None = None, overrides: tuple[str, ...] = ()) -> Config:
    """Defaults, then the YAML file, then each ``--set`` override, then validation."""
    config = Config()
    if path is not None:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise ConfigError(f"{path}: cannot read config ({err.strerror})") from None
        lines = _key_lines(path, text)
        values = yaml.safe_load(text) or {}
        where = {key: f"{path}:{line}: " for key, line in lines.items()}
        where[""] = f"{path}: "
        _apply(config, values, "", where)
    for text in overrides:
        _apply(config, parse_override(text), "", {})
    validate(config)
    return config


def config_from_dict(values: dict[str, Any]) -> Config:
    """The config stored in a model directory, read back and checked."""
    config = Config()
    _apply(config, values, "", {})
    validate(config)
    return config
