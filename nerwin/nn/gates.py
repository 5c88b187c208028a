"""Gates: forward/backward pairs with hand-derived gradients.

Dimension letters, used in every docstring below:

    B  batch (windows in a minibatch)
    K  window width, 2k + 1
    D  feature dimension of one embedding table
    N  width of the concatenated window vector, K * (sum of the D's)
    H  hidden units
    C  tags (IOB2 labels, O included)
    V  rows of an embedding table

The contract (STYLE.md, habit 1): ``forward(*inputs) -> out`` keeps the one
cache its backward needs, overwritten on every call; ``backward(dout)``
returns the gradients of the inputs, in input order (``None`` for integer
inputs such as ids and labels), and stores the gradients of the gate's own
parameters in ``self.grads`` under the parameters' names.

Row-vector Jacobian convention, as in DESIGN.md: for z = W x + b with the
local error signal delta = dJ/dz, dJ/dW = delta^T x^T, dJ/db = delta^T and
dJ/dx = delta W. For a batch the rows of X are windows, so the same
formulas read grad_W = delta.T @ X and dX = delta @ W.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class RowGrad:
    """Gradient of an embedding table that is zero outside ``ids``.

    ids: shape (R,) distinct row indexes, sorted.
    values: shape (R, D) the gradient of each of those rows.
    """

    ids: np.ndarray
    values: np.ndarray

    def dense(self, shape: tuple[int, int]) -> np.ndarray:
        """The full gradient, shape (V, D); for checks, never for training."""
        full = np.zeros(shape, dtype=self.values.dtype)
        full[self.ids] = self.values
        return full


def segment_sum(ids: np.ndarray, rows: np.ndarray) -> RowGrad:
    """Sum the rows that share an id: a scatter-add without ``np.add.at``.

    ids: shape (M,) row indexes, repeats allowed.
    rows: shape (M, D) one gradient row per id.

    Sorting once and reducing each run of equal ids is several times faster
    than ``np.add.at``, and unlike ``grad[ids] += rows`` it keeps repeats.

    >>> g = segment_sum(np.array([3, 1, 3]), np.array([[1.0], [2.0], [4.0]]))
    >>> g.ids.tolist(), g.values.ravel().tolist()
    ([1, 3], [2.0, 5.0])
    """
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    run_starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    values = np.add.reduceat(rows[order], run_starts, axis=0)
    return RowGrad(sorted_ids[run_starts], values)


class Gate:
    """Base of every gate: parameters and their gradients by name."""

    def __init__(self, **params: np.ndarray):
        self.params: dict[str, np.ndarray] = params
        self.grads: dict[str, np.ndarray | RowGrad] = {}


class Embedding(Gate):
    """Look up one row of ``table`` (V, D) per id."""

    def __init__(self, table: np.ndarray):
        super().__init__(table=table)

    def forward(self, ids: np.ndarray) -> np.ndarray:
        """ids: shape (B, K) int -> vectors: shape (B, K, D)."""
        self.ids = ids
        return np.take(self.params["table"], ids, axis=0)

    def backward(self, dout: np.ndarray) -> tuple[None]:
        """dout: shape (B, K, D). Only the rows looked up get a gradient."""
        dim = dout.shape[-1]
        self.grads["table"] = segment_sum(self.ids.ravel(), dout.reshape(-1, dim))
        return (None,)


class Concat(Gate):
    """Join per-position features and flatten the window into one vector x."""

    def forward(self, *features: np.ndarray) -> np.ndarray:
        """features: shapes (B, K, D_i) -> x: shape (B, N), N = K * sum(D_i)."""
        self.dims = [f.shape[-1] for f in features]
        joined = np.concatenate(features, axis=2)  # (B, K, sum D_i)
        batch, width, dims = joined.shape
        return joined.reshape(batch, width * dims)  # not -1: B may be 0

    def backward(self, dout: np.ndarray) -> tuple[np.ndarray, ...]:
        """dout: shape (B, N) -> one gradient of shape (B, K, D_i) per input."""
        per_position = dout.reshape(dout.shape[0], -1, sum(self.dims))  # (B, K, sum D_i)
        cuts = np.cumsum(self.dims)[:-1]
        return tuple(np.split(per_position, cuts, axis=2))


class Affine(Gate):
    """z = W x + b for each row x of X; W: (H, N), b: (H,)."""

    def __init__(self, W: np.ndarray, b: np.ndarray):
        super().__init__(W=W, b=b)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: shape (B, N) -> z: shape (B, H)."""
        self.x = x
        return x @ self.params["W"].T + self.params["b"]

    def backward(self, delta: np.ndarray) -> tuple[np.ndarray]:
        """delta = dJ/dz: shape (B, H) -> dJ/dx: shape (B, N)."""
        self.grads["W"] = delta.T @ self.x  # delta^T x^T, summed over the batch
        self.grads["b"] = delta.sum(axis=0)
        return (delta @ self.params["W"],)


class Tanh(Gate):
    """h = tanh(z); f'(z) = 1 - h^2, so the output is the whole cache.

    Prediction's tables read tanh from a product of exponentials instead
    (nerwin/inference.py), so this gate has no in-place ``apply``.
    """

    def forward(self, z: np.ndarray) -> np.ndarray:
        """z: shape (B, H) -> h: shape (B, H)."""
        self.h = np.tanh(z)
        return self.h

    def backward(self, dout: np.ndarray) -> tuple[np.ndarray]:
        """dout = dJ/dh -> delta = dJ/dh * f'(z), the diagonal Jacobian."""
        return (dout * (1.0 - self.h * self.h),)


class ReLU(Gate):
    """h = max(z, 0)."""

    def forward(self, z: np.ndarray) -> np.ndarray:
        """z: shape (B, H) -> h: shape (B, H)."""
        self.active = z > 0
        return z * self.active

    @staticmethod
    def apply(z: np.ndarray) -> np.ndarray:
        """h = max(z, 0) written over z, no cache: prediction's form."""
        return np.maximum(z, 0.0, out=z)

    def backward(self, dout: np.ndarray) -> tuple[np.ndarray]:
        """dout: shape (B, H) -> dJ/dz: shape (B, H)."""
        return (dout * self.active,)


class HardTanh(Gate):
    """h = clip(z, -1, 1), Collobert's cheap tanh."""

    def forward(self, z: np.ndarray) -> np.ndarray:
        """z: shape (B, H) -> h: shape (B, H)."""
        self.inside = np.abs(z) < 1.0
        return np.clip(z, -1.0, 1.0)

    @staticmethod
    def apply(z: np.ndarray) -> np.ndarray:
        """h = clip(z, -1, 1) written over z, no cache: prediction's form."""
        return np.clip(z, -1.0, 1.0, out=z)

    def backward(self, dout: np.ndarray) -> tuple[np.ndarray]:
        """dout: shape (B, H) -> dJ/dz: shape (B, H)."""
        return (dout * self.inside,)


ACTIVATIONS = {"tanh": Tanh, "relu": ReLU, "hardtanh": HardTanh}


class Dropout(Gate):
    """Inverted dropout: zero each unit with probability ``rate`` while training.

    The mask is drawn from ``rng`` on each training forward; ``frozen``
    reuses the last mask, which is how a gradient check sees one function.
    """

    def __init__(self, rate: float, rng: np.random.Generator):
        super().__init__()
        self.rate = rate
        self.rng = rng
        self.training = True
        self.frozen = False
        self.mask: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: shape (B, N) -> x with units dropped and the rest scaled by 1/(1-rate)."""
        if not self.training or self.rate == 0.0:
            self.mask = None
            return x
        if not self.frozen:
            keep = self.rng.random(x.shape, dtype=np.float64) >= self.rate
            self.mask = keep.astype(x.dtype) / np.asarray(1.0 - self.rate, dtype=x.dtype)
        return x * self.mask

    def backward(self, dout: np.ndarray) -> tuple[np.ndarray]:
        """dout: shape (B, N) -> dJ/dx: shape (B, N)."""
        return (dout if self.mask is None else dout * self.mask,)


def sigmoid(s: np.ndarray) -> np.ndarray:
    """Logistic function, written with tanh so it never overflows."""
    return 0.5 * (1.0 + np.tanh(0.5 * s))


def across_rows(combine: np.ufunc, a: np.ndarray) -> np.ndarray:
    """combine.reduce(a, axis=1) for a: shape (B, C), C >= 1, one column at a time: shape (B,),
    the columns combined left to right (for np.add, numpy's own order may round differently).

    numpy reduces a row of a few labels many times slower than it combines
    two columns of B rows, and a batch has many rows and few labels.
    """
    reduced = a[:, 0].copy()
    for column in a.T[1:]:
        combine(reduced, column, out=reduced)
    return reduced


def log_softmax(o: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax of scores o: shape (B, C), shifted so exp never overflows."""
    shifted = o - across_rows(np.maximum, o)[:, None]
    return shifted - np.log(across_rows(np.add, np.exp(shifted)))[:, None]


def softmax(o: np.ndarray) -> np.ndarray:
    """Row-wise softmax of scores o: shape (B, C), shifted so exp never overflows."""
    return softmax_of_columns(np.ascontiguousarray(o.T))


def softmax_of_columns(by_label: np.ndarray) -> np.ndarray:
    """Softmax of each column of scores by_label: shape (C, B), shifted so exp never
    overflows -> shape (B, C), a row per column.

    The rows of a C-contiguous by_label are contiguous, so ``across_rows``
    over its transpose combines whole rows, a pass over B floats per label,
    in the same left-to-right order as softmax's rows: the same bits.
    """
    e = by_label - by_label.max(axis=0)  # (C, B)
    np.exp(e, out=e)
    e /= across_rows(np.add, e.T)
    return np.ascontiguousarray(e.T)


class LogisticHead(Gate):
    """Binary head: s = h u + c, p_ent = sigmoid(s), loss = mean BCE(p_ent, y_ent).

    u: shape (H,), c: shape (1,).
    """

    def __init__(self, u: np.ndarray, c: np.ndarray):
        super().__init__(u=u, c=c)

    def predict(self, h: np.ndarray) -> np.ndarray:
        """h: shape (B, H) -> p_ent: shape (B,)."""
        return sigmoid(h @ self.params["u"] + self.params["c"])

    def forward(self, h: np.ndarray, y_ent: np.ndarray) -> float:
        """h: shape (B, H), y_ent: shape (B,) 0/1 -> the mean loss over the batch."""
        s = h @ self.params["u"] + self.params["c"]  # (B,)
        self.h, self.y_ent, self.p_ent = h, y_ent, sigmoid(s)
        # BCE written as log(1 + e^s) - y s, exact for any s.
        return float(np.mean(np.logaddexp(0.0, s) - y_ent * s))

    def backward(self, dout: float) -> tuple[np.ndarray, None]:
        """dout: dJ/dloss, here the weight lambda -> (dJ/dh: shape (B, H), None)."""
        ds = dout * (self.p_ent - self.y_ent) / len(self.y_ent)  # (B,)  dJ/ds
        self.grads["u"] = self.h.T @ ds  # (dJ/ds) h
        self.grads["c"] = np.atleast_1d(ds.sum())
        return (np.outer(ds, self.params["u"]), None)  # (dJ/ds) u^T


class SoftmaxHead(Gate):
    """Tag head: o = V h + e, p_tag = softmax(o), loss = mean CE(p_tag, y).

    V: shape (C, H), e: shape (C,).
    """

    def __init__(self, V: np.ndarray, e: np.ndarray):
        super().__init__(V=V, e=e)

    def scores(self, h: np.ndarray) -> np.ndarray:
        """h: shape (B, H) -> o: shape (B, C), the scores before the softmax."""
        return h @ self.params["V"].T + self.params["e"]

    def predict(self, h: np.ndarray, temperature: float = 1.0) -> np.ndarray:
        """h: shape (B, H) -> p_tag = softmax(o / temperature): shape (B, C)."""
        return softmax(self.scores(h) / temperature)

    def forward(self, h: np.ndarray, y_tag: np.ndarray) -> float:
        """h: shape (B, H), y_tag: shape (B,) tag indexes -> the mean loss over the batch."""
        o = h @ self.params["V"].T + self.params["e"]  # (B, C)
        log_p_tag = log_softmax(o)
        self.h, self.y_tag, self.p_tag = h, y_tag, np.exp(log_p_tag)
        return float(-np.mean(log_p_tag[np.arange(len(y_tag)), y_tag]))

    def backward(self, dout: float) -> tuple[np.ndarray, None]:
        """dout: dJ/dloss -> (dJ/dh: shape (B, H), None)."""
        do = self.p_tag.copy()  # (B, C)  p_tag - y, scaled below
        do[np.arange(len(self.y_tag)), self.y_tag] -= 1.0
        do *= dout / len(self.y_tag)
        self.grads["V"] = do.T @ self.h  # (dJ/do)^T h^T
        self.grads["e"] = do.sum(axis=0)
        return (do @ self.params["V"], None)
