import json

import numpy as np
import pytest

import nerwin.model
import nerwin.predict as predict
from nerwin.data.conll import Sentence
from nerwin.data.features import encode_windows
from nerwin.data.tokenize import tokenize
from nerwin.errors import NerwinError
from nerwin.model import WindowTagger
from nerwin.predict import Tagged, format_inline, format_jsonl, tag_text_lines

from .test_model import make_model, small_config

LABELS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


def one_hot_rows(tags, confidence=0.9):
    """p_tag rows giving each tag ``confidence`` and sharing the rest."""
    rows = np.full((len(tags), len(LABELS)), (1 - confidence) / (len(LABELS) - 1))
    rows[np.arange(len(tags)), [LABELS.index(t) for t in tags]] = confidence
    return rows


def tagged_text(text, tags, confidence=0.9):
    tokens, offsets = tokenize(text)
    return Tagged(tokens, list(tags), one_hot_rows(tags, confidence), np.zeros(len(tags)),
                  text=text, offsets=offsets)  # fmt: skip


def test_inline_keeps_the_text_and_brackets_entities():
    item = tagged_text(
        "Peter Blackburn flew to  Paris.", ["B-PER", "I-PER", "O", "O", "B-LOC", "O"]
    )
    assert format_inline(item, LABELS) == "[PER Peter Blackburn] flew to  [LOC Paris].\n"


def test_inline_on_tokens_joins_with_spaces():
    item = Tagged(["in", "New", "York"], ["O", "B-LOC", "I-LOC"], one_hot_rows(["O"] * 3), None)
    assert format_inline(item, LABELS) == "in [LOC New York]\n"


def test_drop_unsure_removes_spans_below_the_threshold():
    item = tagged_text("Paris and Rome", ["B-LOC", "O", "B-LOC"])
    item.p_tag[2, LABELS.index("B-LOC")] = 0.3  # Rome is unsure
    item.drop_unsure(LABELS, 0.5)
    assert item.tags == ["B-LOC", "O", "O"]


def test_drop_unsure_compares_the_confidence_as_printed():
    item = tagged_text("Paris", ["B-LOC"], confidence=0.93098)
    (entity,) = json.loads(format_jsonl(item, LABELS))["entities"]
    item.drop_unsure(LABELS, entity["confidence"])  # 0.931: the span shown is kept
    assert item.tags == ["B-LOC"]
    item.drop_unsure(LABELS, 0.9311)
    assert item.tags == ["O"]


def test_every_entity_offset_slices_back_to_its_text():
    text = "Mr. O'Neill met  Jean-Luc Picard in São Paulo, Brazil's biggest city."
    tokens, offsets = tokenize(text)
    assert all(text[a:b] == token for token, (a, b) in zip(tokens, offsets, strict=True))
    tags = ["O"] * len(tokens)
    for start, end, kind in ((2, 3, "PER"), (4, 6, "PER"), (7, 9, "LOC"), (10, 11, "LOC")):
        tags[start:end] = [f"B-{kind}"] + [f"I-{kind}"] * (end - start - 1)
    item = Tagged(tokens, tags, one_hot_rows(tags), np.zeros(len(tokens)), text, offsets)
    for entity in json.loads(format_jsonl(item, LABELS))["entities"]:
        assert text[entity["start"] : entity["end"]] == entity["text"]
    assert [e["text"] for e in json.loads(format_jsonl(item, LABELS))["entities"]] == [
        "O'Neill", "Jean-Luc Picard", "São Paulo", "Brazil",
    ]  # fmt: skip


def test_model_keeps_its_tokenizer(tmp_path):
    model, _ = make_model(small_config())
    model.tokenizer = r"\S+"  # whitespace tokens: "Paris." stays one token
    model.save(tmp_path)
    loaded = WindowTagger.load(tmp_path)
    (item,) = tag_text_lines(loaded, ["to Paris."])
    assert list(item.tokens) == ["to", "Paris."]


# -- batching: a token budget per forward pass, long sentences still whole -------------------


def loaded_model(tmp_path):
    """A frozen model, as `nerwin predict` uses it, and its unfrozen original."""
    model, _ = make_model(small_config())
    model.save(tmp_path)
    return WindowTagger.load(tmp_path), model


SENTENCES = [
    ["Peter", "Blackburn", "flew", "to", "Paris", "."],
    ["in", "New", "York"],
    [],
    ["Rome"],
    ["the", "U.S.", "team", "beat", "Germany", "in", "Berlin", "on", "Tuesday", "."] * 3,
]


def test_batches_keep_to_the_token_budget(monkeypatch):
    monkeypatch.setattr(predict, "TOKENS_PER_BATCH", 10)
    chunks = list(predict.batches(SENTENCES, len))
    assert [[len(s) for s in chunk] for chunk in chunks] == [[6, 3, 0, 1], [30]]
    assert list(predict.batches(SENTENCES, len, sentences=2))[0] == SENTENCES[:2]


def assert_same_tagging(whole, pieces):
    for a, b in zip(whole, pieces, strict=True):
        assert a.tags == b.tags
        np.testing.assert_allclose(a.p_tag, b.p_tag, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(a.p_ent, b.p_ent, rtol=1e-6, atol=1e-7)


def test_a_small_token_budget_gives_the_same_probabilities_and_tags(tmp_path, monkeypatch):
    for model in loaded_model(tmp_path):
        whole = predict.tag_batch(model, SENTENCES)
        monkeypatch.setattr(predict, "TOKENS_PER_BATCH", 4)  # pieces cut sentences anywhere
        pieces = predict.tag_batch(model, SENTENCES)
        monkeypatch.undo()
        assert_same_tagging(whole, pieces)


def test_the_graph_in_small_passes_gives_the_same_probabilities(monkeypatch):
    model, _ = make_model(small_config())  # not frozen: the graph, as in dev evaluation
    whole = predict.tag_batch(model, SENTENCES)
    monkeypatch.setattr(nerwin.model, "GRAPH_CHUNK", 5)
    assert_same_tagging(whole, predict.tag_batch(model, SENTENCES))


def test_calibrations_scores_in_small_passes_are_the_same(monkeypatch):
    model, _ = make_model(small_config())
    windows = encode_windows(SENTENCES, model.vocabs, model.config.features.window)
    feeds = model.feeds(windows, np.arange(len(windows)))
    whole = model.tag_scores(feeds)
    monkeypatch.setattr(nerwin.model, "GRAPH_CHUNK", 5)
    np.testing.assert_allclose(model.tag_scores(feeds), whole, rtol=1e-6, atol=1e-6)


def test_a_batch_of_empty_sentences_is_tagged_on_either_path(tmp_path):
    for model in loaded_model(tmp_path):
        tagged = predict.tag_batch(model, [[], []])
        assert [item.p_tag.shape for item in tagged] == [(0, len(model.labels))] * 2


def test_a_line_longer_than_the_budget_is_tagged_as_one_sentence(tmp_path, monkeypatch):
    model, _ = loaded_model(tmp_path)
    line = "Peter Blackburn flew from Brussels to Lisbon on Tuesday . " * 50
    (whole,) = predict.tag_text_lines(model, [line])
    calls = []
    original = type(model).token_probabilities

    def counted(self, ids, lengths):
        calls.append(len(ids))
        return original(self, ids, lengths)

    monkeypatch.setattr(type(model), "token_probabilities", counted)
    monkeypatch.setattr(predict, "TOKENS_PER_BATCH", 64)
    (pieced,) = predict.tag_text_lines(model, [line])
    k = model.config.features.window
    assert len(pieced.tokens) == 500 and max(calls) <= 64 + 2 * k and len(calls) == 8
    assert pieced.tags == whole.tags and pieced.offsets == whole.offsets
    np.testing.assert_allclose(pieced.p_tag, whole.p_tag, rtol=1e-6, atol=1e-7)


def test_jsonl_confidence_is_rounded_like_the_probabilities():
    item = tagged_text("Paris and Rome", ["B-LOC", "O", "B-LOC"], confidence=0.123456789)
    (entity, _) = json.loads(format_jsonl(item, LABELS))["entities"]
    assert entity["confidence"] == round(entity["confidence"], 4)
    assert len(str(entity["confidence"])) <= len("0.0001")


def test_prediction_file_is_whole_or_absent(tmp_path):
    path = tmp_path / "pred.txt"
    sentence = Sentence(tokens=("Paris",), tags=("B-LOC",), line=1, doc=0)
    predict.write_prediction_file(path, [sentence], [["B-LOC"]])
    assert path.read_text(encoding="utf-8") == "Paris B-LOC B-LOC\n\n"
    blocked = tmp_path / "blocked"
    blocked.mkdir()  # renaming the finished file onto a directory fails
    with pytest.raises(NerwinError, match="blocked.*cannot write"):
        predict.write_prediction_file(blocked, [sentence], [["B-LOC"]])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocked", "pred.txt"]  # no temp file
