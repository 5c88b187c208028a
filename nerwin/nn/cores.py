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

import contextlib
import ctypes
import functools
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

_HALVES = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nerwin-half")


def in_halves(work: Callable[[slice], object], rows: int) -> None:
    """``work(part)`` for the two halves of ``range(rows)``, the second on another core.

    Each numpy call takes the GIL back when it returns, so the gain shrinks
    as the calls get shorter.
    """
    middle = rows // 2
    other = _HALVES.submit(work, slice(0, middle))
    work(slice(middle, rows))
    other.result()


@functools.cache
def openblas_threads() -> tuple[Callable[[int], None], Callable[[], int]] | None:
    """(set, get) of the loaded OpenBLAS's thread count; None without OpenBLAS or off Linux.

    numpy's wheels bundle OpenBLAS under a prefixed name with a 64-bit
    interface (``scipy_openblas_set_num_threads64_``); a system build
    keeps the plain name. The library is found among the process's mappings.
    """
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    paths = {
        fields[5]
        for fields in (line.split(maxsplit=5) for line in maps.splitlines())
        if len(fields) == 6 and "openblas" in Path(fields[5]).name.lower()
    }
    for path in sorted(paths):
        library = ctypes.CDLL(path)  # the loaded copy: dlopen hands back its handle
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", ""):
                setter = getattr(library, f"{prefix}_set_num_threads{suffix}", None)
                getter = getattr(library, f"{prefix}_get_num_threads{suffix}", None)
                if setter is not None and getter is not None:
                    setter.argtypes, getter.restype = [ctypes.c_int], ctypes.c_int
                    return setter, getter
    return None


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """OpenBLAS runs its products in the calling thread until the block ends.

    The count is the process's: a product another thread starts meanwhile
    also runs in its own thread. A no-op where no OpenBLAS is found
    (another BLAS, another system).
    """
    threads = openblas_threads()
    if threads is None:
        yield
        return
    set_threads, get_threads = threads
    before = get_threads()
    set_threads(1)
    try:
        yield
    finally:
        set_threads(before)
