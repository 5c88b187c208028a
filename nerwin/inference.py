"""Prediction's hidden layer read from per-token tables instead of one product per window.

The window vector x is the concatenation of the K token vectors x_j of the
window, so the hidden layer's product splits by window position (the
precomputation of Chen & Manning 2014):

    z = W x + b = b + sum_j W_j x_j        W_j: shape (H, D), the columns of position j

A token's contribution at every position it can take, [W_0 x_t, ...,
W_{K-1} x_t] (shape (K H,)), depends on the token alone, not on its
neighbours. ``Projections`` computes it once per distinct token (its ids of
every feature) and remembers it, so each window costs K row gathers and a
sum (with tanh, a product) instead of a product with a (K D)-wide vector.
Text repeats its tokens: a batch of 512 CoNLL sentences has three tokens
for each distinct one, and most of those were seen in earlier batches.

With tanh, the rows go one step further and hold e^(-2 a_j) instead of
each a_j = W_j x_t (b included at the centre), and the last position's
rows hold e^(+2 a_j), since

    tanh(z) = 2 s - 1,   s = 1 / (1 + e^(-2z)) = q / (P + q),
    P = prod_{j < K-1} e^(-2 a_j),   q = e^(+2 a_{K-1})

so a window's gathered rows multiply into P and meet q in one sum and one
division, with no exp left to take, and 2 s - 1 folds into the heads:
(2 s - 1) V + c = s (2 V) + c - (V's column sums).
numpy's float32 exp and tanh cost ten times an add on AVX2 machines, so a
window's hidden layer costs K - 2 products, a sum and a division instead of
K - 1 sums and a tanh.

The product keeps float rounding's accuracy while every partial product over
positions stays within the float's range, e^(+-L) with L = -ln(tiny), or
tanh is saturated anyway (|2z| > S = ln(8 / eps), past which tanh(z) rounds
to +-1). A partial product over k of the K positions leaves the range only
if 2 k M > L, and the rest bring it back below S only if 2 (K - k) M > L - S,
where M bounds every |a_j|; both at once need M > (2 L - S) / (2 K): 15.7
for float32 and a window of 5. P, a partial product, is covered by this,
and beyond the range it gives s = 0 or 1, as saturation does. q, a single
factor, must itself stay within range, as 0 or inf would make s = 0 / 0 or
inf / inf: M is also at most L / 2, which binds only for a window of one
position. A batch reading a row beyond M, padding included, goes through
the graph.

Tokens are found by a key, one int64 from their ids of every feature, in a
hash table with linear probing: each remembered key holds the first free
slot from its own on, and that slot holds its row. A row's own key
(``row_keys``) confirms a slot's answer; a slot that holds no row ends a
search. The table has at least SLOTS_PER_ROW slots a row, so most keys
are found at their own slot, a batch's keys all at once.

Dimension letters as in nn/gates.py, plus T tokens of a batch, S sentences,
F features, D the sum of their embedding sizes, U distinct tokens.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable

import numpy as np

from nerwin.data.features import position_ids
from nerwin.data.vocab import Vocab
from nerwin.nn import gates
from nerwin.nn.cores import in_halves, one_blas_thread

CAPACITY = 24576  # rows of the table: 147 MB at the GloVe config's 5 x 300 floats a row
RESERVED_ROWS = 3  # rows 0-2 hold no token, so the padding's rows are its ids; 0 is never gathered
PADDING = np.array([Vocab.bos_id, Vocab.eos_id])  # the ids position_ids pads with: <s>, </s>
BLOCK = 1024  # windows a step: few numpy calls a window, the two threads seldom wait for the GIL
PROJECT_STEP = 128  # new tokens a step: each pass over their (n, K H) projections reads from cache
SLOTS_PER_ROW = 8  # at least: at most 1 slot in 8 is taken, so few keys look past their own
NO_ROW = 0  # what an empty slot holds: row 0 holds no token
FIBONACCI = np.uint64(0x9E3779B97F4A7C15)  # 2^64 / golden ratio: spreads keys over the slots


def preloaded(capacity: int) -> int:
    """Frequent training tokens ``freeze`` puts in a table of ``capacity`` rows: five
    sixths, so at CAPACITY at least 4,093 rows are left for a text's new tokens.

    Each token of a text that is not preloaded costs a projection, a product
    with W and K H exps, when the text first brings it: on eng.testb, the
    20,480 most frequent of CoNLL-2003's training tokens leave 2,999 distinct
    tokens to project, the 12,288 of a table of 16,384 rows 3,619 (``python
    bench/hotspots.py``).
    """
    return min(capacity * 5 // 6, capacity - RESERVED_ROWS)


PRELOADED = preloaded(CAPACITY)  # frequent training tokens a model keeps


def keyable(tables: list[np.ndarray]) -> bool:
    """Whether one int64 can number every combination of the tables' ids (a token's key)."""
    return math.prod(len(table) for table in tables) < 2**63


class SumForm:
    """Rows hold each a_j as it is: a window's rows add up to z, and f(z) is taken in place."""

    reduce = np.add
    identity = 0.0  # of reduce, for a window of one position
    scale = last_scale = 1.0  # of the weights, so that the rows hold a_j

    def __init__(self, apply: Callable[[np.ndarray], np.ndarray]):
        self.apply = apply  # f written over z: shape (n, H)

    @staticmethod
    def encode(a: np.ndarray) -> np.ndarray:
        """a: shape (U, K H), the rows to keep as they are -> whether each is within bound:
        all, (U,)."""
        return np.ones(len(a), dtype=bool)

    def finish(self, reduced: np.ndarray, last: np.ndarray) -> np.ndarray:
        """The sum over the positions before the last and the last's rows, both shape (n, H)
        -> f(z), written over ``reduced``."""
        reduced += last
        return self.apply(reduced)

    @staticmethod
    def heads(W: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The heads' W: shape (H, C'), b: shape (C',) as they apply to finish's output."""
        return W, b


class TanhProductForm:
    """Rows hold e^(-2 a_j), the last position's e^(+2 a_j): a window's rows multiply into P,
    and s = q / (P + q) = 1 / (1 + e^(-2z)), see the module's docstring."""

    reduce = np.multiply
    identity = 1.0  # of reduce, for a window of one position
    # Of the weights: the product with them gives -2 a_j, the last position's +2 a_j, with
    # no pass of its own.
    scale, last_scale = -2.0, 2.0

    def __init__(self, dtype: np.dtype, width: int):
        info = np.finfo(dtype)
        in_range, saturated = -np.log(info.tiny), np.log(8 / info.eps)  # L and S
        # M, see the module's docstring: no partial product leaves the range unsaturated, and
        # neither does the last position's q.
        self.bound = min((2 * in_range - saturated) / (2 * width), in_range / 2)

    def encode(self, scaled: np.ndarray) -> np.ndarray:
        """scaled = -2a, +2a at the last position: shape (U, K H), overwritten by its exp ->
        whether each row's |a| <= M: (U,)."""
        limit = 2.0 * self.bound
        within = (scaled.max(axis=1) <= limit) & (scaled.min(axis=1) >= -limit)
        with np.errstate(over="ignore"):  # rows beyond M, or alone in a saturated window
            np.exp(scaled, out=scaled)
        return within

    @staticmethod
    def finish(product: np.ndarray, last: np.ndarray) -> np.ndarray:
        """P and q, both shape (n, H) -> s = q / (P + q), written over P."""
        product += last
        return np.divide(last, product, out=product)

    @staticmethod
    def heads(W: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(2 s - 1) W + b = s (2 W) + b - (W's column sums): the heads as they apply to s."""
        return 2.0 * W, b - W.sum(axis=0)


def form_of(activation: str, dtype: np.dtype, width: int) -> SumForm | TanhProductForm:
    """What the rows hold for the hidden layer's activation, and how a window reads them."""
    if activation == "tanh":
        return TanhProductForm(dtype, width)
    return SumForm(gates.ACTIVATIONS[activation].apply)


class Projections:
    """Each distinct token's [W_0 x_t, ..., W_{K-1} x_t], b folded into the centre, as a form.

    tables: the embedding table of each feature, shapes (V_f, D_f), in
    window-vector order; W: shape (H, K D); b: shape (H,); heads: the
    output heads' (W: shape (H, C'), b: shape (C',)); activation: the
    hidden layer's, which says what the rows hold (``form_of``). The arrays are
    read when a token is first seen, so the parameters must not change
    while this object is in use. At most ``capacity`` rows are kept (K H
    floats each); when a batch brings more new tokens than fit, the least
    used ones make room. The tables must be ``keyable``. Threads that share
    the object take turns in ``scores``: one batch's new rows could evict
    the rows another is reading.
    """

    def __init__(
        self,
        tables: list[np.ndarray],
        W: np.ndarray,
        b: np.ndarray,
        heads: tuple[np.ndarray, np.ndarray],
        k: int,
        activation: str,
        capacity: int = CAPACITY,
    ):
        width = 2 * k + 1
        hidden, dims = W.shape[0], sum(t.shape[1] for t in tables)
        self.tables, self.k, self.width, self.hidden = tables, k, width, hidden
        self.form = form_of(activation, W.dtype, width)
        scales = np.r_[np.full(width - 1, self.form.scale), self.form.last_scale]  # (K,)
        scales = scales.astype(W.dtype)  # a float64 scalar times float32 b would be float64
        self.centre_b = scales[k] * b  # (H,) added at the centre position, once per window
        self.head_W, self.head_b = self.form.heads(*heads)  # as they apply to finish's output
        # (D, K H): column block j holds W_j^T scaled, so x_t @ by_position lists the scaled
        # W_j x_t for every j.
        scaled = W.reshape(hidden, width, dims) * scales[:, None]
        self.by_position = np.ascontiguousarray(
            scaled.transpose(2, 1, 0).reshape(dims, width * hidden)
        )
        self.radix = np.cumprod([1] + [len(t) for t in tables[:-1]], dtype=np.int64)  # (F,)
        self.rows = np.empty((capacity, width * hidden), dtype=W.dtype)  # (R, K H)
        self.rows.fill(0.0)  # touched once now: no batch pays the page faults of its rows
        self.within_bound = np.ones(capacity, dtype=bool)  # rows the form reads accurately
        self._project_into(PADDING, PADDING[:, None].repeat(len(tables), 1))  # in every feature
        self.row_keys = np.full(capacity, -1, dtype=np.int64)  # the key each row holds, or -1
        slot_bits = (SLOTS_PER_ROW * capacity - 1).bit_length()  # 2^18 slots, 2 MB, at CAPACITY
        self.slot_rows = np.full(1 << slot_bits, NO_ROW, dtype=np.int64)  # each slot's row
        self.free = np.arange(RESERVED_ROWS, capacity)  # rows holding no token, in order
        self.uses = np.zeros(capacity, dtype=np.int64)  # tokens read from each row, aged
        self.lock = threading.Lock()  # scores: one batch at a time, see the class docstring

    @property
    def capacity(self) -> int:
        return len(self.rows)

    @property
    def held(self) -> np.ndarray:
        """The rows that hold a token, in order: shape (U,)."""
        return np.flatnonzero(self.row_keys >= 0)

    def project(self, ids: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """ids: shape (U, F) -> shape (U, K H), each token's contribution at every position,
        times the form's scale of that position, in ``out`` when given."""
        x = np.concatenate([table[ids[:, f]] for f, table in enumerate(self.tables)], axis=1)
        projected = np.matmul(x, self.by_position, out=out)  # (U, K H)
        projected[:, self.k * self.hidden : (self.k + 1) * self.hidden] += self.centre_b
        return projected

    def keys(self, ids: np.ndarray) -> np.ndarray:
        """ids: shape (T, F) -> each token's key, one int64 from its ids of every feature:
        shape (T,)."""
        return ids.astype(np.int64) @ self.radix

    def token_rows(self, ids: np.ndarray) -> np.ndarray | None:
        """ids: shape (T, F) -> the row of each token, shape (T,), projecting the new ones.

        None when the batch has more distinct tokens than the memory holds.
        """
        keys = self.keys(ids)
        rows, known = self._find(keys)
        if not known.all():  # only the few new tokens are made distinct: a sort of T costs more
            missing = np.flatnonzero(~known)
            new, first, inverse = np.unique(keys[missing], return_index=True, return_inverse=True)
            if len(new) > len(self.free):
                needed = np.unique(rows[known])
                if RESERVED_ROWS + len(needed) + len(new) > self.capacity:
                    return None
                self._evict(needed, len(new))
            fresh, self.free = self.free[: len(new)], self.free[len(new) :]
            self._project_into(fresh, ids[missing[first]])
            rows[missing] = fresh[inverse]
            self.row_keys[fresh] = new
            self._remember(new, fresh)
        self.uses += np.bincount(rows, minlength=self.capacity)
        return rows

    def _find(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """keys: shape (T,) -> (the row of each remembered key, NO_ROW for the others;
        whether each is remembered), both shape (T,)."""
        slots = self._slots(keys)
        rows = self.slot_rows[slots]
        known = self.row_keys[rows] == keys
        looking = np.flatnonzero(~known & (rows != NO_ROW))  # their slot holds another key
        while len(looking):
            slots[looking] = (slots[looking] + 1) & (len(self.slot_rows) - 1)
            rows[looking] = found = self.slot_rows[slots[looking]]
            known[looking] = hit = self.row_keys[found] == keys[looking]
            looking = looking[~hit & (found != NO_ROW)]
        return rows, known

    def _remember(self, keys: np.ndarray, rows: np.ndarray) -> None:
        """Enter ``keys``: shape (n,), distinct and new to the hash table, each at the first
        empty slot from its own on, holding its row from ``rows``: shape (n,)."""
        slots = self._slots(keys)
        waiting = np.arange(len(keys))
        while len(waiting):
            empty = np.flatnonzero(self.slot_rows[slots[waiting]] == NO_ROW)
            # Of the keys that reach one empty slot together, the first takes it.
            taken, first = np.unique(slots[waiting[empty]], return_index=True)
            self.slot_rows[taken] = rows[waiting[empty[first]]]
            waiting = np.delete(waiting, empty[first])
            slots[waiting] = (slots[waiting] + 1) & (len(self.slot_rows) - 1)

    def _slots(self, keys: np.ndarray) -> np.ndarray:
        """keys: shape (n,) int64, >= 0 -> their own slots: shape (n,), Fibonacci hashing:
        the top bits of key times 2^64 / golden ratio, modulo 2^64."""
        bits = np.uint64(64 - (len(self.slot_rows) - 1).bit_length())
        return ((keys.view(np.uint64) * FIBONACCI) >> bits).view(np.int64)

    def _project_into(self, rows: np.ndarray, ids: np.ndarray) -> None:
        """The rows of ``ids``' projections, in the form's terms, half of them on each core.

        rows: shape (U,), distinct free rows; ids: shape (U, F), their tokens. A
        step of rows in a run, as free rows mostly come, is projected in place.
        """

        def project_part(part: slice) -> None:
            for start in range(part.start, part.stop, PROJECT_STEP):
                step = rows[start : min(start + PROJECT_STEP, part.stop)]
                in_order = (np.diff(step) == 1).all()
                out = self.rows[step[0] : step[-1] + 1] if in_order else None
                projected = self.project(ids[start : start + len(step)], out=out)
                self.within_bound[step] = self.form.encode(projected)
                if not in_order:
                    self.rows[step] = projected

        with one_blas_thread():
            in_halves(project_part, len(rows))

    def _evict(self, needed_rows: np.ndarray, room: int) -> None:
        """Free the least used half of the rows not in ``needed_rows``, more if fewer than
        ``room`` rows would then be free.

        Uses are halved after each eviction, so a token's past weighs less
        and less against what the text reads now.
        """
        held = self.held
        spare = held[~np.isin(held, needed_rows)]
        by_use = spare[np.argsort(self.uses[spare], kind="stable")]
        freed = by_use[: max(room - len(self.free), len(by_use) // 2)]
        self.uses[freed] = 0  # the row's next token starts its own count
        self.row_keys[freed] = -1
        self.free = np.sort(np.r_[self.free, freed])  # in order: new tokens project in place
        # A search ends at an empty slot, so emptying the freed keys' slots could end a
        # search short of a key that looked past them: the table is filled afresh.
        self.slot_rows.fill(NO_ROW)
        held = self.held
        self._remember(self.row_keys[held], held)
        self.uses //= 2

    def scores(
        self,
        ids: np.ndarray,
        lengths: np.ndarray,
    ) -> np.ndarray | None:
        """The heads' scores f(z) W + b of every window, a row per output: shape (C', T).

        ids: shape (T, F), the tokens of the sentences one after another;
        lengths: shape (S,) tokens per sentence. Blocks of windows
        go from gathered rows through f(z) to the heads' scores in the
        thread that gathered them, half of the blocks on each of two cores, with
        OpenBLAS kept out of those cores' way. None when the batch has more
        distinct tokens than the memory holds, or reads a row the form cannot.
        """
        with self.lock:  # the rows read must stay as they are until the heads have read them
            rows = self.token_rows(ids)
            # Every sentence's windows also read the rows of <s> and </s>, the padding.
            if rows is None or not (
                self.within_bound[PADDING].all() and self.within_bound[rows].all()
            ):
                return None
            # Each window's row numbers in self.rows viewed as (R K, H), a position a row:
            # position_ids pads with the ids of <s> and </s>, their rows.
            by_position = position_ids(rows, lengths, self.k)  # (K, T)
            by_position *= self.width
            by_position += np.arange(self.width)[:, None]
            scores = np.empty((len(rows), self.head_W.shape[1]), dtype=self.rows.dtype)  # (T, C')
            score_part = functools.partial(self._score_blocks, by_position, scores)
            with one_blas_thread():
                in_halves(score_part, len(rows))
            scores += self.head_b
            return np.ascontiguousarray(scores.T)  # (C', T): the heads read a row per output

    def _score_blocks(
        self,
        by_position: np.ndarray,
        scores: np.ndarray,
        part: slice,
    ) -> None:
        """scores[part] = finish(the positions before the last, reduced; the last's rows)
        @ head_W for the windows by_position[:, part].

        by_position: shape (K, T), each window's row numbers in ``self.rows``
        viewed as (R K, H); scores: shape (T, C').
        """
        by_row = self.rows.reshape(-1, self.hidden)  # (R K, H): row r's position j at r K + j
        # The positions before the last reduced so far, and one position's gathered rows: the
        # positions come one at a time, so two buffers serve any window width.
        reduced_buffer = np.empty((BLOCK, self.hidden), dtype=self.rows.dtype)  # (n, H)
        gathered_buffer = np.empty_like(reduced_buffer)
        # A saturated window's product may leave float range: it still gives +-1. errstate
        # is per thread, so it is set here, in the thread that does the work.
        with np.errstate(over="ignore", under="ignore"):
            for start in range(part.start, part.stop, BLOCK):
                stop = min(start + BLOCK, part.stop)
                reduced, gathered = reduced_buffer[: stop - start], gathered_buffer[: stop - start]
                # take writes straight into a contiguous `out` with mode="clip" (every row
                # number is valid), else via a copy.
                *before_last, last = by_position[:, start:stop]
                if before_last:
                    np.take(by_row, before_last[0], axis=0, out=reduced, mode="clip")
                else:  # a window of one position
                    reduced.fill(self.form.identity)
                for position in before_last[1:]:
                    np.take(by_row, position, axis=0, out=gathered, mode="clip")
                    self.form.reduce(reduced, gathered, out=reduced)
                np.take(by_row, last, axis=0, out=gathered, mode="clip")
                np.matmul(self.form.finish(reduced, gathered), self.head_W, out=scores[start:stop])
