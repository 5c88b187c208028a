"""nerwin's second thread and the OpenBLAS thread count it sets aside."""

import numpy as np
import pytest

from nerwin.nn.cores import in_halves, one_blas_thread, openblas_threads


@pytest.mark.parametrize("rows", [0, 1, 2, 7, 1000])
def test_in_halves_runs_every_row_once(rows):
    runs = np.zeros(rows, dtype=int)

    def work(part: slice) -> None:
        runs[part] += 1

    in_halves(work, rows)
    assert (runs == 1).all()


def test_in_halves_passes_on_a_failure():
    def work(part: slice) -> None:
        if part.start == 0:
            raise ValueError("the other thread's half")

    with pytest.raises(ValueError, match="other thread"):
        in_halves(work, 10)


@pytest.fixture
def threads():
    found = openblas_threads()
    if found is None:
        pytest.skip("numpy is not linked to OpenBLAS here")
    set_threads, get_threads = found
    before = get_threads()
    yield found
    set_threads(before)


def test_one_blas_thread_inside_the_block_and_the_count_back_after(threads):
    set_threads, get_threads = threads
    set_threads(2)
    with one_blas_thread():
        assert get_threads() == 1
        with one_blas_thread():
            assert get_threads() == 1
        assert get_threads() == 1
    assert get_threads() == 2


def test_one_blas_thread_gives_the_count_back_after_a_failure(threads):
    set_threads, get_threads = threads
    set_threads(2)
    with pytest.raises(RuntimeError), one_blas_thread():
        raise RuntimeError
    assert get_threads() == 2


def test_products_in_one_blas_thread_are_the_same(threads):
    a = np.random.default_rng(0).standard_normal((300, 200))
    expected = a @ a.T
    with one_blas_thread():
        np.testing.assert_allclose(a @ a.T, expected, rtol=1e-12)
