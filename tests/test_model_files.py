"""Damaged model files: each is one ModelError naming the file, never a traceback."""

import io
import json
import os

import numpy as np
import pytest

from nerwin.errors import ModelError
from nerwin.model import WindowTagger

from .test_cli import assert_user_error, run
from .test_model import make_model, small_config


@pytest.fixture
def model_dir(tmp_path):
    make_model(small_config())[0].save(tmp_path)
    return tmp_path


def edit_meta(directory, edit):
    """Apply ``edit`` to the parsed model.json of ``directory`` and write it back; its path."""
    path = directory / "model.json"
    meta = json.loads(path.read_text(encoding="utf-8"))
    edit(meta)
    path.write_text(json.dumps(meta), encoding="utf-8")
    return path


# name: (edit of model.json, a fragment the message must hold)
DAMAGE = {
    "vocabulary missing": (lambda meta: meta["vocabs"].pop("word"), "'word'"),
    "vocabulary without <unk>": (lambda meta: meta["vocabs"]["word"].pop(0), "'word'"),
    "vocabulary not a list": (lambda meta: meta["vocabs"].update(word=5), "'word'"),
    "vocabulary with a number": (lambda meta: meta["vocabs"]["caps"].append(7), "'caps'"),
    "vocabulary with a repeat": (lambda meta: meta["vocabs"]["suffix"].append("<s>"), "'suffix'"),
    "temperature a string": (lambda meta: meta.update(temperature="hot"), "temperature"),
    "temperature zero": (lambda meta: meta.update(temperature=0), "temperature"),
    "temperature NaN": (lambda meta: meta.update(temperature=float("nan")), "temperature"),
    "temperature infinite": (lambda meta: meta.update(temperature=float("inf")), "temperature"),
    "temperature true": (lambda meta: meta.update(temperature=True), "temperature"),
    "label not a tag": (lambda meta: meta["labels"].__setitem__(1, "BANANA"), "BANANA"),
    "label a number": (lambda meta: meta["labels"].__setitem__(1, 3), "labels"),
    "labels without O": (lambda meta: meta["labels"].remove("O"), "labels"),
    "label repeated": (lambda meta: meta["labels"].append("B-PER"), "labels"),
    "label without its I- tag": (lambda meta: meta["labels"].remove("I-PER"), "labels"),
    "tokenizer does not compile": (lambda meta: meta.update(tokenizer="("), "tokenizer"),
    "tokenizer not a string": (lambda meta: meta.update(tokenizer=5), "tokenizer"),
    "frequent tokens not a list": (lambda meta: meta.update(frequent_tokens=5), "frequent"),
}


@pytest.mark.parametrize(("edit", "fragment"), DAMAGE.values(), ids=DAMAGE.keys())
def test_damaged_model_json(model_dir, edit, fragment):
    meta_path = edit_meta(model_dir, edit)
    with pytest.raises(ModelError) as caught:
        WindowTagger.load(model_dir)
    message = str(caught.value)
    assert message.startswith(f"{meta_path}: ")
    assert fragment in message


def npy_bytes() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.zeros(3))
    return buffer.getvalue()


@pytest.mark.parametrize("content", [b"not a zip file", npy_bytes()], ids=["text", "npy"])
def test_weights_not_an_npz_archive(model_dir, content):
    # np.load's own message for these advises unpickling the file.
    path = model_dir / "weights.npz"
    path.write_bytes(content)
    with pytest.raises(ModelError) as caught:
        WindowTagger.load(model_dir)
    assert str(caught.value) == f"{path}: not an .npz archive of weights"


def test_saved_files_get_the_umask_mode(tmp_path):
    model, _ = make_model(small_config())
    previous = os.umask(0o027)
    try:
        model.save(tmp_path)
    finally:
        os.umask(previous)
    for name in ("weights.npz", "model.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o640, name


def test_predict_with_a_damaged_model_is_one_line_and_exit_2(model_dir):
    meta_path = edit_meta(model_dir, lambda meta: meta.update(tokenizer="("))
    result = run("predict", "--model", model_dir, "-", input="Peter flew to Brussels .\n")
    assert_user_error(result, f"{meta_path}: tokenizer '(' does not compile")
