"""Tag decoding (argmax, IOB2-constrained Viterbi) and entity spans.

Dimension letters: T tokens in the sentence, C labels. ``labels`` is the
model's label list of IOB2 tag strings with "O" included, e.g.
``["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]``; ``p_tag`` holds one
probability row over ``labels`` per token, shape (T, C).

Spans are half-open ``(type, start, end)``: token indexes ``start`` up to
but not including ``end``.
"""

import functools
from collections.abc import Sequence

import numpy as np

from nerwin.data.conll import Tag, parse_tag

PROB_FLOOR = 1e-12  # probabilities are clipped here before the log in Viterbi


@functools.lru_cache(maxsize=1024)  # spans reads one a token: no call to parse_tag each time
def _iob2_tag(tag: str) -> Tag:
    """``parse_tag`` of an IOB2 tag (O, B-X or I-X); ValueError for any other string."""
    parsed = parse_tag(tag)
    if parsed is None or parsed.prefix not in ("O", "B", "I"):
        raise ValueError(f"not an IOB2 tag: {tag!r}")
    return parsed


def _check_shape(p_tag: np.ndarray, labels: Sequence[str]) -> None:
    if p_tag.ndim != 2 or p_tag.shape[1] != len(labels):
        raise ValueError(f"p_tag has shape {p_tag.shape}, expected (T, {len(labels)})")


def argmax_decode(p_tag: np.ndarray, labels: Sequence[str]) -> list[str]:
    """The most probable tag of each token, a stray I-X then read as B-X.

    The repair is conlleval's own reading of a stray I-X (it opens an
    entity), so the spans are those of the raw argmax, and the tags are
    valid IOB2 for writing in any scheme. p_tag: shape (T, C). Returns T tags.
    """
    _check_shape(p_tag, labels)
    tags = [labels[i] for i in np.argmax(p_tag, axis=1)]
    return [
        f"B{tag[1:]}" if tag.startswith("I-") and previous[1:] != tag[1:] else tag
        for previous, tag in zip(["O", *tags], tags, strict=False)
    ]


def allowed_transitions(labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The IOB2 constraints as boolean tables over ``labels``.

    Returns (start_allowed, trans_allowed): start_allowed of shape (C,) says
    which labels may open a sentence (all but I-X); trans_allowed of shape
    (C, C), indexed [previous, next], forbids O -> I-X and B-X/I-X -> I-Y
    for Y != X, i.e. I-X may only follow B-X or I-X.
    """
    parsed = [_iob2_tag(label) for label in labels]
    prefixes = np.array([tag.prefix for tag in parsed])  # (C,)
    types = np.array([tag.type or "" for tag in parsed])  # (C,) "" for O
    is_inside = prefixes == "I"  # (C,)
    continues_type = (prefixes[:, None] != "O") & (types[:, None] == types[None, :])  # (C, C)
    trans_allowed = ~is_inside[None, :] | continues_type  # (C, C)
    return ~is_inside, trans_allowed


@functools.lru_cache(maxsize=8)
def _constraints(labels: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(start_allowed (C,), trans_penalty (C, C): 0 where allowed, -inf where not), cached."""
    start_allowed, trans_allowed = allowed_transitions(labels)
    return start_allowed, np.where(trans_allowed, 0.0, -np.inf)


def viterbi_decode(p_tag: np.ndarray, labels: Sequence[str]) -> list[str]:
    """The valid IOB2 sequence with the highest sum of log p_tag.

    p_tag: shape (T, C), clipped at PROB_FLOOR before the log. Ties go to
    the lower label index, both for the last tag and for each back-pointer.
    Returns T tags.
    """
    _check_shape(p_tag, labels)
    num_tokens = p_tag.shape[0]
    if num_tokens == 0:
        return []
    log_p = np.log(np.clip(p_tag, PROB_FLOOR, None))  # (T, C)
    start_allowed, trans_penalty = _constraints(tuple(labels))
    best_score = np.where(start_allowed, log_p[0], -np.inf)  # (C,) best path ending in each label
    back_pointers = np.zeros((num_tokens, len(labels)), dtype=np.int64)  # (T, C)
    for t in range(1, num_tokens):
        candidates = best_score[:, None] + trans_penalty  # (C, C) [previous, next]
        back_pointers[t] = np.argmax(candidates, axis=0)  # first maximum: lower index wins
        best_score = candidates.max(axis=0) + log_p[t]
    path = [int(np.argmax(best_score))]
    for t in range(num_tokens - 1, 0, -1):
        path.append(int(back_pointers[t, path[-1]]))
    return [labels[i] for i in reversed(path)]


_DECODERS = {"argmax": argmax_decode, "viterbi": viterbi_decode}


def decode(p_tag: np.ndarray, labels: Sequence[str], method: str = "viterbi") -> list[str]:
    """Decode p_tag of shape (T, C) into T tags with ``method`` "argmax" or "viterbi"."""
    if method not in _DECODERS:
        raise ValueError(f"unknown decoding method {method!r}; expected 'argmax' or 'viterbi'")
    return _DECODERS[method](p_tag, labels)


def viterbi_decode_batch(
    p_tag: np.ndarray, bounds: np.ndarray, labels: Sequence[str]
) -> list[list[str]]:
    """``viterbi_decode`` of many sentences at once, the same tags to the last tie for
    float32 p_tag, as models give it.

    p_tag: shape (N, C), the sentences one after another; bounds: shape
    (S + 1,), sentence i is rows [bounds[i], bounds[i + 1]). The constraints
    only remove paths, so where the most probable tag of each token already
    forms valid IOB2 that sequence is the Viterbi path (ties too: both take
    the lowest label index). Only the other sentences, a few in a hundred
    for a trained model, go through the dynamic programme, and each only up
    to the first token after its last broken transition whose most probable
    tag any tag may precede (O or B-X): from there on that tag and the
    following ones are the path's, whatever the programme ends in.

    Both shortcuts need two different logs of p to stay different in the
    programme's float64 running sums, which holds for float32 p (their logs
    differ by 6e-8 or more). float64 p can differ by less than a sum's
    rounding, and such near-ties may then go the other way here.
    """
    _check_shape(p_tag, labels)
    lengths = np.diff(bounds)  # (S,)
    log_p = np.log(np.clip(p_tag, PROB_FLOOR, None))  # (N, C)
    best = np.argmax(log_p, axis=1)  # (N,) not of p: float32 p one ulp apart can share a log
    start_allowed, trans_penalty = _constraints(tuple(labels))
    opens = np.zeros(len(best), dtype=bool)
    opens[bounds[:-1][lengths > 0]] = True
    after = np.roll(best, 1)  # the previous token's tag; unused where a sentence opens
    allowed = np.where(opens, start_allowed[best], trans_penalty[after, best] == 0.0)
    broken_at = np.flatnonzero(~allowed)  # (B,) rows whose transition in is forbidden
    if len(broken_at):
        sentence = np.searchsorted(bounds, broken_at, side="right") - 1  # (B,) ascending
        last = np.r_[sentence[1:] != sentence[:-1], True]  # each broken sentence's last one
        starts, ends = bounds[sentence[last]], bounds[sentence[last] + 1]
        ends = np.minimum(ends, _next_enterable(best, trans_penalty)[broken_at[last] + 1])
        rows = _ranges(starts, ends)  # the tokens the programme decides
        best[rows] = _viterbi_rows(log_p[rows], np.r_[0, np.cumsum(ends - starts)], labels)
    tags = np.array(labels, dtype=object)[best].tolist()
    return [tags[a:b] for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)]


def _next_enterable(best: np.ndarray, trans_penalty: np.ndarray) -> np.ndarray:
    """best: shape (N,) label indexes -> shape (N + 1,): for each row, the first row from it
    on whose label every label may precede (O and B-X in IOB2), or N."""
    enterable = (trans_penalty == 0.0).all(axis=0)[best]  # (N,)
    rows = np.where(enterable, np.arange(len(best)), len(best))
    return np.r_[np.minimum.accumulate(rows[::-1])[::-1], len(best)]


def _ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The rows of [starts[i], ends[i]) for every i, one after another: shape (sum of lengths,)."""
    lengths = ends - starts
    return np.arange(lengths.sum()) + np.repeat(starts - np.r_[0, np.cumsum(lengths)[:-1]], lengths)


def _viterbi_rows(log_p: np.ndarray, bounds: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """The Viterbi label index of every row of log_p: shape (N, C), sentences at ``bounds``,
    none of them empty.

    Sentences are sorted longest first and advanced together, one numpy step
    per position: at position t only the first ``running[t]`` sentences, those
    longer than t, are touched, so work and memory are those of N tokens
    (one long sentence among short ones pads nothing). The rows are put in
    that order once, position by position, so each step reads a slice.
    Returns shape (N,).
    """
    lengths = np.diff(bounds)  # (S,) each at least 1
    longest = int(lengths.max())
    order = np.argsort(-lengths, kind="stable")  # rank -> sentence, longest first
    running = len(lengths) - np.cumsum(np.bincount(lengths, minlength=longest))[:longest]
    steps = np.r_[0, np.cumsum(running)]  # position t's rows at [steps[t], steps[t + 1])
    position = np.repeat(np.arange(longest), running)  # (N,) in step order
    by_step = bounds[:-1][order][np.arange(len(log_p)) - steps[position]] + position  # (N,)
    log_p = log_p[by_step]  # (N, C) in step order
    start_allowed, trans_penalty = _constraints(tuple(labels))
    score = np.where(start_allowed, log_p[: running[0]], -np.inf).astype(np.float64)  # (S, C)
    back_pointers = []  # [t - 1]: shape (running[t], C), the best previous tag at position t
    for t in range(1, longest):
        k = running[t]
        candidates = score[:k, :, None] + trans_penalty  # (k, C, C) [sentence, previous, next]
        back_pointers.append(candidates.argmax(axis=1))
        np.add(candidates.max(axis=1), log_p[steps[t] : steps[t + 1]], out=score[:k])
    in_steps = np.empty(len(log_p), dtype=np.int64)  # each row's label, in step order
    current = np.argmax(score, axis=1)  # (S,) each sentence's tag at its last position
    ranks = np.arange(len(lengths))
    for t in range(longest - 1, 0, -1):
        k = running[t]  # the sentences that reach position t: there, current is their tag
        in_steps[steps[t] : steps[t + 1]] = current[:k]
        current[:k] = back_pointers[t - 1][ranks[:k], current[:k]]
    in_steps[: running[0]] = current
    best = np.empty_like(in_steps)
    best[by_step] = in_steps
    return best


def decode_batch(
    p_tag: np.ndarray, bounds: np.ndarray, labels: Sequence[str], method: str = "viterbi"
) -> list[list[str]]:
    """``decode`` of each sentence: p_tag (N, C), sentence i at rows bounds[i]:bounds[i + 1]."""
    if method == "viterbi":
        return viterbi_decode_batch(p_tag, bounds, labels)
    return [
        decode(p_tag[a:b], labels, method) for a, b in zip(bounds[:-1], bounds[1:], strict=True)
    ]


def spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """IOB2 tags -> entity spans ``(type, start, end)``, end exclusive.

    Lenient like conlleval: an I-X after O or after another type opens a
    new span instead of being dropped.

    >>> spans(["B-PER", "I-PER", "O", "I-LOC", "B-LOC"])
    [('PER', 0, 2), ('LOC', 3, 4), ('LOC', 4, 5)]
    """
    found = []
    open_type, open_start = None, 0
    for i, tag in enumerate(tags):
        parsed = _iob2_tag(tag)
        continues_open = parsed.prefix == "I" and parsed.type == open_type
        if open_type is not None and not continues_open:
            found.append((open_type, open_start, i))
            open_type = None
        if parsed.prefix != "O" and not continues_open:
            open_type, open_start = parsed.type, i
    if open_type is not None:
        found.append((open_type, open_start, len(tags)))
    return found


def span_confidence(p_tag: np.ndarray, labels: Sequence[str], span: tuple[str, int, int]) -> float:
    """Probability that the model tags exactly this span, token by token.

    P(B-X at start) * prod of P(I-X) over start+1..end-1 * (1 - P(I-X at
    end)) when the span does not reach the end of the sentence.
    p_tag: shape (T, C); span: (X, start, end), end exclusive.
    """
    entity_type, start, end = span
    label_list = list(labels)
    p_begin = p_tag[:, label_list.index(f"B-{entity_type}")]  # (T,)
    p_inside = p_tag[:, label_list.index(f"I-{entity_type}")]  # (T,)
    confidence = p_begin[start] * np.prod(p_inside[start + 1 : end])
    if end < p_tag.shape[0]:
        confidence *= 1.0 - p_inside[end]
    return float(confidence)
