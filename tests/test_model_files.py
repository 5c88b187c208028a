"""Damaged model files: each is one ModelError naming the file, never a traceback."""

import io
import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from nerwin.errors import ModelError, OutputError
from nerwin.model import WindowTagger

from .conftest import REPO
from .test_cli import assert_user_error, disk_with_room, run
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
    "label not a tag": (lambda meta: meta["labels"].__setitem__(1, "BANANA"), "labels"),
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


# name: (damage to one stored array, the end of the message)
BAD_WEIGHTS = {
    "text": (lambda array: array.astype(str), "is missing or not float32 of shape (16,)"),
    "int64": (lambda array: array.astype(np.int64), "is missing or not float32 of shape (16,)"),
    "float64": (lambda array: array.astype(np.float64), "is missing or not float32 of shape (16,)"),
    "NaN": (lambda array: np.full_like(array, np.nan), "holds NaN or infinite values"),
    "infinite": (lambda array: np.full_like(array, -np.inf), "holds NaN or infinite values"),
}


def damage_weights(directory, damage):
    """Replace ``hidden.b`` in ``directory``'s weights.npz by ``damage`` of it; the file's path."""
    path = directory / "weights.npz"
    with np.load(path) as weights:
        arrays = dict(weights)
    arrays["hidden.b"] = damage(arrays["hidden.b"])
    np.savez(path, **arrays)
    return path


LOADERS = {
    "load": WindowTagger.load,
    # What training ends with, restoring the best epoch's weights in place.
    "load_weights": lambda directory: make_model(small_config())[0].load_weights(directory),
}


@pytest.mark.parametrize("load", LOADERS.values(), ids=LOADERS.keys())
@pytest.mark.parametrize(("damage", "problem"), BAD_WEIGHTS.values(), ids=BAD_WEIGHTS.keys())
def test_damaged_weights_array(model_dir, damage, problem, load):
    path = damage_weights(model_dir, damage)
    with pytest.raises(ModelError) as caught:
        load(model_dir)
    assert str(caught.value) == f"{path}: 'hidden.b' {problem}"


def test_restoring_the_best_epoch_from_a_truncated_array_names_the_file(model_dir):
    path = model_dir / "weights.npz"
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members["hidden.b.npy"] = members["hidden.b.npy"][:-8]  # its last two float32 values
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(ModelError) as caught:
        make_model(small_config())[0].load_weights(model_dir)
    assert str(caught.value) == f"{path}: 'hidden.b' is truncated"


@pytest.mark.parametrize(
    ("content", "problem"),
    [(None, "missing"), (b"PK\x03\x04 and no more", "unreadable (File is not a zip file)")],
    ids=["missing", "not a zip"],
)
def test_restoring_the_best_epoch_from_a_missing_or_broken_file(model_dir, content, problem):
    path = model_dir / "weights.npz"
    path.unlink()
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelError) as caught:
        make_model(small_config())[0].load_weights(model_dir)
    assert str(caught.value) == f"{path}: {problem}"


def test_a_model_directory_that_cannot_be_made_names_it(tmp_path):
    (tmp_path / "file").touch()
    with pytest.raises(OutputError) as caught:
        make_model(small_config())[0].save(tmp_path / "file" / "model")
    assert str(caught.value) == f"{tmp_path / 'file' / 'model'}: cannot write (Not a directory)"


def test_a_failed_write_names_the_file_and_leaves_nothing(tmp_path, monkeypatch):
    disk_with_room(monkeypatch, 0)
    with pytest.raises(OutputError) as caught:
        make_model(small_config())[0].save(tmp_path)
    weights = tmp_path / "weights.npz"
    assert str(caught.value) == f"{weights}: cannot write (No space left on device)"
    assert list(tmp_path.iterdir()) == []


def test_a_failed_rename_names_the_file_and_leaves_no_temporary(tmp_path):
    (tmp_path / "model.json").mkdir()  # os.replace cannot put a file there
    with pytest.raises(OutputError) as caught:
        make_model(small_config())[0].save(tmp_path)
    assert str(caught.value) == f"{tmp_path / 'model.json'}: cannot write (Is a directory)"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model.json", "weights.npz"]


def test_saved_files_get_the_umask_mode(tmp_path):
    # nerwin reads the umask once, when imported: set it first, in a fresh process.
    code = (
        "import os, sys; os.umask(0o027)\n"
        "from tests.test_model import make_model, small_config\n"
        "make_model(small_config())[0].save(sys.argv[1])"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=REPO, check=True)
    for name in ("weights.npz", "model.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o640, name


def test_predict_with_a_damaged_model_is_one_line_and_exit_2(model_dir):
    meta_path = edit_meta(model_dir, lambda meta: meta.update(tokenizer="("))
    result = run("predict", "--model", model_dir, "-", input="Peter flew to Brussels .\n")
    assert_user_error(result, f"{meta_path}: tokenizer '(' does not compile")
