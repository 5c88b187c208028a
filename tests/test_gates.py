"""Every gate's backward against central differences (float64), plus golden values."""

import numpy as np
import pytest

from nerwin.nn import gates
from nerwin.nn.gradcheck import TOLERANCE, check_gate

B, K, D, H, C, V = 4, 3, 2, 5, 4, 6


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def assert_checks_pass(checks):
    assert checks, "nothing was checked"
    for check in checks:
        assert check.error < TOLERANCE, check


def away_from(points, x, margin=1e-3):
    """Shift entries of x off the kinks at ``points`` so a central difference is smooth."""
    for point in points:
        near = np.abs(x - point) < margin
        x[near] += 2 * margin
    return x


def test_embedding_gradient(rng):
    table = rng.standard_normal((V, D))
    ids = np.array([[0, 1, 1], [5, 1, 0], [2, 2, 2], [3, 4, 5]])  # repeats must accumulate
    assert_checks_pass(check_gate(gates.Embedding(table), [ids], rng))


def test_concat_gradient(rng):
    parts = [rng.standard_normal((B, K, d)) for d in (2, 1, 3)]
    assert_checks_pass(check_gate(gates.Concat(), parts, rng))


def test_affine_gradient(rng):
    gate = gates.Affine(rng.standard_normal((H, K * D)), rng.standard_normal(H))
    assert_checks_pass(check_gate(gate, [rng.standard_normal((B, K * D))], rng))


@pytest.mark.parametrize("name", ["tanh", "relu", "hardtanh"])
def test_activation_gradient(rng, name):
    z = away_from([0.0, -1.0, 1.0], 1.5 * rng.standard_normal((B, H)))
    assert_checks_pass(check_gate(gates.ACTIVATIONS[name](), [z], rng))


def test_dropout_gradient_with_frozen_mask(rng):
    gate = gates.Dropout(0.5, np.random.default_rng(1))
    x = rng.standard_normal((B, H))
    gate.forward(x)
    gate.frozen = True
    assert_checks_pass(check_gate(gate, [x], rng))
    assert np.count_nonzero(gate.mask == 0) > 0


def test_logistic_head_gradient(rng):
    gate = gates.LogisticHead(rng.standard_normal(H), rng.standard_normal(1))
    y_ent = np.array([1.0, 0.0, 0.0, 1.0])
    assert_checks_pass(check_gate(gate, [rng.standard_normal((B, H)), y_ent], rng))


def test_softmax_head_gradient(rng):
    gate = gates.SoftmaxHead(rng.standard_normal((C, H)), rng.standard_normal(C))
    y_tag = np.array([0, 3, 3, 1])
    assert_checks_pass(check_gate(gate, [rng.standard_normal((B, H)), y_tag], rng))


def test_segment_sum_equals_add_at(rng):
    ids = rng.integers(0, 50, size=400)
    rows = rng.standard_normal((400, 3))
    expected = np.zeros((50, 3))
    np.add.at(expected, ids, rows)
    np.testing.assert_allclose(gates.segment_sum(ids, rows).dense((50, 3)), expected)


# Golden values on tiny linspace inputs: a check passes when every gradient is
# zero, these do not.


def test_affine_golden():
    W = np.linspace(-1, 1, 6).reshape(2, 3)
    gate = gates.Affine(W, np.array([0.5, -0.5]))
    x = np.linspace(0, 1, 3).reshape(1, 3)
    np.testing.assert_allclose(gate.forward(x), [[0.0, 0.8]], atol=1e-12)
    (dx,) = gate.backward(np.array([[1.0, 2.0]]))
    np.testing.assert_allclose(gate.grads["W"], [[0, 0.5, 1], [0, 1, 2]])  # delta^T x^T
    np.testing.assert_allclose(gate.grads["b"], [1.0, 2.0])
    np.testing.assert_allclose(dx, [[-1 + 0.4, -0.6 + 1.2, -0.2 + 2.0]])  # delta W


def test_tanh_golden():
    gate = gates.Tanh()
    h = gate.forward(np.array([[0.0, 1.0]]))
    (dz,) = gate.backward(np.array([[2.0, 1.0]]))
    np.testing.assert_allclose(dz, [[2.0, 1 - np.tanh(1.0) ** 2]])
    np.testing.assert_allclose(h, [[0.0, np.tanh(1.0)]])


def test_logistic_head_golden():
    gate = gates.LogisticHead(np.array([1.0, -1.0]), np.array([0.0]))
    loss = gate.forward(np.array([[1.0, 1.0], [2.0, 0.0]]), np.array([1.0, 0.0]))
    # s = [0, 2]: loss = (ln 2 + ln(1 + e^2)) / 2
    assert loss == pytest.approx((np.log(2) + np.log1p(np.exp(2))) / 2)
    dh, _ = gate.backward(2.0)  # lambda = 2
    ds = 2.0 * (np.array([0.5, gates.sigmoid(2.0)]) - [1.0, 0.0]) / 2
    np.testing.assert_allclose(gate.grads["u"], [ds[0] + 2 * ds[1], ds[0]])
    np.testing.assert_allclose(dh, np.outer(ds, [1.0, -1.0]))


def test_softmax_head_golden():
    gate = gates.SoftmaxHead(np.zeros((3, 2)), np.zeros(3))
    loss = gate.forward(np.array([[1.0, 2.0]]), np.array([2]))
    assert loss == pytest.approx(np.log(3))  # uniform over C = 3
    gate.backward(1.0)
    np.testing.assert_allclose(gate.grads["e"], [1 / 3, 1 / 3, -2 / 3])
    np.testing.assert_allclose(gate.grads["V"], np.outer([1 / 3, 1 / 3, -2 / 3], [1.0, 2.0]))


@pytest.mark.parametrize("labels", [1, 9])
def test_softmax_and_log_softmax_match_row_reductions(labels, rng):
    o = rng.normal(scale=30.0, size=(50, labels))  # large scores: the shift must hold
    shifted = o - o.max(axis=1, keepdims=True)
    total = np.exp(shifted).sum(axis=1, keepdims=True)
    expected = np.exp(shifted) / total
    np.testing.assert_allclose(gates.softmax(o), expected, rtol=1e-13)
    by_label = np.ascontiguousarray(o.T)
    np.testing.assert_allclose(gates.softmax_of_columns(by_label), expected, rtol=1e-13)
    np.testing.assert_array_equal(by_label, o.T)  # the scores stay as they were
    np.testing.assert_allclose(
        gates.log_softmax(o), shifted - np.log(total), rtol=1e-13, atol=1e-15
    )
    np.testing.assert_array_equal(gates.across_rows(np.maximum, o), o.max(axis=1))


@pytest.mark.parametrize("batches, batch", [(200, 1), (1, 1000)])
def test_softmax_of_columns_gives_softmaxs_bits(batches, batch, rng):
    """The tables' path (labels first) and the graph's (a row per example) agree bitwise,
    also for a batch of one, where numpy's own sum down a column would add pairwise."""
    scales = np.logspace(0, 2, 9, dtype=np.float32)
    for o in rng.normal(size=(batches, batch, 9)).astype(np.float32) * scales:
        e = np.exp(o - o.max(axis=1, keepdims=True))
        expected = e / gates.across_rows(np.add, e)[:, None]  # the sums left to right
        by_label = np.ascontiguousarray(o.T)
        np.testing.assert_array_equal(gates.softmax_of_columns(by_label), expected)
        np.testing.assert_array_equal(gates.softmax(o), expected)


def test_embedding_golden():
    gate = gates.Embedding(np.arange(8.0).reshape(4, 2))
    vectors = gate.forward(np.array([[3, 1, 3]]))
    np.testing.assert_array_equal(vectors, [[[6, 7], [2, 3], [6, 7]]])
    gate.backward(np.array([[[1.0, 2.0], [10.0, 20.0], [100.0, 200.0]]]))
    grad = gate.grads["table"]
    np.testing.assert_array_equal(grad.ids, [1, 3])  # only the rows looked up
    np.testing.assert_array_equal(grad.values, [[10, 20], [101, 202]])  # id 3 twice: summed


def test_concat_golden():
    gate = gates.Concat()
    words = np.array([[[1.0, 2.0], [3.0, 4.0]]])  # (B=1, K=2, 2)
    caps = np.array([[[5.0], [6.0]]])  # (B=1, K=2, 1)
    np.testing.assert_array_equal(gate.forward(words, caps), [[1, 2, 5, 3, 4, 6]])  # by position
    d_words, d_caps = gate.backward(np.array([[10.0, 20.0, 50.0, 30.0, 40.0, 60.0]]))
    np.testing.assert_array_equal(d_words, [[[10, 20], [30, 40]]])
    np.testing.assert_array_equal(d_caps, [[[50], [60]]])


@pytest.mark.parametrize(
    "name, h, dz",
    [
        ("relu", [0.0, 0.0, 0.5, 2.0], [0, 0, 3, 4]),
        ("hardtanh", [-1.0, -0.5, 0.5, 1.0], [0, 2, 3, 0]),
    ],
)
def test_piecewise_linear_activations_golden(name, h, dz):
    gate = gates.ACTIVATIONS[name]()
    z = np.array([[-2.0, -0.5, 0.5, 2.0]])
    np.testing.assert_array_equal(gate.forward(z), [h])
    np.testing.assert_array_equal(gate.backward(np.array([[1.0, 2.0, 3.0, 4.0]]))[0], [dz])
    np.testing.assert_array_equal(gate.apply(z.copy()), [h])  # prediction's in-place form


def test_dropout_golden():
    gate = gates.Dropout(0.5, np.random.default_rng(0))
    x = np.ones((1, 1000))
    kept = gate.forward(x)
    assert set(np.unique(kept)) == {0.0, 2.0}  # dropped, or scaled by 1 / (1 - rate)
    assert abs(kept.mean() - 1.0) < 0.1  # the expectation is x
    np.testing.assert_array_equal(gate.backward(np.full((1, 1000), 3.0))[0], 3.0 * gate.mask)
    gate.training = False
    np.testing.assert_array_equal(gate.forward(x), x)  # off at prediction


def test_tanh_on_a_prediction_sized_batch_is_numpys_tanh_bit_for_bit(rng):
    z = rng.standard_normal((4000, 301)).astype(np.float32)  # above the two-thread threshold
    np.testing.assert_array_equal(gates.Tanh().forward(z), np.tanh(z))
