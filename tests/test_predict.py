import numpy as np

from nerwin.data.tokenize import tokenize
from nerwin.predict import Tagged, format_inline, format_jsonl

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


def test_every_entity_offset_slices_back_to_its_text():
    text = "Mr. O'Neill met  Jean-Luc Picard in São Paulo, Brazil's biggest city."
    tokens, offsets = tokenize(text)
    assert all(text[a:b] == token for token, (a, b) in zip(tokens, offsets, strict=True))
    tags = ["O"] * len(tokens)
    for start, end, kind in ((2, 3, "PER"), (4, 6, "PER"), (7, 9, "LOC"), (10, 11, "LOC")):
        tags[start:end] = [f"B-{kind}"] + [f"I-{kind}"] * (end - start - 1)
    item = Tagged(tokens, tags, one_hot_rows(tags), np.zeros(len(tokens)), text, offsets)
    import json

    for entity in json.loads(format_jsonl(item, LABELS))["entities"]:
        assert text[entity["start"] : entity["end"]] == entity["text"]
    assert [e["text"] for e in json.loads(format_jsonl(item, LABELS))["entities"]] == [
        "O'Neill", "Jean-Luc Picard", "São Paulo", "Brazil",
    ]  # fmt: skip


def test_model_keeps_its_tokenizer(tmp_path):
    from nerwin.model import WindowTagger
    from nerwin.predict import tag_text_lines

    from .test_model import make_model, small_config

    model, _ = make_model(small_config())
    model.tokenizer = r"\S+"  # whitespace tokens: "Paris." stays one token
    model.save(tmp_path)
    loaded = WindowTagger.load(tmp_path)
    (item,) = tag_text_lines(loaded, ["to Paris."])
    assert list(item.tokens) == ["to", "Paris."]
