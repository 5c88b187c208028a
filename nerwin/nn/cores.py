"""The machine's two cores: nerwin's own second thread, and BLAS's threads kept out of its way.

numpy's ufuncs, ``take``, reductions and products release the GIL, so two
Python threads can run them at once (``in_halves``). OpenBLAS has worker
threads of its own, which spin for a while after every product they share;
while nerwin's two threads are busy, a spinning worker takes a core from
one of them. Prediction's table path therefore keeps OpenBLAS in the
calling thread while it splits the work itself (``one_blas_thread``);
``python bench/hotspots.py`` times that path both ways in one run.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import functools
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy  # noqa: F401 (loaded first, so that its OpenBLAS is among the process's libraries)

_HALVES = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="nerwin-half")


def in_halves(work: Callable[[slice], object], rows: int) -> None:
    """``work(part)`` for the two halves of ``range(rows)``, the first in a second thread.

    Returns when both halves are done, also when one of them fails. Each
    numpy call takes the GIL back when it returns, so the gain shrinks as
    the calls get shorter.
    """
    middle = rows // 2
    other = _HALVES.submit(work, slice(0, middle))
    try:
        work(slice(middle, rows))
    finally:
        concurrent.futures.wait([other])
    other.result()


def openblas_paths(maps: str) -> list[str]:
    """The OpenBLAS files in a /proc/<pid>/maps text, numpy's own copy first.

    numpy's wheels bundle ``numpy.libs/libscipy_openblas64_-<hash>.so``; a
    distribution's numpy loads e.g. ``.../openblas-pthread/libblas.so.3``.
    A file replaced on disk since it was loaded is listed as ``(deleted)``
    and cannot be opened again, so it is left out.
    """
    paths = {
        fields[5]
        for fields in (line.split(maxsplit=5) for line in maps.splitlines())
        if len(fields) == 6 and "openblas" in fields[5].lower()
    }
    found = [path for path in paths if not path.endswith(" (deleted)")]
    return sorted(found, key=lambda path: (Path(path).parent.name != "numpy.libs", path))


@functools.cache
def openblas_threads() -> tuple[Callable[[int], None], Callable[[], int]] | None:
    """(set, get) of numpy's OpenBLAS thread count; None without OpenBLAS or off Linux.

    numpy's wheels name the functions with a prefix and a 64-bit interface
    (``scipy_openblas_set_num_threads64_``); a system build keeps the plain names.
    """
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    for path in openblas_paths(maps):
        try:
            library = ctypes.CDLL(path)  # the loaded copy: dlopen hands back its handle
        except OSError:
            continue
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", ""):
                setter = getattr(library, f"{prefix}_set_num_threads{suffix}", None)
                getter = getattr(library, f"{prefix}_get_num_threads{suffix}", None)
                if setter is not None and getter is not None:
                    setter.argtypes, getter.restype = [ctypes.c_int], ctypes.c_int
                    return setter, getter
    return None


_blas_lock = threading.Lock()
_blas_users = 0  # threads inside one_blas_thread
_blas_threads_before = 0  # OpenBLAS's count when the first of them came in


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """OpenBLAS runs its products in the calling thread until the block ends.

    The count is the process's: a product another thread starts meanwhile
    also runs in its own thread. Blocks may overlap, in one thread or
    several; the count goes back when the last of them ends. A no-op where
    no OpenBLAS is found (another BLAS, another system).
    """
    threads = openblas_threads()
    if threads is None:
        yield
        return
    set_threads, get_threads = threads
    global _blas_users, _blas_threads_before
    with _blas_lock:
        if _blas_users == 0:
            _blas_threads_before = get_threads()
            set_threads(1)
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                set_threads(_blas_threads_before)
