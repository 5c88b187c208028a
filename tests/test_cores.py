"""nerwin's second thread and the OpenBLAS thread count it sets aside."""

import threading
import time

import numpy as np
import pytest

from nerwin.nn import cores
from nerwin.nn.cores import in_halves, one_blas_thread, openblas_paths, openblas_threads


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


def test_in_halves_waits_for_the_other_half_when_this_one_fails():
    finished = []

    def work(part: slice) -> None:
        if part.start == 0:  # the second thread's half, slow
            time.sleep(0.2)
            finished.append(part)
        else:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        in_halves(work, 10)
    assert finished == [slice(0, 5)]  # nothing still writes once in_halves has returned


def test_overlapping_blocks_in_two_threads_give_the_count_back_at_the_last_end(threads):
    set_threads, get_threads = threads
    set_threads(2)
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen = []

    def first() -> None:
        with one_blas_thread():
            first_in.set()
            second_in.wait()
        first_out.set()

    def second() -> None:
        first_in.wait()
        with one_blas_thread():
            second_in.set()
            first_out.wait()
            seen.append(get_threads())  # the first block has ended, this one has not

    workers = [threading.Thread(target=first), threading.Thread(target=second)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert seen == [1]
    assert get_threads() == 2


LINE = "7f00a000-7f00b000 r-xp 00000000 08:01 1234                       "


def test_openblas_paths_puts_numpys_copy_first_and_skips_replaced_files():
    maps = "\n".join(
        [
            LINE + "/usr/lib/x86_64-linux-gnu/libc.so.6",
            LINE + "/env/site-packages/scipy.libs/libscipy_openblas-1.so",
            LINE + "/env/site-packages/numpy.libs/libscipy_openblas64_-2.so",
            LINE + "/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3",
            LINE + "/usr/lib/x86_64-linux-gnu/libopenblas.so.0 (deleted)",
            "7ffd0000-7ffd1000 rw-p 00000000 00:00 0                          [stack]",
        ]
    )
    assert openblas_paths(maps) == [
        "/env/site-packages/numpy.libs/libscipy_openblas64_-2.so",
        "/env/site-packages/scipy.libs/libscipy_openblas-1.so",
        "/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3",
    ]


def test_no_openblas_found_makes_one_blas_thread_a_no_op(monkeypatch):
    monkeypatch.setattr(cores, "openblas_threads", lambda: None)
    with one_blas_thread():
        assert np.ones((3, 3)) @ np.ones(3) == pytest.approx([3, 3, 3])
