"""Optimizers that update parameters in place, with sparse row updates for embeddings.

A gradient is a dense array of the parameter's shape, or a ``RowGrad``
that names the rows it touches; for those only the touched rows of the
parameter and of the optimizer's state change (the "lazy" form of
PyTorch's SparseAdam), so a 400k-row table costs what its batch rows cost.
"""

from __future__ import annotations

import numpy as np

from nerwin.nn.gates import RowGrad


def _rows(grad: np.ndarray | RowGrad) -> tuple[slice | np.ndarray, np.ndarray]:
    """(index into the parameter, gradient values at that index)."""
    if isinstance(grad, RowGrad):
        return grad.ids, grad.values
    return slice(None), grad


class Optimizer:
    """Holds the parameters by name and one state array per parameter per slot."""

    slots: tuple[str, ...] = ()

    def __init__(self, params: dict[str, np.ndarray], lr: float):
        self.params = params
        self.lr = lr
        self.steps = 0
        self.state = {
            # np.zeros, not zeros_like: the pages stay unmapped until written, so the state
            # of embedding rows no batch ever touches (most of GloVe's 400k) costs no memory.
            slot: {name: np.zeros(p.shape, p.dtype) for name, p in params.items()}
            for slot in self.slots
        }

    def step(self, grads: dict[str, np.ndarray | RowGrad]) -> None:
        """Apply one update; ``grads`` has one entry per parameter."""
        self.steps += 1
        for name, grad in grads.items():
            index, values = _rows(grad)
            self._update(name, index, values)

    def _update(self, name: str, index, grad: np.ndarray) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """v <- momentum v + g; p <- p - lr v."""

    slots = ("velocity",)

    def __init__(self, params, lr: float, momentum: float = 0.9):
        super().__init__(params, lr)
        self.momentum = momentum

    def _update(self, name, index, grad):
        velocity = self.state["velocity"][name]
        velocity[index] = self.momentum * velocity[index] + grad
        self.params[name][index] -= self.lr * velocity[index]


class AdaGrad(Optimizer):
    """G <- G + g^2; p <- p - lr g / (sqrt(G) + eps)."""

    slots = ("sum_sq",)

    def __init__(self, params, lr: float, eps: float = 1e-8):
        super().__init__(params, lr)
        self.eps = eps

    def _update(self, name, index, grad):
        sum_sq = self.state["sum_sq"][name]
        sum_sq[index] += grad * grad
        self.params[name][index] -= self.lr * grad / (np.sqrt(sum_sq[index]) + self.eps)


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction; embedding rows are updated lazily."""

    slots = ("m", "v")

    def __init__(self, params, lr: float, beta1: float = 0.9, beta2: float = 0.999, eps=1e-8):
        super().__init__(params, lr)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps

    def _update(self, name, index, grad):
        m, v = self.state["m"][name], self.state["v"][name]
        step_size = self.lr * (1.0 - self.beta2**self.steps) ** 0.5 / (1.0 - self.beta1**self.steps)
        if isinstance(index, slice):  # a dense parameter: in place, no temporaries of its size
            m *= self.beta1
            m += (1.0 - self.beta1) * grad
            grad_sq = (1.0 - self.beta2) * grad
            grad_sq *= grad
            v *= self.beta2
            v += grad_sq
            denominator = np.sqrt(v, out=grad_sq)
            denominator += self.eps
            step = step_size * m
            step /= denominator
            self.params[name] -= step
            return
        m_rows = self.beta1 * m[index] + (1.0 - self.beta1) * grad
        v_rows = self.beta2 * v[index] + (1.0 - self.beta2) * grad * grad
        m[index], v[index] = m_rows, v_rows
        self.params[name][index] -= step_size * m_rows / (np.sqrt(v_rows) + self.eps)


OPTIMIZERS = {"sgd": SGD, "adagrad": AdaGrad, "adam": Adam}
