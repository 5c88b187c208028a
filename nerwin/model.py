"""The window classifier, built from gates, and its save/load.

    x = concat(embeddings of the 2k+1 window tokens, every feature)   (B, N)
    z = W x + b;  h = f(z)                                           (B, H)
    p_ent = sigmoid(u h + c)          binary head                    (B,)
    p_tag = softmax(V h + e)          tag head                       (B, C)
    J = lambda BCE(p_ent, y_ent) + CE(p_tag, y) + mu/2 (|W|^2 + |V|^2 + |u|^2)

A model directory holds ``weights.npz`` (read with ``allow_pickle=False``)
and ``model.json`` (format version, resolved config, vocabularies, labels,
metrics). Both are written to a temporary name and renamed, so a crash
never leaves half a model.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np

from nerwin import __version__
from nerwin.config import Config, config_from_dict
from nerwin.data.conll import parse_tag
from nerwin.data.features import FEATURES, TokenEncoder, Windows, encode_windows, windows_of
from nerwin.data.tokenize import DEFAULT_PATTERN, check_pattern
from nerwin.data.vocab import Vocab
from nerwin.errors import ConfigError, ModelError, OutputError
from nerwin.inference import CAPACITY, Projections, keyable, preloaded
from nerwin.nn import gates
from nerwin.nn.gates import log_softmax, softmax_of_columns
from nerwin.nn.gradcheck import Check, check_arrays
from nerwin.nn.graph import Graph, Node

FORMAT_VERSION = 1
WEIGHTS_FILE, META_FILE = "weights.npz", "model.json"  # what save writes into a model directory
# Windows per pass of the graph outside training (dev evaluation, calibration). Its
# forward keeps a few (B, H) arrays: in 2,048-window passes, evaluating CoNLL-2003's dev
# set allocates at most 20 MB instead of 66 MB in passes of a whole 512-sentence batch,
# and takes no longer (bench/eval_memory.py).
GRAPH_CHUNK = 2048
ZIP_MAGIC = b"PK\x03\x04"  # how every .npz begins
REGULARISED = ("hidden.W", "tag.V", "binary.u")
BIASES = ("hidden.b", "binary.c", "tag.e")  # start at zero
WEIGHT_DTYPE = np.dtype(np.float32)  # what every trained model holds and saves


def feature_dims(config: Config) -> dict[str, int]:
    """Embedding size of each feature the config turns on, in window-vector order."""
    features = config.features
    dims = {
        "word": features.word_dim,
        "caps": features.caps_dim,
        "suffix": features.suffix_dim,
        "shape": features.shape_dim,
    }
    return {name: dim for name, dim in dims.items() if dim > 0}


def init_params(
    config: Config,
    vocabs: dict[str, Vocab],
    num_labels: int,
    rng: np.random.Generator,
    dtype=np.float32,
) -> dict[str, np.ndarray]:
    """Random parameters: embeddings uniform in +-init_scale, layers Glorot-uniform."""

    def glorot(shape: tuple) -> np.ndarray:
        fan_out, fan_in = shape if len(shape) == 2 else (1, shape[0])  # u is a 1 x H layer
        limit = np.sqrt(6.0 / (fan_out + fan_in))
        return rng.uniform(-limit, limit, size=shape).astype(dtype)

    def uniform_rows(shape: tuple, chunk: int = 16384) -> np.ndarray:
        # Drawn a chunk of rows at a time: the same numbers as one draw, without a
        # float64 copy of a 400k-row table.
        table = np.empty(shape, dtype=dtype)
        scale = config.features.init_scale
        for start in range(0, shape[0], chunk):
            rows = table[start : start + chunk]
            rows[...] = rng.uniform(-scale, scale, size=rows.shape)
        return table

    # Drawn in param_shapes' order, which the generator's stream depends on.
    return {
        name: uniform_rows(shape)
        if name.endswith(".table")
        else np.zeros(shape, dtype=dtype)
        if name in BIASES
        else glorot(shape)
        for name, shape in param_shapes(config, vocabs, num_labels).items()
    }


class WindowTagger:
    """A graph of gates with the two heads, plus what it needs to read text.

    params: name -> array, the very arrays the gates compute with, so an
    optimizer that updates them in place updates the model.
    """

    def __init__(
        self,
        config: Config,
        vocabs: dict[str, Vocab],
        labels: list[str],
        params: dict[str, np.ndarray],
        rng: np.random.Generator | None = None,
    ):
        self.config = config
        self.vocabs = vocabs
        self.labels = labels
        self.params = params
        self.metrics: dict = {}
        self.temperature = 1.0  # of the tag head's softmax, fitted on dev after training
        self.tokenizer = DEFAULT_PATTERN  # splits raw text at prediction time
        self.frequent_tokens: list[str] = []  # training tokens, most frequent first
        # Token strings -> feature ids, remembered; columns in the window vector's order.
        self.encoder = TokenEncoder({name: vocabs[name] for name in feature_dims(config)})
        self.projections: Projections | None = None  # set by freeze(), for prediction
        self.dropouts = [
            gates.Dropout(config.model.dropout, rng or np.random.default_rng(config.train.seed))
            for _ in range(2)
        ]
        self.graph = Graph(self._nodes())

    @classmethod
    def create(
        cls, config: Config, vocabs: dict[str, Vocab], labels: list[str], rng: np.random.Generator
    ) -> WindowTagger:
        """A fresh model with random parameters drawn from ``rng``."""
        params = init_params(config, vocabs, len(labels), rng)
        return cls(config, vocabs, labels, params, rng)

    def _nodes(self) -> list[Node]:
        p = self.params
        names = list(feature_dims(self.config))
        nodes = [
            Node(name, gates.Embedding(p[f"{name}.table"]), (f"{name}_ids",), f"{name}_vectors")
            for name in names
        ]
        activation = gates.ACTIVATIONS[self.config.model.activation]()
        return nodes + [
            Node("concat", gates.Concat(), tuple(f"{n}_vectors" for n in names), "x"),
            Node("input_dropout", self.dropouts[0], ("x",), "x_dropped"),
            Node("hidden", gates.Affine(p["hidden.W"], p["hidden.b"]), ("x_dropped",), "z"),
            Node("activation", activation, ("z",), "h"),
            Node("hidden_dropout", self.dropouts[1], ("h",), "h_dropped"),
            Node(
                "binary",
                gates.LogisticHead(p["binary.u"], p["binary.c"]),
                ("h_dropped", "y_ent"),
                "loss_ent",
            ),
            Node(
                "tag", gates.SoftmaxHead(p["tag.V"], p["tag.e"]), ("h_dropped", "y_tag"), "loss_tag"
            ),
        ]

    # -- training -----------------------------------------------------------

    def feeds(self, windows: Windows, rows: np.ndarray, tags: np.ndarray | None = None) -> dict:
        """Graph inputs for the windows ``rows``: ids per feature, shape (B, K); labels (B,)."""
        feeds = {f"{name}_ids": windows.ids[name][rows] for name in feature_dims(self.config)}
        if tags is not None:
            y_tag = tags[rows]
            feeds["y_tag"] = y_tag
            feeds["y_ent"] = (y_tag != self.labels.index("O")).astype(self.params["tag.V"].dtype)
        return feeds

    def loss(self, feeds: dict) -> float:
        """J for one batch (mean over its windows), leaving the caches for ``gradients``."""
        self.train_mode(True)
        values = self.graph.forward(feeds)
        loss = self.config.model.binary_weight * values["loss_ent"] + values["loss_tag"]
        l2 = self.config.model.l2
        if l2:  # skipped at 0: summing W's squares every batch costs as much as a small GEMM
            loss += 0.5 * l2 * sum(float(np.sum(self.params[name] ** 2)) for name in REGULARISED)
        return loss

    def gradients(self) -> dict[str, np.ndarray | gates.RowGrad]:
        """dJ/dparam for the batch of the last ``loss`` call; embedding tables as ``RowGrad``."""
        self.input_grads = self.graph.backward(
            {"loss_ent": self.config.model.binary_weight, "loss_tag": 1.0}
        )
        grads = {name: gate.grads[param] for name, gate, param in self.graph.parameters()}
        if self.config.model.l2:
            for name in REGULARISED:
                grads[name] = grads[name] + self.config.model.l2 * self.params[name]
        return grads

    def train_mode(self, training: bool) -> None:
        for dropout in self.dropouts:
            dropout.training = training
        if training:
            self.projections = None  # the parameters are about to change

    def freeze(self, capacity: int = CAPACITY) -> WindowTagger:
        """From now on, predict with the hidden layer read from per-token tables.

        The tables (``nerwin.inference``) hold what the parameters give now,
        so they must stay as they are: any training step unfreezes the model.
        They hold ``capacity`` tokens and start with the most frequent
        training tokens, as Chen & Manning's did, so most tokens of new text
        are found there.
        """
        tables = [self.params[f"{name}.table"] for name in self.encoder.vocabs]
        if not keyable(tables):  # vocabularies beyond any real model's: stay with the graph
            return self
        p = self.params
        heads = np.c_[p["tag.V"].T, p["binary.u"]], np.r_[p["tag.e"], p["binary.c"]]  # C + 1 out
        window, activation = self.config.features.window, self.config.model.activation
        self.projections = Projections(
            tables, p["hidden.W"], p["hidden.b"], heads, window, activation, capacity
        )
        preload = self.frequent_tokens[: preloaded(self.projections.capacity)]
        self.projections.token_rows(self.encoder.ids(preload))
        return self

    # -- inference ----------------------------------------------------------

    def probabilities(
        self, feeds: dict, temperature: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(p_ent: shape (B,), p_tag: shape (B, C)) for windows fed as ids, dropout off.

        p_tag is softmax(o / T) with the model's fitted temperature T, or ``temperature``.
        """
        h = self.hidden(feeds)
        T = self.temperature if temperature is None else temperature
        return self.gate("binary").predict(h), self.gate("tag").predict(h, T)

    def token_probabilities(
        self, ids: np.ndarray, lengths: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(p_ent: shape (T,), p_tag: shape (T, C)) for every token of whole sentences.

        ids: shape (T, F) from ``self.encoder``, the sentences one after
        another; lengths: shape (S,) tokens per sentence. A frozen model reads
        the hidden layer from its per-token tables; otherwise, or when a
        batch has more distinct tokens than those hold, the graph computes
        the same numbers, to float32 rounding, one product per window.
        """
        if self.projections is not None:
            scores = self.projections.scores(ids, lengths)  # (C + 1, T): both heads, one product
            if scores is not None:
                p_tag = softmax_of_columns(scores[:-1] / self.temperature)
                return gates.sigmoid(scores[-1]), p_tag
        windows = windows_of(ids, list(self.encoder.vocabs), lengths, self.config.features.window)
        parts = _chunks(self.feeds(windows, np.arange(len(windows))))
        p_ent, p_tag = zip(*map(self.probabilities, parts), strict=True)
        return np.concatenate(p_ent), np.concatenate(p_tag)

    def tag_scores(self, feeds: dict) -> np.ndarray:
        """o: shape (B, C), the tag head's scores before the softmax, GRAPH_CHUNK windows a pass."""
        tag = self.gate("tag")
        return np.concatenate([tag.scores(self.hidden(part)) for part in _chunks(feeds)])

    def hidden(self, feeds: dict) -> np.ndarray:
        """h: shape (B, H) for windows fed as ids, dropout off."""
        self.train_mode(False)
        return self.graph.forward(feeds, until="h_dropped")["h_dropped"]

    def gate(self, name: str) -> gates.Gate:
        return next(node.gate for node in self.graph.nodes if node.name == name)

    def calibrate(self, feeds: dict, gold: np.ndarray) -> float:
        """Fit and keep the temperature of the tag head on held-out windows; returns it.

        gold: shape (B,) label index of each window.
        """
        self.temperature = fit_temperature(self.tag_scores(feeds).astype(np.float64), gold)
        return self.temperature

    # -- save / load --------------------------------------------------------

    def load_weights(self, directory: str | Path) -> None:
        """Overwrite the parameters in place with those of ``directory``'s weights.npz.

        ModelError if it is missing, damaged, or holds an array unlike its parameter.
        """
        path = Path(directory) / WEIGHTS_FILE
        # Read each stored array straight into its parameter's memory: restoring the best
        # epoch of a 400k-word model then needs no second copy of its table.
        try:
            with path.open("rb") as f:
                # np.load and zipfile would take a bare .npy for a pickle or say only "not a
                # zip file"; the magic number says what the file should be.
                if f.read(len(ZIP_MAGIC)) != ZIP_MAGIC:
                    raise ModelError(f"{path}: not an .npz archive of weights")
                with zipfile.ZipFile(f) as archive:
                    for name, param in self.params.items():
                        _read_member(archive, path, name, param)
        except FileNotFoundError:
            raise ModelError(f"{path}: missing") from None
        except (OSError, ValueError, zipfile.BadZipFile) as err:
            raise ModelError(f"{path}: unreadable ({err})") from None

    def save(self, directory: str | Path, metrics: dict | None = None) -> None:
        """Write ``weights.npz`` and ``model.json`` atomically into ``directory``."""
        directory = Path(directory)
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise OutputError.of(directory, err) from None
        meta = {
            "format_version": FORMAT_VERSION,
            "nerwin_version": __version__,
            "config": self.config.to_dict(),
            "labels": self.labels,
            "temperature": self.temperature,
            "tokenizer": self.tokenizer,
            "frequent_tokens": self.frequent_tokens,
            "vocabs": {name: vocab.itos for name, vocab in self.vocabs.items()},
            "metrics": metrics or {},
        }
        atomic_write(directory / WEIGHTS_FILE, lambda f: np.savez(f, **self.params))
        text = json.dumps(meta, ensure_ascii=False, indent=1)
        atomic_write(directory / META_FILE, lambda f: f.write(text.encode("utf-8")))

    @classmethod
    def load(cls, directory: str | Path) -> WindowTagger:
        """Read a model directory, frozen for prediction.

        ModelError if it is missing, damaged or of another version.
        """
        directory = Path(directory)
        meta_path, weights_path = directory / META_FILE, directory / WEIGHTS_FILE
        if not meta_path.is_file() or not weights_path.is_file():
            raise ModelError(f"{directory}: no model here (train one with `nerwin train`)")
        meta = _read_meta(meta_path)
        shapes = param_shapes(meta.config, meta.vocabs, len(meta.labels))
        params = {name: np.empty(shape, WEIGHT_DTYPE) for name, shape in shapes.items()}
        model = cls(meta.config, meta.vocabs, meta.labels, params)
        model.load_weights(directory)
        model.metrics, model.temperature = meta.metrics, meta.temperature
        model.tokenizer, model.frequent_tokens = meta.tokenizer, meta.frequent_tokens
        return model.freeze()


def _read_member(archive: zipfile.ZipFile, path: Path, name: str, param: np.ndarray) -> None:
    """Read the stored array ``name`` of the weights.npz at ``path`` into ``param``, checked."""
    try:
        member = archive.open(f"{name}.npy")
    except KeyError:
        _check_weight(path, name, None, (param.shape, param.dtype))
    with member:
        major, _ = np.lib.format.read_magic(member)
        read_header = getattr(np.lib.format, f"read_array_header_{major}_0")
        shape, fortran_order, dtype = read_header(member)
        _check_weight(path, name, (shape, dtype), (param.shape, param.dtype))
        if fortran_order:  # read in place, so it must be in C order like `param`
            raise ModelError(f"{path}: '{name}' is stored in Fortran order")
        if _read_into(member, memoryview(param).cast("B")) < param.nbytes:
            raise ModelError(f"{path}: '{name}' is truncated")
    _check_finite(path, name, param)


def _read_into(stream, buffer: memoryview, block: int = 1 << 20) -> int:
    """Fill ``buffer`` from ``stream`` a megabyte at a time (a whole read would copy it all);
    the bytes read, fewer than ``len(buffer)`` if the stream ends first."""
    done = 0
    while done < len(buffer):
        count = stream.readinto(buffer[done : done + block])
        if not count:
            break
        done += count
    return done


def _chunks(feeds: dict) -> Iterator[dict]:
    """``feeds`` (arrays of B rows each) in pieces of GRAPH_CHUNK rows; one empty piece if B = 0."""
    rows = len(next(iter(feeds.values())))
    for start in range(0, max(rows, 1), GRAPH_CHUNK):  # so the caller's concatenate has an array
        yield {name: values[start : start + GRAPH_CHUNK] for name, values in feeds.items()}


def param_shapes(config: Config, vocabs: dict[str, Vocab], num_labels: int) -> dict[str, tuple]:
    """The shape of every parameter ``init_params`` makes, by name."""
    dims = feature_dims(config)
    width = (2 * config.features.window + 1) * sum(dims.values())
    hidden = config.model.hidden
    shapes = {f"{name}.table": (len(vocabs[name]), dim) for name, dim in dims.items()}
    return shapes | {
        "hidden.W": (hidden, width),
        "hidden.b": (hidden,),
        "binary.u": (hidden,),
        "binary.c": (1,),
        "tag.V": (num_labels, hidden),
        "tag.e": (num_labels,),
    }


def _check_weight(path, name: str, found: tuple | None, expected: tuple) -> None:
    """ModelError unless the stored array ``name``'s (shape, dtype) ``found`` is ``expected``.

    Another dtype would change the numbers, or fail inside numpy, and a text
    array would not compute at all.
    """
    if found != expected:
        shape, dtype = expected
        raise ModelError(f"{path}: '{name}' is missing or not {dtype} of shape {shape}")


def all_finite(array: np.ndarray) -> bool:
    """No NaN or infinity in ``array``, with no temporary of its size (a table is 70 MB).

    min and max are NaN when any entry is, and infinite when any entry is.
    """
    return array.size == 0 or bool(np.isfinite(array.min()) and np.isfinite(array.max()))


def _check_finite(path, name: str, array: np.ndarray) -> None:
    """ModelError if ``array`` holds a NaN (it would tag every token O with P = nan)."""
    if not all_finite(array):
        raise ModelError(f"{path}: '{name}' holds NaN or infinite values")


class _Meta(NamedTuple):
    """What a model reads from its model.json, every part checked."""

    config: Config
    vocabs: dict[str, Vocab]
    labels: list[str]
    temperature: float
    tokenizer: str
    frequent_tokens: list[str]
    metrics: dict


def _read_meta(meta_path: Path) -> _Meta:
    """model.json, checked for its version and for each part a model reads.

    Any damage is a ModelError naming the file and what is wrong with it.
    """
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as err:
        raise ModelError(f"{meta_path}: unreadable ({err})") from None
    if not isinstance(meta, dict):
        raise ModelError(f"{meta_path}: not a nerwin model description")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelError(
            f"{meta_path}: model format version {meta.get('format_version')!r}, "
            f"this nerwin reads version {FORMAT_VERSION}"
        )
    try:
        return _parse_meta(meta)
    except ValueError as err:
        raise ModelError(f"{meta_path}: {err}") from None


def _parse_meta(meta: dict) -> _Meta:
    """The parts of a model.json of this version; ValueError saying which part is damaged."""
    shapes = {"config": dict, "labels": list, "vocabs": dict}
    for key, kind in shapes.items():
        if not isinstance(meta.get(key), kind):
            raise ValueError(f"'{key}' is missing or malformed")
    try:
        config = config_from_dict(meta["config"])
    except ConfigError as err:
        raise ValueError(f"bad stored config: {err}") from None
    temperature = meta.get("temperature", 1.0)
    if type(temperature) not in (int, float) or not 0 < temperature < math.inf:  # no bool, NaN
        raise ValueError(f"temperature {temperature!r} is not a finite number > 0")
    tokenizer = meta.get("tokenizer", DEFAULT_PATTERN)
    check_pattern(tokenizer)
    frequent_tokens = meta.get("frequent_tokens", [])
    if not _is_strings(frequent_tokens):
        raise ValueError("'frequent_tokens' is not a list of strings")
    return _Meta(
        config=config,
        vocabs=_stored_vocabs(meta["vocabs"], config),
        labels=_stored_labels(meta["labels"]),
        temperature=float(temperature),
        tokenizer=tokenizer,
        frequent_tokens=frequent_tokens,
        metrics=meta.get("metrics", {}),
    )


def _stored_vocabs(stored: dict, config: Config) -> dict[str, Vocab]:
    """The vocabulary of each feature ``config`` turns on; ValueError if one is damaged."""
    vocabs = {}
    for name in feature_dims(config):
        if name not in stored:
            raise ValueError(f"no vocabulary for the feature '{name}'")
        if not _is_strings(stored[name]):
            raise ValueError(f"vocabulary '{name}': a vocabulary must be a list of strings")
        try:
            vocabs[name] = Vocab(stored[name])
        except ValueError as err:
            raise ValueError(f"vocabulary '{name}': {err}") from None
    return vocabs


def _stored_labels(labels: list) -> list[str]:
    """``labels`` if they are "O" and the B- and I- tags of each entity type, each once.

    Decoding reads them as IOB2, and a span's confidence needs both tags of its type.
    """
    if _is_strings(labels):  # a label that is no tag is then missing from `expected`
        types = sorted({tag.type for tag in map(parse_tag, labels) if tag} - {None})
        expected = ["O"] + [f"{prefix}-{t}" for t in types for prefix in ("B", "I")]
        if sorted(labels) == sorted(expected):
            return labels
    raise ValueError(
        f"labels {labels} are not the IOB2 tags 'O', B-X and I-X of each type X, each once"
    )


def _is_strings(value) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def fit_temperature(scores: np.ndarray, gold: np.ndarray) -> float:
    """The T > 0 that minimises the mean NLL of softmax(scores / T) at the gold labels.

    scores: shape (N, C); gold: shape (N,). The NLL is convex in 1/T, so a
    golden-section search over log T in [1/20, 20] finds the optimum.
    """
    rows = np.arange(len(gold))

    def nll(log_t: float) -> float:
        return float(-np.mean(log_softmax(scores / np.exp(log_t))[rows, gold]))

    low, high = np.log(0.05), np.log(20.0)
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    for _ in range(60):  # shrinks the interval by 0.618^60, far below float noise
        left, right = high - ratio * (high - low), low + ratio * (high - low)
        if nll(left) < nll(right):
            high = right
        else:
            low = left
    return float(np.exp((low + high) / 2.0))


def atomic_write(path: Path, write) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it over ``path``.

    An OSError (disk full, file too large, no permission) becomes an
    OutputError naming ``path``, which the OSError of a failed ``file.write``
    does not.
    """
    try:
        _write_and_rename(path, write)
    except OSError as err:
        raise OutputError.of(path, err) from None


def _write_and_rename(path: Path, write) -> None:
    """``atomic_write`` but for its error message; the temporary file never outlives it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        # mkstemp makes the file 0600; a model is shared like any file its owner writes.
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _umask() -> int:
    """The process's umask, which can only be read by setting it (and setting it back)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


# Read once: setting the umask, even for a moment, would change the mode of any file
# that another thread of the program creates meanwhile.
_UMASK = _umask()


def check_gradients(model: WindowTagger, feeds: dict) -> list[Check]:
    """Every parameter's gradient and dJ/dx against central differences (use float64).

    Dropout masks are drawn once and then frozen, so every evaluation of J
    sees the same function.
    """
    model.loss(feeds)
    for dropout in model.dropouts:
        dropout.frozen = True
    try:
        model.loss(feeds)
        analytic = model.gradients()
        x = model.graph.forward(feeds)["x"].copy()
        checks = check_arrays(lambda: model.loss(feeds), model.params, analytic)
        # dJ/dx: feed x itself, so the perturbed copy is what the hidden layer reads.
        grad_x = {"x": model.input_grads["x"]}
        return checks + check_arrays(lambda: model.loss({**feeds, "x": x}), {"x": x}, grad_x)
    finally:
        for dropout in model.dropouts:
            dropout.frozen = False


def gradcheck_small_model(config: Config, seed: int = 0) -> list[Check]:
    """Check a small float64 model of ``config``'s kind: its features, activation, l2, dropout.

    Sizes shrink (hidden 6, embeddings 3-4 wide, a vocabulary of 12 words)
    so every entry of every parameter can be checked in about a second.
    """
    small = config_from_dict(config.to_dict())
    small.model.hidden = 6
    for name in feature_dims(config):
        setattr(small.features, f"{name}_dim", 4 if name == "word" else 3)
    rng = np.random.default_rng(seed)
    words = ["the", "cat", "Sat", "on", "a", "MAT", "in", "Paris", "1996", ",", "UN", "."]
    vocabs = {name: Vocab.build(map(FEATURES[name], words))[0] for name in feature_dims(small)}
    labels = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    params = init_params(small, vocabs, len(labels), rng, dtype=np.float64)
    params = {name: p + rng.uniform(-0.5, 0.5, p.shape) for name, p in params.items()}
    model = WindowTagger(small, vocabs, labels, params, rng)
    windows = encode_windows([words[:7], words[7:]], vocabs, small.features.window)
    tags = rng.integers(0, len(labels), size=len(windows))
    return check_gradients(model, model.feeds(windows, np.arange(len(windows)), tags))
