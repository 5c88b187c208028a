import numpy as np
import pytest

from nerwin.nn.gates import RowGrad
from nerwin.nn.optim import OPTIMIZERS, SGD, Adam


@pytest.mark.parametrize(("name", "lr"), [("adagrad", 0.5), ("adam", 0.1), ("sgd", 0.1)])
def test_each_optimizer_minimises_a_quadratic(name, lr):
    target = np.array([1.0, -2.0, 0.5])
    params = {"w": np.zeros(3)}
    optimizer = OPTIMIZERS[name](params, lr=lr)
    for _ in range(500):
        optimizer.step({"w": 2 * (params["w"] - target)})
    np.testing.assert_allclose(params["w"], target, atol=1e-2)


def test_sparse_sgd_equals_dense_on_touched_rows():
    dense = {"table": np.ones((5, 2))}
    sparse = {"table": np.ones((5, 2))}
    grad_rows = np.array([[1.0, 2.0], [3.0, 4.0]])
    full = RowGrad(np.array([1, 3]), grad_rows).dense((5, 2))
    SGD(dense, lr=0.5, momentum=0.0).step({"table": full})
    SGD(sparse, lr=0.5, momentum=0.0).step({"table": RowGrad(np.array([1, 3]), grad_rows)})
    np.testing.assert_array_equal(dense["table"], sparse["table"])


def test_sparse_adam_leaves_untouched_rows_and_state_alone():
    params = {"table": np.ones((4, 2))}
    adam = Adam(params, lr=0.1)
    adam.step({"table": RowGrad(np.array([2]), np.array([[1.0, -1.0]]))})
    assert (params["table"][[0, 1, 3]] == 1.0).all()
    np.testing.assert_allclose(params["table"][2], [0.9, 1.1])  # first Adam step moves lr
    assert (adam.state["m"]["table"][[0, 1, 3]] == 0).all()


def test_dense_adam_in_place_equals_the_textbook_update_bit_for_bit():
    rng = np.random.default_rng(0)
    start = rng.standard_normal((30, 20)).astype(np.float32)
    params = {"W": start.copy()}
    adam = Adam(params, lr=0.001)
    m, v, expected = np.zeros_like(start), np.zeros_like(start), start.copy()
    for t in range(1, 6):
        g = rng.standard_normal(start.shape).astype(np.float32)
        adam.step({"W": g})
        m = 0.9 * m + (1 - 0.9) * g
        v = 0.999 * v + (1 - 0.999) * g * g
        expected -= 0.001 * (1 - 0.999**t) ** 0.5 / (1 - 0.9**t) * m / (np.sqrt(v) + 1e-8)
    np.testing.assert_array_equal(params["W"], expected)
