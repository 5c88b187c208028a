"""Running a model over text: tokenise, batch, tag, evaluate, format.

Everything streams: sentences are read, tagged and yielded a batch at a
time, so memory does not grow with the input, only with its longest
sentence. Spans are half-open, ``[start, end)``, both for token indexes and
for character offsets.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from nerwin.analysis import explain
from nerwin.data.conll import Sentence, from_iob2, write_conll
from nerwin.data.tokenize import tokenize
from nerwin.decode import decode_batch, span_confidence, spans
from nerwin.errors import NerwinError
from nerwin.metrics import conlleval_lines, evaluate_tags
from nerwin.model import WindowTagger, atomic_write
from nerwin.nn.gates import softmax

DIGITS = 4  # of the probabilities predict prints, and that --min-confidence compares
SENTENCES_PER_BATCH = 512
# Tokens of one forward pass: its hidden layer is (tokens, H) floats, 20 MB at H = 300.
TOKENS_PER_BATCH = 16384

Item = TypeVar("Item")


@dataclass
class Tagged:
    """One tagged sentence.

    tags: the decoded IOB2 tag of each token.
    p_tag: shape (T, C) P(tag) over the model's labels.
    p_ent: shape (T,) P(entity) from the binary head.
    offsets: the (start, end) character offsets of each token in ``text``, if it came as text.
    """

    tokens: Sequence[str]
    tags: list[str]
    p_tag: np.ndarray
    p_ent: np.ndarray
    text: str | None = None
    offsets: list[tuple[int, int]] | None = None

    def tag_probabilities(self, labels: Sequence[str]) -> np.ndarray:
        """P of each decoded tag, shape (T,)."""
        index = {label: i for i, label in enumerate(labels)}
        return self.p_tag[np.arange(len(self.tags)), [index[t] for t in self.tags]]

    def drop_unsure(self, labels: Sequence[str], min_confidence: float) -> None:
        """Tag O every span whose confidence, to DIGITS decimals as printed, is below
        ``min_confidence``."""
        for entity_type, start, end in spans(self.tags):
            confidence = span_confidence(self.p_tag, labels, (entity_type, start, end))
            if round(confidence, DIGITS) < min_confidence:
                self.tags[start:end] = ["O"] * (end - start)

    def entities(self, labels: Sequence[str]) -> list[dict]:
        """The decoded spans with type, token range, confidence and, for text, offsets."""
        found = []
        for entity_type, start, end in spans(self.tags):
            entity = {
                "type": entity_type,
                "text": " ".join(self.tokens[start:end]),
                "token_start": start,
                "token_end": end,
                "confidence": span_confidence(self.p_tag, labels, (entity_type, start, end)),
            }
            if self.offsets is not None:
                entity["start"] = self.offsets[start][0]
                entity["end"] = self.offsets[end - 1][1]
                entity["text"] = self.text[entity["start"] : entity["end"]]
            found.append(entity)
        return found


def tag_batch(model: WindowTagger, token_lists: Sequence[Sequence[str]]) -> list[Tagged]:
    """Tag sentences all at once: forward passes of TOKENS_PER_BATCH tokens, one decode."""
    ids, lengths = model.encoder.sentence_ids(token_lists)  # (T, F), (S,)
    p_ent, p_tag = probabilities_in_pieces(model, ids, lengths)
    bounds = np.r_[0, np.cumsum(lengths)]
    tags = decode_batch(p_tag, bounds, model.labels, model.config.model.decode)
    starts = bounds.tolist()  # Python ints slice faster than numpy's
    return [
        Tagged(tokens, sentence_tags, p_tag[a:b], p_ent[a:b])
        for tokens, sentence_tags, a, b in zip(
            token_lists, tags, starts[:-1], starts[1:], strict=True
        )
    ]


def probabilities_in_pieces(
    model: WindowTagger, ids: np.ndarray, lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``model.token_probabilities``, TOKENS_PER_BATCH tokens a pass, sentences of any length.

    A token's window reaches k tokens either side, so each pass also reads
    up to k tokens of its sentences beyond its ends and drops their rows: the
    numbers are those of one pass over everything. ids: shape (T, F);
    lengths: shape (S,). Returns (p_ent: shape (T,), p_tag: shape (T, C)).
    """
    if len(ids) <= TOKENS_PER_BATCH:
        return model.token_probabilities(ids, lengths)
    k = model.config.features.window
    bounds = np.r_[0, np.cumsum(lengths)]  # (S + 1,)
    p_ent, p_tag = [], []
    for start in range(0, len(ids), TOKENS_PER_BATCH):
        stop = min(start + TOKENS_PER_BATCH, len(ids))
        sentence_start = bounds[np.searchsorted(bounds, start, side="right") - 1]
        sentence_end = bounds[np.searchsorted(bounds, stop - 1, side="right")]
        low, high = max(start - k, sentence_start), min(stop + k, sentence_end)
        piece_lengths = np.diff(np.clip(bounds, low, high))
        ent, tag = model.token_probabilities(ids[low:high], piece_lengths[piece_lengths > 0])
        p_ent.append(ent[start - low : stop - low])
        p_tag.append(tag[start - low : stop - low])
    return np.concatenate(p_ent), np.concatenate(p_tag)


def batches(
    items: Iterable[Item], size: Callable[[Item], int], sentences: int = SENTENCES_PER_BATCH
) -> Iterator[list[Item]]:
    """``items`` in lists of at most ``sentences`` items and TOKENS_PER_BATCH tokens in all.

    ``size(item)`` is its tokens; an item longer than the budget comes alone.
    """
    batch: list[Item] = []
    tokens = 0
    for item in items:
        if batch and (len(batch) == sentences or tokens + size(item) > TOKENS_PER_BATCH):
            yield batch
            batch, tokens = [], 0
        batch.append(item)
        tokens += size(item)
    if batch:
        yield batch


def tag_stream(
    model: WindowTagger, token_lists: Iterable[Sequence[str]], batch: int = SENTENCES_PER_BATCH
) -> Iterator[Tagged]:
    """Tag an iterable of token lists lazily, a batch of at most ``batch`` sentences at a time."""
    for chunk in batches(token_lists, len, batch):
        yield from tag_batch(model, chunk)


def tag_text_lines(model: WindowTagger, lines: Iterable[str]) -> Iterator[Tagged]:
    """Raw text, one sentence per line -> tagged sentences with offsets, one per line.

    A blank line is a sentence of no tokens, so the output keeps the input's
    lines (jsonl) and paragraphs (inline).
    """
    texts = (line.rstrip("\r\n") for line in lines)
    split = ((text, *tokenize(text, model.tokenizer)) for text in texts)  # (text, tokens, offsets)
    for chunk in batches(split, lambda item: len(item[1])):
        tagged = tag_batch(model, [tokens for _, tokens, _ in chunk])
        for (text, _, offsets), item in zip(chunk, tagged, strict=True):
            item.text, item.offsets = text, offsets
            yield item


def evaluate(model: WindowTagger, sentences: Sequence[Sentence]) -> dict:
    """Entity, binary and confusion scores of ``model`` on gold ``sentences``."""
    tagged = list(tag_stream(model, (s.tokens for s in sentences)))
    gold = [list(s.tags) for s in sentences]
    pred = [t.tags for t in tagged]
    p_ent = np.concatenate([t.p_ent for t in tagged]) if tagged else np.zeros(0)
    return evaluate_tags(gold, pred, p_entity=p_ent)


def explain_model(
    model: WindowTagger, sentences: Sequence[Sentence], errors: int = 0
) -> tuple[dict, list[list[str]]]:
    """``analysis.explain`` of ``model`` on gold ``sentences``, and the tags it predicted."""
    tagged = list(tag_stream(model, (s.tokens for s in sentences)))
    p_tag = [t.p_tag for t in tagged]
    # softmax(T log p) undoes softmax(o / T): P(tag) as it was before temperature scaling.
    unscaled = [softmax(model.temperature * np.log(np.maximum(p, 1e-30))) for p in p_tag]
    pred = [t.tags for t in tagged]
    result = explain(
        [s.tokens for s in sentences],
        [list(s.tags) for s in sentences],
        pred,
        p_tag,
        [t.p_ent for t in tagged],
        model.labels,
        errors=errors,
        p_tag_unscaled=unscaled if model.temperature != 1.0 else None,
        lines=[s.line for s in sentences],
    )
    return result, pred


def write_prediction_file(path, sentences: Sequence[Sentence], pred: list[list[str]]) -> None:
    """``token gold predicted`` lines, a blank line after each sentence: conlleval.pl's input."""
    tokens, gold = [s.tokens for s in sentences], [list(s.tags) for s in sentences]
    try:
        text = conlleval_lines(tokens, gold, pred)
    except ValueError as err:
        raise NerwinError(f"{path}: cannot write for conlleval: {err}") from None
    data = text.encode("utf-8")
    atomic_write(Path(path), lambda file: file.write(data))


def format_conll(tagged: Tagged, labels: Sequence[str], scheme: str = "IOB2") -> str:
    """token, tag (in ``scheme``), P(tag), P(entity) per line, then a blank line.

    A sentence of no tokens (a blank line of text) has no lines: in CoNLL a
    blank line only ends a sentence.
    """
    if not tagged.tokens:
        return ""
    p_chosen = [f"{p:.{DIGITS}f}" for p in tagged.tag_probabilities(labels).tolist()]
    p_entity = [f"{p:.{DIGITS}f}" for p in tagged.p_ent.tolist()]  # Python floats: faster
    out = io.StringIO()
    write_conll(out, [(tagged.tokens, tagged.tags, p_chosen, p_entity)], scheme)
    return out.getvalue()


def format_jsonl(tagged: Tagged, labels: Sequence[str], scheme: str = "IOB2") -> str:
    """One JSON object: tokens, tags (in ``scheme``), per-token P(tag) and P(entity), spans."""
    record = {
        "tokens": list(tagged.tokens),
        "tags": from_iob2(tagged.tags, scheme),
        "p_tag": [round(p, DIGITS) for p in tagged.tag_probabilities(labels).tolist()],
        "p_entity": [round(p, DIGITS) for p in tagged.p_ent.tolist()],
        "entities": [
            {**entity, "confidence": round(entity["confidence"], DIGITS)}
            for entity in tagged.entities(labels)
        ],
    }
    if tagged.text is not None:
        record = {"text": tagged.text, "offsets": tagged.offsets, **record}
    return json.dumps(record, ensure_ascii=False) + "\n"


def format_inline(tagged: Tagged, labels: Sequence[str]) -> str:
    """The sentence with its entities bracketed: ``[PER Peter Blackburn] went to [LOC Paris]``.

    Text input keeps its own spacing; token input is joined with spaces.
    """
    if tagged.text is None:
        offsets, starts = [], 0
        for token in tagged.tokens:
            offsets.append((starts, starts + len(token)))
            starts += len(token) + 1
        text = " ".join(tagged.tokens)
    else:
        text, offsets = tagged.text, tagged.offsets
    pieces, done = [], 0
    for entity_type, start, end in spans(tagged.tags):
        begin, finish = offsets[start][0], offsets[end - 1][1]
        pieces += [text[done:begin], f"[{entity_type} {text[begin:finish]}]"]
        done = finish
    return "".join(pieces) + text[done:] + "\n"


FORMATS = {"conll": format_conll, "jsonl": format_jsonl, "inline": format_inline}
