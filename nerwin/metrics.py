"""Evaluation scores: entity-level P/R/F1 (seqeval, lenient and strict, and
conlleval.pl's own counts and text), token-level entity detection, a
confusion matrix of entity types, span boundaries with types ignored, and a
text report.

``gold`` and ``pred`` are lists of sentences, each a list of IOB2 tags
(conlleval also takes IOB1 and BIOES); sentence i of ``pred`` has the same
length as sentence i of ``gold``. Entities are read leniently, as conlleval
does: a stray I-X opens a span; ``strict_scores`` is the exception. N is the
number of tokens over all sentences.
"""

from collections import Counter
from collections.abc import Sequence

import numpy as np

from nerwin.decode import spans

Tags = Sequence[Sequence[str]]
NO_SPAN = "O"  # confusion label: no span with these boundaries (missed or spurious)
_AVERAGES = ("micro avg", "macro avg", "weighted avg")
_SCORE_KEYS = ("precision", "recall", "f1")


def _prf(report_row: dict) -> dict:
    """A seqeval report row -> {"precision", "recall", "f1", "support"} as floats and int."""
    return {
        "precision": float(report_row["precision"]),
        "recall": float(report_row["recall"]),
        "f1": float(report_row["f1-score"]),
        "support": int(report_row["support"]),
    }


def _safe_ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


def _f1(precision: float, recall: float) -> float:
    return _safe_ratio(2 * precision * recall, precision + recall)


def _count_scores(tp: int, fp: int, fn: int) -> dict:
    """{"precision", "recall", "f1", "tp", "fp", "fn", "support"} from the three counts."""
    precision, recall = _safe_ratio(tp, tp + fp), _safe_ratio(tp, tp + fn)
    f1 = _f1(precision, recall)
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "support": tp + fn,
    }


def _no_entity_scores() -> dict:
    """The ``entity_scores`` result when there is no entity at all: zeros."""
    zeros = {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    return {"per_type": {}, "micro": zeros, "macro": dict(zeros)}


def _seqeval_scores(gold: Tags, pred: Tags, **mode) -> dict:
    """seqeval's classification report as {"per_type", "micro", "macro"}; ``mode`` goes to it."""
    from seqeval.metrics import classification_report  # imports sklearn: only when scoring

    report = classification_report(
        [list(s) for s in gold], [list(s) for s in pred], output_dict=True, zero_division=0, **mode
    )
    per_type = {name: _prf(row) for name, row in sorted(report.items()) if name not in _AVERAGES}
    return {
        "per_type": per_type,
        "micro": _prf(report["micro avg"]),
        "macro": _prf(report["macro avg"]),
    }


def entity_scores(gold: Tags, pred: Tags) -> dict:
    """Entity-level precision, recall and F1 per type, micro and macro averaged.

    The numbers of seqeval's default mode, which agrees with conlleval
    (lenient: a stray I-X opens an entity), counted here from the spans:
    seqeval's module pulls in scikit-learn and SciPy, about 70 MB that
    training has no other use for. tests/test_metrics.py checks the two
    agree. Returns {"per_type": {TYPE: scores}, "micro": scores, "macro":
    scores}, scores = {"precision", "recall", "f1": float in [0, 1],
    "support": int (number of gold spans)}, types sorted; the macro average
    is the unweighted mean of the per-type figures. Undefined ratios are 0.0.
    """
    counts: dict[str, list[int]] = {}  # type -> [true positives, predicted, gold]
    for gold_tags, pred_tags in zip(gold, pred, strict=True):
        if len(gold_tags) != len(pred_tags):
            raise ValueError("a predicted sentence differs in length from its gold sentence")
        gold_spans, pred_spans = set(spans(gold_tags)), set(spans(pred_tags))
        for entity_type, *_ in gold_spans | pred_spans:
            counts.setdefault(entity_type, [0, 0, 0])
        for span in pred_spans:
            counts[span[0]][0] += span in gold_spans
            counts[span[0]][1] += 1
        for span in gold_spans:
            counts[span[0]][2] += 1
    if not counts:
        return _no_entity_scores()
    per_type = {t: _span_prf(*counts[t]) for t in sorted(counts)}
    micro = _span_prf(*(sum(c[i] for c in counts.values()) for i in range(3)))
    macro = {
        key: sum(scores[key] for scores in per_type.values()) / len(per_type)
        for key in ("precision", "recall", "f1")
    }
    return {"per_type": per_type, "micro": micro, "macro": macro | {"support": micro["support"]}}


def _span_prf(correct: int, predicted: int, gold: int) -> dict:
    precision, recall = _safe_ratio(correct, predicted), _safe_ratio(correct, gold)
    return {"precision": precision, "recall": recall, "f1": _f1(precision, recall), "support": gold}


def strict_spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """The spans of seqeval's strict IOB2 reading: only B-X I-X* is an entity.

    >>> strict_spans(["B-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-ORG"])
    [('PER', 0, 2), ('LOC', 4, 5)]
    """
    from seqeval.scheme import IOB2, Entities

    (found,) = Entities([list(tags)], IOB2).entities
    return [(entity.tag, entity.start, entity.end) for entity in found]


def strict_scores(gold: Tags, pred: Tags) -> dict:
    """Entity-level scores like ``entity_scores``, but read strictly as IOB2.

    seqeval with mode="strict" and scheme=IOB2 (always both): a stray I-X
    (after O or another type) belongs to no entity, in gold and prediction.
    Same return shape as ``entity_scores``.
    """
    if not any(strict_spans(sentence) for sentence in [*gold, *pred]):
        return _no_entity_scores()
    from seqeval.scheme import IOB2

    return _seqeval_scores(gold, pred, mode="strict", scheme=IOB2)


def strict_lenient_differences(tag_sequences: Tags) -> int:
    """How many sequences have different spans when read strictly and leniently.

    Those are exactly the sequences that are not valid IOB2 (a stray I-X).

    >>> strict_lenient_differences([["B-PER", "I-PER"], ["O", "I-PER"], ["B-PER", "I-LOC"]])
    2
    """
    return sum(spans(tags) != strict_spans(tags) for tags in tag_sequences)


def binary_scores(gold_is_entity: np.ndarray, p_entity: np.ndarray, threshold: float = 0.5) -> dict:
    """Token-level entity detection: a token is predicted an entity if p_entity > threshold.

    gold_is_entity: shape (N,) bool; p_entity: shape (N,) float.
    Returns {"precision", "recall", "f1", "threshold": float, "tp", "fp",
    "fn", "support": int}; support = number of gold entity tokens.
    """
    gold_is_entity = np.asarray(gold_is_entity, dtype=bool)
    pred_is_entity = np.asarray(p_entity) > threshold
    if gold_is_entity.shape != pred_is_entity.shape:
        raise ValueError(f"shapes differ: gold {gold_is_entity.shape}, p {pred_is_entity.shape}")
    tp = int(np.sum(gold_is_entity & pred_is_entity))
    fp = int(np.sum(~gold_is_entity & pred_is_entity))
    fn = int(np.sum(gold_is_entity & ~pred_is_entity))
    return {**_count_scores(tp, fp, fn), "threshold": float(threshold)}


def confusion(gold: Tags, pred: Tags) -> dict:
    """Confusion of entity types over spans matched by exact boundaries.

    Each gold span counts in row (its type, type of the predicted span with
    the same start and end, or "O" if there is none: missed); each predicted
    span without a gold span of the same boundaries counts in row "O"
    (spurious). Returns {"labels": [sorted types..., "O"], "matrix": list of
    lists of int}, rows = gold, columns = predicted.
    """
    gold_spans = [spans(sentence) for sentence in gold]
    pred_spans = [spans(sentence) for sentence in pred]
    types = sorted({t for found in [*gold_spans, *pred_spans] for t, _, _ in found})
    labels = [*types, NO_SPAN]
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)  # (gold, predicted)
    for gold_found, pred_found in zip(gold_spans, pred_spans, strict=True):
        gold_by_bounds = {(start, end): t for t, start, end in gold_found}
        pred_by_bounds = {(start, end): t for t, start, end in pred_found}
        for bounds, gold_type in gold_by_bounds.items():
            matrix[index[gold_type], index[pred_by_bounds.get(bounds, NO_SPAN)]] += 1
        for bounds, pred_type in pred_by_bounds.items():
            if bounds not in gold_by_bounds:
                matrix[index[NO_SPAN], index[pred_type]] += 1
    return {"labels": labels, "matrix": matrix.tolist()}


def unlabelled_scores(confusion_result: dict) -> dict:
    """Span P/R/F1 with types ignored: a span is right if its boundaries are.

    Read off a ``confusion`` result: tp = gold spans whose boundaries were
    predicted (any type), fn = gold spans missed, fp = predicted spans with
    no gold span of the same boundaries. Returns {"precision", "recall",
    "f1", "tp", "fp", "fn", "support"}, support = number of gold spans.
    """
    matrix = np.array(confusion_result["matrix"], dtype=np.int64)  # (L, L), last: NO_SPAN
    tp, fn, fp = matrix[:-1, :-1].sum(), matrix[:-1, -1].sum(), matrix[-1, :-1].sum()
    return _count_scores(int(tp), int(fp), int(fn))


def type_accuracy(confusion_result: dict) -> dict:
    """Of the gold spans whose boundaries were predicted, the fraction given the right type.

    Read off a ``confusion`` result. Returns {"accuracy": float (0.0 if no
    span), "correct": int, "spans": int}.
    """
    matrix = np.array(confusion_result["matrix"], dtype=np.int64)  # (L, L), last: NO_SPAN
    typed = matrix[:-1, :-1]  # (L - 1, L - 1) gold type x predicted type, same boundaries
    correct, matched = int(np.trace(typed)), int(typed.sum())
    return {"accuracy": _safe_ratio(correct, matched), "correct": correct, "spans": matched}


def is_entity(tag_sequences: Tags) -> np.ndarray:
    """Whether each token's tag is not "O", over all sentences in order: shape (N,) bool."""
    return np.array([tag != "O" for tags in tag_sequences for tag in tags], dtype=bool)


def token_accuracy(gold: Tags, pred: Tags) -> float:
    """Fraction of tokens whose predicted tag equals the gold tag (0.0 if no tokens)."""
    pairs = [pair for g, p in zip(gold, pred, strict=True) for pair in zip(g, p, strict=True)]
    return _safe_ratio(sum(g == p for g, p in pairs), len(pairs))


def evaluate_tags(
    gold: Tags,
    pred: Tags,
    gold_is_entity: np.ndarray | None = None,
    p_entity: np.ndarray | None = None,
) -> dict:
    """All metrics of one evaluation.

    p_entity: shape (N,) float, the binary head over all tokens in order;
    gold_is_entity: shape (N,) bool, by default [gold tag != "O"].
    Returns {"entity", "confusion", "accuracy"} and "binary" when p_entity
    is given.
    """
    result = {
        "entity": entity_scores(gold, pred),
        "confusion": confusion(gold, pred),
        "accuracy": token_accuracy(gold, pred),
    }
    if p_entity is not None:
        if gold_is_entity is None:
            gold_is_entity = is_entity(gold)
        result["binary"] = binary_scores(gold_is_entity, p_entity)
    return result


def percent(score: float) -> str:
    """A score in [0, 1] as a percentage with two decimals: 0.8642 -> "86.42"."""
    return f"{100 * score:.2f}"


def format_entity_scores(entity: dict) -> str:
    """A table of an ``entity_scores`` or ``strict_scores`` result, scores in percent."""
    rows = [*entity["per_type"].items(), ("micro avg", entity["micro"])]
    rows.append(("macro avg", entity["macro"]))
    name_width = max(len(name) for name, _ in rows)
    lines = [f"{'type':<{name_width}}  precision  recall      f1  support"]
    for name, scores in rows:
        p, r, f = (percent(scores[key]) for key in _SCORE_KEYS)
        lines.append(f"{name:<{name_width}}  {p:>9}  {r:>6}  {f:>6}  {scores['support']:>7}")
    return "\n".join(lines)


def _binary_line(binary: dict) -> str:
    p, r, f = (percent(binary[key]) for key in _SCORE_KEYS)
    return f"entity detection (P(entity) > {binary['threshold']:g}): P {p}  R {r}  F1 {f}"


def _confusion_table(confusion_result: dict) -> list[str]:
    labels, matrix = confusion_result["labels"], confusion_result["matrix"]
    corner = "gold \\ predicted"
    counts_text = [str(count) for row in matrix for count in row]
    row_width = max(len(text) for text in [corner, *labels])
    cell_width = max(len(text) for text in [*labels, *counts_text])
    header = "  ".join(f"{label:>{cell_width}}" for label in labels)
    lines = [f"{corner:<{row_width}}  {header}"]
    for label, counts in zip(labels, matrix, strict=True):
        cells = "  ".join(f"{count:>{cell_width}}" for count in counts)
        lines.append(f"{label:<{row_width}}  {cells}")
    return lines


def format_report(result: dict) -> str:
    """Human-readable text of an evaluate_tags result: scores in percent."""
    lines = [format_entity_scores(result["entity"])]
    lines += ["", f"token accuracy: {percent(result['accuracy'])}"]
    if "binary" in result:
        lines.append(_binary_line(result["binary"]))
    lines += ["", "confusion (rows gold, columns predicted; O = missed / spurious):"]
    lines += _confusion_table(result["confusion"])
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# conlleval.pl (version 2004-01-26), line for line
#
# A tag is read as (chunk tag, type): the part before its first hyphen and
# the part after it ("B-WORK-OF-ART" -> ("B", "WORK-OF-ART"), "O" -> ("O", "")).
# Chunk boundaries are decided from the previous and the current tag alone.
# conlleval has no rule for S-, and none for B- after E-: "S-X S-X" and
# "B-X E-X B-X E-X" are each one chunk to it; only a change of type splits them.
# Not reproduced: Perl reading the type "0" as no type, and the repeated row it
# prints for chunks without a type (a bare "B"); nerwin's tags never need either.

CONLLEVAL_BOUNDARY = "-X-"  # a line whose first field is this is a sentence break to conlleval
_OUTSIDE = ("O", "")  # what conlleval reads at a sentence break
_ENDS = {("B", "B"), ("B", "O"), ("I", "B"), ("I", "O"), ("E", "E"), ("E", "I"), ("E", "O")}
_STARTS = {("B", "B"), ("I", "B"), ("O", "B"), ("O", "I"), ("E", "E"), ("E", "I"), ("O", "E")}
_TYPELESS = ("O", ".")  # chunk tags whose change of type neither starts nor ends a chunk
_ONE_TOKEN = ("[", "]")  # chunk tags of one-token chunks


def _conlleval_tag(tag: str) -> tuple[str, str]:
    """conlleval's reading of a tag: (chunk tag, type).

    Not ``conll.parse_tag``, on purpose: conlleval reads any string, so
    "B-", "PER", "[" and a bare "B" are chunk tags to it (``parse_tag``
    says None), and no type is "" so that types compare as strings.
    """
    chunk_tag, hyphen, chunk_type = tag.partition("-")
    return (chunk_tag, chunk_type) if hyphen else (tag, "")


def _end_of_chunk(previous: tuple[str, str], current: tuple[str, str]) -> bool:
    """conlleval's endOfChunk: did a chunk end between ``previous`` and ``current``?"""
    (prev_tag, prev_type), (tag, chunk_type) = previous, current
    return (
        (prev_tag, tag) in _ENDS
        or (prev_tag not in _TYPELESS and prev_type != chunk_type)
        or prev_tag in _ONE_TOKEN
    )


def _start_of_chunk(previous: tuple[str, str], current: tuple[str, str]) -> bool:
    """conlleval's startOfChunk: did a chunk start between ``previous`` and ``current``?"""
    (prev_tag, prev_type), (tag, chunk_type) = previous, current
    return (
        (prev_tag, tag) in _STARTS
        or (tag not in _TYPELESS and prev_type != chunk_type)
        or tag in _ONE_TOKEN
    )


class _ChunkCounter:
    """conlleval's main loop over (gold, pred) pairs of read tags; _OUTSIDE pairs are breaks."""

    def __init__(self):
        self.last_gold = self.last_pred = _OUTSIDE
        self.in_correct = False  # the chunks open in gold and pred agree so far
        self.gold, self.found, self.correct = Counter(), Counter(), Counter()  # per type

    def step(self, gold: tuple[str, str], pred: tuple[str, str]) -> None:
        """One input line: close a correct chunk, open one, count chunk starts."""
        gold_ends = _end_of_chunk(self.last_gold, gold)
        pred_ends = _end_of_chunk(self.last_pred, pred)
        if self.in_correct:
            if gold_ends and pred_ends and self.last_gold[1] == self.last_pred[1]:
                self.in_correct = False
                self.correct[self.last_gold[1]] += 1
            elif gold_ends != pred_ends or gold[1] != pred[1]:
                self.in_correct = False
        gold_starts = _start_of_chunk(self.last_gold, gold)
        pred_starts = _start_of_chunk(self.last_pred, pred)
        if gold_starts and pred_starts and gold[1] == pred[1]:
            self.in_correct = True
        if gold_starts:
            self.gold[gold[1]] += 1
        if pred_starts:
            self.found[pred[1]] += 1
        self.last_gold, self.last_pred = gold, pred

    def finish(self) -> None:
        """The end of the input: a correct chunk still open counts."""
        if self.in_correct:
            self.correct[self.last_gold[1]] += 1


def conlleval_counts(gold: Tags, pred: Tags) -> dict:
    """What conlleval.pl counts on ``conlleval_lines(tokens, gold, pred)``.

    Tags in any scheme conlleval reads (IOB1, IOB2, IOE, BIOES as above).
    Returns {"tokens", "correct_tags", "gold_phrases", "found_phrases",
    "correct_phrases": int, "per_type": {TYPE: {"gold", "found", "correct":
    int}}}, types sorted; phrases are conlleval's chunks.

    >>> counts = conlleval_counts([["I-PER", "I-PER", "O"]], [["B-PER", "I-PER", "I-LOC"]])
    >>> counts["correct_phrases"], counts["found_phrases"], counts["per_type"]["LOC"]
    (1, 2, {'gold': 0, 'found': 1, 'correct': 0})
    """
    counter = _ChunkCounter()
    tokens = correct_tags = 0
    for gold_tags, pred_tags in zip(gold, pred, strict=True):
        for gold_tag, pred_tag in zip(gold_tags, pred_tags, strict=True):
            read_gold, read_pred = _conlleval_tag(gold_tag), _conlleval_tag(pred_tag)
            counter.step(read_gold, read_pred)
            tokens += 1
            correct_tags += read_gold == read_pred
        counter.step(_OUTSIDE, _OUTSIDE)  # the blank line after each sentence
    counter.finish()
    per_type = {
        name: {
            "gold": counter.gold[name],
            "found": counter.found[name],
            "correct": counter.correct[name],
        }
        for name in sorted(counter.gold.keys() | counter.found.keys())
    }
    return {
        "tokens": tokens,
        "correct_tags": correct_tags,
        "gold_phrases": sum(counter.gold.values()),
        "found_phrases": sum(counter.found.values()),
        "correct_phrases": sum(counter.correct.values()),
        "per_type": per_type,
    }


def _conlleval_prf(correct: int, gold: int, found: int) -> tuple[float, float, float]:
    """Precision, recall and FB1 in percent, computed in conlleval's order of operations."""
    precision = 100 * correct / found if found else 0.0
    recall = 100 * correct / gold if gold else 0.0
    fb1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, fb1


def _conlleval_scores(precision: float, recall: float, fb1: float) -> str:
    """conlleval's "precision: ...; recall: ...; FB1: ..." with its %6.2f fields."""
    return f"precision: {precision:6.2f}%; recall: {recall:6.2f}%; FB1: {fb1:6.2f}"


def format_conlleval(counts: dict) -> str:
    """The text conlleval.pl prints for ``counts`` (a ``conlleval_counts`` result), byte for byte.

    >>> print(format_conlleval(conlleval_counts([["B-LOC", "O"]], [["B-LOC", "B-PER"]])), end="")
    processed 2 tokens with 1 phrases; found: 2 phrases; correct: 1.
    accuracy:  50.00%; precision:  50.00%; recall: 100.00%; FB1:  66.67
                  LOC: precision: 100.00%; recall: 100.00%; FB1: 100.00  1
                  PER: precision:   0.00%; recall:   0.00%; FB1:   0.00  1
    """
    gold, found, correct = (counts[f"{k}_phrases"] for k in ("gold", "found", "correct"))
    lines = [
        f"processed {counts['tokens']} tokens with {gold} phrases; "
        f"found: {found} phrases; correct: {correct}."
    ]
    if counts["tokens"]:
        accuracy = 100 * counts["correct_tags"] / counts["tokens"]
        scores = _conlleval_scores(*_conlleval_prf(correct, gold, found))
        lines.append(f"accuracy: {accuracy:6.2f}%; {scores}")
    for name, row in counts["per_type"].items():
        scores = _conlleval_scores(*_conlleval_prf(row["correct"], row["gold"], row["found"]))
        # printf "%17s" in Perl pads to 17 bytes of the UTF-8 name, not 17 characters.
        padding = " " * max(0, 17 - len(name.encode("utf-8")))
        lines.append(f"{padding}{name}: {scores}  {row['found']}")
    return "\n".join(lines) + "\n"


def conlleval_lines(tokens: Tags, gold: Tags, pred: Tags) -> str:
    """Lines of "token gold pred", a blank line after each sentence: conlleval.pl's input.

    ValueError for a token conlleval would misread: one holding a space, or
    CONLLEVAL_BOUNDARY itself.

    >>> print(conlleval_lines([["EU", "rejects"]], [["B-ORG", "O"]], [["B-ORG", "O"]]), end="")
    EU B-ORG B-ORG
    rejects O O
    <BLANKLINE>
    """
    lines = []
    for sentence in zip(tokens, gold, pred, strict=True):
        for token, gold_tag, pred_tag in zip(*sentence, strict=True):
            if " " in token or token == CONLLEVAL_BOUNDARY:
                raise ValueError(f"conlleval cannot read the token {token!r}")
            lines.append(f"{token} {gold_tag} {pred_tag}\n")
        lines.append("\n")
    return "".join(lines)
