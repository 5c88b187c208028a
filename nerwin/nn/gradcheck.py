"""Gradient checking by central differences, in float64.

The check is a vector-Jacobian product against a random upstream gradient
``dout`` (CS231n style), so one gate can be checked alone: the analytic
``backward(dout)`` must match the numerical gradient of sum(forward(...) * dout).
It passes trivially when every gradient is zero, so the tests pair it with
golden values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from nerwin.nn.gates import Gate, RowGrad

STEP = 1e-5
TOLERANCE = 1e-6
# A central difference carries a rounding error near eps * |J| / STEP ~ 1e-11: relative to
# an entry far below this floor, that noise alone would exceed the tolerance.
DENOMINATOR_FLOOR = 1e-4


@dataclass(frozen=True)
class Check:
    """The outcome of checking one array's gradient."""

    name: str
    shape: tuple[int, ...]
    error: float

    @property
    def ok(self) -> bool:
        return self.error < TOLERANCE


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """max |a - n| / max(|a| + |n|, floor) over all entries."""
    scale = np.maximum(np.abs(analytic) + np.abs(numeric), DENOMINATOR_FLOOR)
    return float(np.max(np.abs(analytic - numeric) / scale, initial=0.0))


def numerical_gradient(objective: Callable[[], float], array: np.ndarray) -> np.ndarray:
    """d objective / d array by central differences; each entry is restored after use."""
    grad = np.zeros_like(array)
    flat, flat_grad = array.reshape(-1), grad.reshape(-1)  # views: writes reach array
    for i in range(flat.size):
        saved = flat[i]
        flat[i] = saved + STEP
        plus = objective()
        flat[i] = saved - STEP
        minus = objective()
        flat[i] = saved
        flat_grad[i] = (plus - minus) / (2 * STEP)
    return grad


def dense(grad: np.ndarray | RowGrad, shape: tuple[int, ...]) -> np.ndarray:
    """A gradient as a full array, whether it was stored sparse or not."""
    return grad.dense(shape) if isinstance(grad, RowGrad) else np.asarray(grad)


def check_arrays(
    objective: Callable[[], float],
    arrays: dict[str, np.ndarray],
    analytic: dict[str, np.ndarray | RowGrad],
) -> list[Check]:
    """Compare ``analytic[name]`` with the numerical gradient of ``objective`` for each array."""
    return [
        Check(
            name,
            array.shape,
            relative_error(
                dense(analytic[name], array.shape), numerical_gradient(objective, array)
            ),
        )
        for name, array in arrays.items()
    ]


def check_gate(gate: Gate, inputs: Sequence[np.ndarray], rng: np.random.Generator) -> list[Check]:
    """Check every float input and every parameter of one gate.

    Inputs and parameters must be float64.
    """
    out = gate.forward(*inputs)
    dout = rng.standard_normal(np.shape(out))
    input_grads = gate.backward(dout)
    param_grads = dict(gate.grads)

    def objective() -> float:
        return float(np.sum(gate.forward(*inputs) * dout))

    # Labels and ids get no gradient (None): they are constants here.
    differentiable = [i for i, grad in enumerate(input_grads) if grad is not None]
    float_inputs = {f"input{i}": inputs[i] for i in differentiable}
    analytic = {f"input{i}": input_grads[i] for i in differentiable}
    return check_arrays(objective, float_inputs, analytic) + check_arrays(
        objective, gate.params, param_grads
    )
