"""Explaining an evaluation: how calibrated the model's probabilities are,
its worst errors in context, and everything together (``explain``).

Inputs are lists over sentences in corpus order: ``tokens``, ``gold`` and
``pred`` (IOB2 tags), ``p_tag`` arrays of shape (T, C) over ``labels`` and
``p_ent`` arrays of shape (T,), T the sentence length and C = len(labels);
optionally ``lines``, the file line of each sentence's first token
(``Sentence.line``), which place each error in its file.
Spans are half-open ``(type, start, end)`` token ranges read leniently, as
conlleval does (``nerwin.decode.spans``). M counts calibrated items.
"""

from collections.abc import Sequence

import numpy as np

from nerwin.decode import span_confidence, spans
from nerwin.metrics import (
    Tags,
    conlleval_counts,
    evaluate_tags,
    format_entity_scores,
    format_report,
    is_entity,
    percent,
    strict_lenient_differences,
    strict_scores,
    type_accuracy,
    unlabelled_scores,
)

CALIBRATION_BINS = 10  # equal-width confidence bins over [0, 1]
CONTEXT_TOKENS = 10  # tokens shown on each side of an error span

Span = tuple[str, int, int]

# ---------------------------------------------------------------------------
# Calibration


def _calibration_bin(lo: float, hi: float, confidences: np.ndarray, correct: np.ndarray) -> dict:
    """One row of the reliability table; confidences and correct of shape (M_bin,)."""
    count = len(confidences)
    return {
        "lo": float(lo),
        "hi": float(hi),
        "count": count,
        "mean_confidence": float(confidences.mean()) if count else None,
        "accuracy": float(correct.mean()) if count else None,
    }


def calibration(confidences, correct, bins: int = CALIBRATION_BINS) -> dict:
    """How well ``confidences`` predict ``correct``: a reliability table and its ECE.

    confidences: shape (M,) float in [0, 1]; correct: shape (M,) bool.
    Bins are [k/bins, (k+1)/bins), the last one closed at 1. The expected
    calibration error is the sum over bins of count/M * |accuracy -
    mean_confidence| (0.0 when M = 0). Returns {"ece": float, "count": M,
    "bins": [{"lo", "hi": float, "count": int, "mean_confidence",
    "accuracy": float, None for an empty bin}]}.
    """
    confidences = np.asarray(confidences, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    if confidences.shape != correct.shape or confidences.ndim != 1:
        raise ValueError(f"shapes differ: confidences {confidences.shape}, correct {correct.shape}")
    if not np.all((confidences >= 0) & (confidences <= 1)):
        raise ValueError("confidences must lie in [0, 1]")
    edges = np.arange(bins + 1) / bins  # (bins + 1,)
    which = np.minimum(np.searchsorted(edges, confidences, side="right") - 1, bins - 1)  # (M,)
    table = [
        _calibration_bin(edges[k], edges[k + 1], confidences[which == k], correct[which == k])
        for k in range(bins)
    ]
    gaps = [
        row["count"] * abs(row["accuracy"] - row["mean_confidence"])
        for row in table
        if row["count"]
    ]
    return {
        "ece": sum(gaps) / len(confidences) if gaps else 0.0,
        "count": len(confidences),
        "bins": table,
    }


def _span_probability(p_tag: np.ndarray, labels: Sequence[str], span: Span) -> float:
    """``span_confidence``, or 0.0 for a type the model has no labels for."""
    if not {f"B-{span[0]}", f"I-{span[0]}"} <= set(labels):
        return 0.0
    return span_confidence(p_tag, labels, span)


def span_confidences(
    gold: Tags, pred: Tags, p_tag: Sequence[np.ndarray], labels: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Each predicted span's confidence and whether it is right (same type and boundaries in gold).

    Returns (confidence: shape (S,) float, correct: shape (S,) bool) over
    the S predicted spans in corpus order; confidence as ``span_confidence``.
    """
    confidence, correct = [], []
    for gold_tags, pred_tags, probabilities in zip(gold, pred, p_tag, strict=True):
        gold_spans = set(spans(gold_tags))
        for span in spans(pred_tags):
            confidence.append(_span_probability(probabilities, labels, span))
            correct.append(span in gold_spans)
    return np.array(confidence, dtype=np.float64), np.array(correct, dtype=bool)


def _optional(value: float | None) -> str:
    """A table cell: three decimals, or "-" for an empty bin."""
    return "-" if value is None else f"{value:.3f}"


def format_calibration(result: dict, title: str) -> str:
    """A ``calibration`` result as text: a title line with the ECE, then one row per bin.

    "observed" is how often what the probability predicts happened in the
    bin (the entity is gold, the span is right); the ECE of nothing is n/a.
    """
    ece = f"{result['ece']:.4f}" if result["count"] else "n/a"
    lines = [f"{title}: ECE {ece} over {result['count']}"]
    lines.append(f"{'bin':<9}  {'count':>7}  {'confidence':>10}  {'observed':>8}")
    for row in result["bins"]:
        span = f"{row['lo']:.2f}-{row['hi']:.2f}"
        confidence, accuracy = _optional(row["mean_confidence"]), _optional(row["accuracy"])
        lines.append(f"{span:<9}  {row['count']:>7}  {confidence:>10}  {accuracy:>8}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Worst errors


def mark_span(tokens: Sequence[str], span: Span, width: int = CONTEXT_TOKENS) -> str:
    """The sentence with ``span`` marked, cut to ``width`` tokens each side ("..." where cut).

    >>> mark_span(["He", "visits", "the", "European", "Union", "."], ("ORG", 3, 5), width=2)
    '... visits the [ORG European Union] .'
    """
    entity_type, start, end = span
    left, right = max(0, start - width), min(len(tokens), end + width)
    words = ["..."] if left > 0 else []
    words += [*tokens[left:start], f"[{entity_type} {' '.join(tokens[start:end])}]"]
    words += [*tokens[end:right], *(["..."] if right < len(tokens) else [])]
    return " ".join(words)


def _error(span: Span, other_spans: list[Span], sentence: tuple, labels: Sequence[str]) -> dict:
    """The record of one erroneous span; ``sentence``: (line, tokens, p_tag (T, C), p_ent (T,))."""
    line, tokens, p_tag, p_ent = sentence
    entity_type, start, end = span
    return {
        "line": None if line is None else line + start,  # a token a line in CoNLL files
        "start": start,
        "end": end,
        "type": entity_type,
        "text": " ".join(tokens[start:end]),
        "other_types": [
            t
            for t, other_start, other_end in other_spans
            if other_start < end and start < other_end
        ],
        "probability": _span_probability(p_tag, labels, span),
        "p_entity": [float(p) for p in p_ent[start:end]],
        "context": mark_span(tokens, span),
    }


def _unmatched(
    ours: Tags, theirs: Tags, sentences: list[tuple], labels: Sequence[str]
) -> list[dict]:
    """An error record for each span of ``ours`` that ``theirs`` lacks, in corpus order."""
    found = []
    for own_tags, other_tags, sentence in zip(ours, theirs, sentences, strict=True):
        other_spans = spans(other_tags)
        found += [
            _error(span, other_spans, sentence, labels)
            for span in spans(own_tags)
            if span not in other_spans
        ]
    return found


def worst_errors(
    tokens: Tags,
    gold: Tags,
    pred: Tags,
    p_tag: Sequence[np.ndarray],
    p_ent: Sequence[np.ndarray],
    labels: Sequence[str],
    k: int,
    lines: Sequence[int] | None = None,
) -> dict:
    """The ``k`` most confident false positives and the ``k`` least probable false negatives.

    A false positive is a predicted span that gold lacks (type and
    boundaries), ranked by its ``span_confidence``, highest first; a false
    negative is a gold span not predicted, ranked by the probability the
    model gives it (``span_confidence``; 0.0 if its type has no labels),
    lowest first; ties keep corpus order. Each is {"line" (of the span's
    first token, from ``lines``; None without them), "start",
    "end", "type", "text", "other_types" (the types of the spans
    on the other side that overlap it: gold ones for a false positive,
    predicted ones for a false negative), "probability", "p_entity" (one
    per token), "context" (``mark_span``)}. Returns {"false_positives",
    "false_negatives"}.
    """
    if lines is None:
        lines = [None] * len(tokens)
    sentences = list(zip(lines, tokens, p_tag, p_ent, strict=True))
    false_positives = _unmatched(pred, gold, sentences, labels)
    false_negatives = _unmatched(gold, pred, sentences, labels)
    return {
        "false_positives": sorted(false_positives, key=lambda e: -e["probability"])[:k],
        "false_negatives": sorted(false_negatives, key=lambda e: e["probability"])[:k],
    }


def _error_line(error: dict, other_side: str) -> str:
    """One error as a line; ``other_side`` names whose overlapping types are listed."""
    p_entity = " ".join(f"{p:.2f}" for p in error["p_entity"])
    others = ", ".join(error["other_types"]) or "-"
    where = "" if error["line"] is None else f"line {error['line']}: "
    return (
        f"  p {error['probability']:.3f} | P(entity) {p_entity} | {other_side} {others}"
        f" | {where}{error['context']}"
    )


def format_errors(errors: dict) -> str:
    """A ``worst_errors`` result as text, one line per error."""
    lines = ["false positives (predicted, not in gold; most confident first):"]
    lines += [_error_line(error, "gold") for error in errors["false_positives"]] or ["  none"]
    lines.append("false negatives (in gold, not predicted; least probable first):")
    lines += [_error_line(error, "predicted") for error in errors["false_negatives"]] or ["  none"]
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Everything together


def explain(
    tokens: Tags,
    gold: Tags,
    pred: Tags,
    p_tag: Sequence[np.ndarray],
    p_ent: Sequence[np.ndarray],
    labels: Sequence[str],
    errors: int = 0,
    p_tag_unscaled: Sequence[np.ndarray] | None = None,
    lines: Sequence[int] | None = None,
) -> dict:
    """Every view of one evaluation, as plain JSON-able data.

    ``p_tag_unscaled``, P(tag) before temperature scaling, adds the span
    calibration it would have had ("span_unscaled"), to show what the
    temperature changed. ``lines`` (``Sentence.line`` of each sentence)
    name the sentence of each error.

    ``evaluate_tags``'s keys ("entity" lenient, "binary", "confusion",
    "accuracy"), then "conlleval" (``conlleval_counts``), "strict"
    (``strict_scores``), "strict_lenient_differences" (predicted sentences
    read differently), "unlabelled", "type_accuracy", "calibration"
    ({"p_entity": P(entity) per token against gold tag != O, "span": span
    confidence against span correct}) and, if ``errors`` > 0, "errors"
    (``worst_errors`` with k = errors).
    """
    all_p_ent = np.concatenate(p_ent) if len(p_ent) else np.zeros(0)  # (N,)
    result = evaluate_tags(gold, pred, p_entity=all_p_ent)
    result |= {
        "conlleval": conlleval_counts(gold, pred),
        "strict": strict_scores(gold, pred),
        "strict_lenient_differences": strict_lenient_differences(pred),
        "unlabelled": unlabelled_scores(result["confusion"]),
        "type_accuracy": type_accuracy(result["confusion"]),
        "calibration": {
            "p_entity": calibration(all_p_ent, is_entity(gold)),
            "span": calibration(*span_confidences(gold, pred, p_tag, labels)),
        },
    }
    if p_tag_unscaled is not None:
        unscaled = calibration(*span_confidences(gold, pred, p_tag_unscaled, labels))
        result["calibration"]["span_unscaled"] = unscaled
    if errors > 0:
        result["errors"] = worst_errors(tokens, gold, pred, p_tag, p_ent, labels, errors, lines)
    return result


def format_explanation(result: dict) -> str:
    """An ``explain`` result as text, section by section; scores in percent."""
    unlabelled, typed = result["unlabelled"], result["type_accuracy"]
    p, r, f = (percent(unlabelled[key]) for key in ("precision", "recall", "f1"))
    sections = [
        "== entities, lenient (conlleval's reading: a stray I-X opens an entity) ==",
        format_report(result),
        "",
        "== entities, strict IOB2 (a stray I-X is no entity) ==",
        format_entity_scores(result["strict"]),
        f"predicted sentences read differently: {result['strict_lenient_differences']}",
        "",
        "== spans ==",
        f"unlabelled spans (types ignored): P {p}  R {r}  F1 {f}",
        "type accuracy where the boundaries are right: "
        f"{percent(typed['accuracy']) if typed['spans'] else 'n/a'}"
        f" ({typed['correct']} of {typed['spans']})",
        "",
        "== calibration ==",
        format_calibration(result["calibration"]["p_entity"], "P(entity) per token vs gold entity"),
        "",
        format_calibration(result["calibration"]["span"], "span confidence vs span correct"),
    ]
    if "span_unscaled" in result["calibration"] and result["calibration"]["span"]["count"]:
        before = result["calibration"]["span_unscaled"]["ece"]
        after = result["calibration"]["span"]["ece"]
        sections.append(
            f"span confidence ECE: {before:.4f} before temperature scaling, {after:.4f} after"
        )
    if "errors" in result:
        sections += ["", "== worst errors ==", format_errors(result["errors"])]
    return "\n".join(sections)
