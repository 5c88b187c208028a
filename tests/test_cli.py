"""Tests for the ``nerwin`` command: train, eval, predict, gradcheck and their errors.

One small model is trained once per module on the shipped sample data
(a few seconds); every other test reads it.
"""

import errno
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from nerwin import __version__
from nerwin.cli import main
from nerwin.data.conll import read_conll

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample"
TEST_FILE = SAMPLE / "test.conll"
LABELS = ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
TYPES = ["LOC", "MISC", "ORG", "PER"]
# Gold entity counts of test.conll, from data/sample/README.md.
TEST_SUPPORT = {"LOC": 57, "MISC": 30, "ORG": 44, "PER": 33}
SENTENCES = [
    "LONDON , February 11",
    "Arsenal climbed to second in the Premier League after beating Chelsea in London .",
    "Peter Blackburn visited Paris and Berlin for the U.S. team.",
]
PARAMETERS = [
    "word.table",
    "caps.table",
    "hidden.W",
    "hidden.b",
    "binary.u",
    "binary.c",
    "tag.V",
    "tag.e",
    "x",
]


def make_runner() -> CliRunner:
    """A runner that keeps stderr apart from stdout (the default from click 8.2)."""
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 dropped the argument: stderr is always separate
        return CliRunner()


def run(*args, input=None):
    return make_runner().invoke(main, [str(arg) for arg in args], input=input)


def assert_ok(result):
    assert result.exit_code == 0, (result.output, result.exception)
    assert result.exception is None
    return result.stdout


def assert_user_error(result, *fragments):
    """Exit code 2, one ``nerwin: ...`` line on stderr holding every fragment, no traceback."""
    assert "Traceback" not in result.output
    assert "Traceback" not in result.stderr
    assert isinstance(result.exception, SystemExit), result.exc_info
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("nerwin: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def assert_valid_iob2(tags):
    """Every tag is O, B-X or I-X, and each I-X continues an X."""
    previous = "O"
    for tag in tags:
        assert tag in LABELS, tag
        if tag.startswith("I-"):
            assert previous[2:] == tag[2:], (previous, tag, tags)
        previous = tag


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# -- the trained model ----------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(model directory, stdout of `nerwin train`) for a small model on the sample data."""
    model_dir = tmp_path_factory.mktemp("cli") / "model"
    result = run(
        "train",
        "--set",
        "train.epochs=6",
        "--set",
        "model.hidden=50",
        "--set",
        f"data.dir={SAMPLE}",
        "--output",
        model_dir,
    )
    stdout = assert_ok(result)
    return model_dir, stdout


@pytest.fixture(scope="module")
def model_dir(trained):
    return trained[0]


def test_train_reports_epochs_and_scores(trained):
    model_dir, stdout = trained
    lines = stdout.splitlines()
    assert lines[0].startswith("training on 4768 tokens (325 sentences), 9 tags, vocabulary ")
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert [line.split(" | ")[0] for line in epochs] == [f"epoch {e}/6" for e in range(1, 7)]
    for line in epochs:
        assert re.fullmatch(r"epoch \d/6 \| loss \d+\.\d{4} \| dev F1 \d+\.\d\d \| .+k tok/s", line)
    assert re.search(
        rf"^best epoch [1-6], [\d.]+ s; model saved in {re.escape(str(model_dir))}$", stdout, re.M
    )
    assert "\n== dev ==\n" in stdout
    assert "\n== test ==\n" in stdout
    assert stdout.index("== dev ==") < stdout.index("== test ==")
    assert stdout.count("micro avg") == 2


def test_train_writes_the_model_directory(model_dir):
    for name in ("model.json", "weights.npz", "train.log", "metrics.jsonl"):
        assert (model_dir / name).is_file(), name
    meta = json.loads((model_dir / "model.json").read_text(encoding="utf-8"))
    assert meta["format_version"] == 1
    assert meta["nerwin_version"] == __version__
    assert meta["labels"] == LABELS
    assert meta["config"]["train"]["epochs"] == 6
    assert meta["config"]["model"]["hidden"] == 50
    assert meta["config"]["output"] == str(model_dir)
    records = [json.loads(line) for line in (model_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3, 4, 5, 6]


def test_train_log_has_the_lines_printed(trained):
    model_dir, stdout = trained
    log = (model_dir / "train.log").read_text(encoding="utf-8")
    assert log.splitlines() == [
        line
        for line in stdout.splitlines()
        if line.startswith(("training on", "epoch ", "tag head temperature"))
    ]


# -- eval ---------------------------------------------------------------------------


def test_eval_prints_the_per_type_table(model_dir):
    stdout = assert_ok(run("eval", "--model", model_dir, TEST_FILE))
    lines = stdout.splitlines()
    assert lines[0].startswith("== entities, lenient")
    assert re.fullmatch(r"type\s+precision\s+recall\s+f1\s+support", lines[1])
    rows = {line.split("  ")[0].strip(): line.split() for line in lines[2:8]}
    assert list(rows) == [*TYPES, "micro avg", "macro avg"]
    for name in TYPES:
        assert int(rows[name][-1]) == TEST_SUPPORT[name]
        assert all(0.0 <= float(value) <= 100.0 for value in rows[name][1:4])
    assert int(rows["micro avg"][-1]) == sum(TEST_SUPPORT.values())
    assert re.search(r"^token accuracy: \d+\.\d\d$", stdout, re.M)
    assert re.search(r"^entity detection \(P\(entity\) > 0\.5\): P ", stdout, re.M)
    assert "confusion (rows gold, columns predicted; O = missed / spurious):" in stdout


def test_eval_matches_the_test_report_of_train(trained):
    # The saved model is the one train scored, so the report is the same to the digit.
    model_dir, train_stdout = trained
    stdout = assert_ok(run("eval", "--model", model_dir, TEST_FILE))
    report = stdout.split("\n\n== entities, strict")[0].split("\n", 1)[1]
    assert f"\n== test ==\n{report.rstrip()}" in train_stdout


def test_eval_json(model_dir):
    stdout = assert_ok(run("eval", "--model", model_dir, TEST_FILE, "--json"))
    scores = json.loads(stdout)
    assert {"entity", "binary", "confusion", "accuracy", "conlleval", "calibration"} <= set(scores)
    assert set(scores["entity"]) == {"per_type", "micro", "macro"}
    assert list(scores["entity"]["per_type"]) == TYPES
    for name, support in TEST_SUPPORT.items():
        assert scores["entity"]["per_type"][name]["support"] == support
    assert scores["entity"]["micro"]["support"] == 164
    assert 0.0 < scores["accuracy"] <= 1.0
    assert 0.0 <= scores["binary"]["f1"] <= 1.0
    assert scores["binary"]["threshold"] == 0.5
    assert scores["confusion"]["labels"] == [*TYPES, "O"]
    # A trained model finds some entities: the table says the same as the JSON.
    assert scores["entity"]["micro"]["f1"] > 0.0
    table = assert_ok(run("eval", "--model", model_dir, TEST_FILE))
    micro = next(line for line in table.splitlines() if line.startswith("micro avg"))
    assert micro.split()[4] == f"{100 * scores['entity']['micro']['f1']:.2f}"


def test_eval_conlleval_format_and_prediction_file(model_dir, tmp_path):
    predictions = tmp_path / "pred.txt"
    stdout = assert_ok(
        run("eval", "--model", model_dir, TEST_FILE, "--format", "conlleval",
            "--write-predictions", predictions)
    )  # fmt: skip
    header = re.fullmatch(
        r"processed 1299 tokens with 164 phrases; found: (\d+) phrases; correct: (\d+)\.",
        stdout.splitlines()[0],
    )
    assert header, stdout
    assert re.match(r"accuracy: +\d+\.\d\d%; precision: ", stdout.splitlines()[1])
    lines = predictions.read_text().split("\n\n")[0].splitlines()
    assert [line.split()[:2] for line in lines] == [
        [token, tag] for token, tag in zip(*_first_test_sentence(), strict=True)
    ]


def _first_test_sentence():
    sentence = read_conll(TEST_FILE)[0]
    return sentence.tokens, sentence.tags


@pytest.mark.parametrize("output_format", ["table", "conlleval"])
def test_eval_json_with_another_format_is_one_line(model_dir, output_format):
    result = run("eval", "--model", model_dir, TEST_FILE, "--json", "--format", output_format)
    assert assert_user_error(result) == f"nerwin: --json and --format {output_format}: choose one"


def test_eval_errors_must_not_be_negative(model_dir):
    result = run("eval", "--model", model_dir, TEST_FILE, "--errors", "-3")
    assert result.exit_code == 2
    assert "Invalid value for '--errors'" in result.stderr


def test_eval_errors_lists_worst_errors(model_dir):
    stdout = assert_ok(run("eval", "--model", model_dir, TEST_FILE, "--errors", "2"))
    assert "== worst errors ==" in stdout
    assert "false positives" in stdout and "false negatives" in stdout


# -- predict ------------------------------------------------------------------------------


def parse_conll_output(stdout):
    """Sentences of (token, tag, p_tag, p_ent) rows; checks the layout on the way."""
    assert stdout.endswith("\n\n")
    blocks = stdout[:-2].split("\n\n")
    sentences = []
    for block in blocks:
        rows = []
        for line in block.split("\n"):
            columns = line.split(" ")
            assert len(columns) == 4, line
            token, tag, p_tag, p_ent = columns
            assert re.fullmatch(r"[01]\.\d{4}", p_tag), line
            assert re.fullmatch(r"[01]\.\d{4}", p_ent), line
            assert 0.0 <= float(p_tag) <= 1.0 and 0.0 <= float(p_ent) <= 1.0
            rows.append((token, tag, float(p_tag), float(p_ent)))
        assert_valid_iob2([tag for _, tag, _, _ in rows])
        sentences.append(rows)
    return sentences


def test_predict_text_to_conll(model_dir, tmp_path):
    path = write(tmp_path / "input.txt", "\n".join(SENTENCES[:2]) + "\n")
    sentences = parse_conll_output(assert_ok(run("predict", "--model", model_dir, path)))
    assert [[row[0] for row in s] for s in sentences] == [s.split() for s in SENTENCES[:2]]
    tags = [row[1] for s in sentences for row in s]
    assert any(tag != "O" for tag in tags)


def test_predict_gives_every_input_line_its_record(model_dir, tmp_path):
    lines = ["", SENTENCES[0], "", "   ", SENTENCES[1], ""]
    path = write(tmp_path / "input.txt", "\n".join(lines) + "\n")
    sentences = parse_conll_output(assert_ok(run("predict", "--model", model_dir, path)))
    assert [len(s) for s in sentences] == [len(SENTENCES[0].split()), len(SENTENCES[1].split())]
    args = ("predict", "--model", model_dir, "--output-format")
    jsonl = assert_ok(run(*args, "jsonl", path)).splitlines()
    assert [json.loads(record)["text"] for record in jsonl] == lines
    inline = assert_ok(run(*args, "inline", path)).split("\n")
    assert [line == "" for line in inline[:-1]] == [line == "" for line in lines]  # paragraphs


def test_predict_jsonl(model_dir, tmp_path):
    text = f"{SENTENCES[0]}\n{SENTENCES[1]}\n{SENTENCES[2]}\n"
    path = write(tmp_path / "input.txt", text)
    stdout = assert_ok(run("predict", "--model", model_dir, "--output-format", "jsonl", path))
    records = [json.loads(line) for line in stdout.splitlines()]
    assert len(records) == 3  # one per line
    assert [r["text"] for r in records] == SENTENCES
    found = 0
    for record in records:
        assert {"text", "offsets", "tokens", "tags", "p_tag", "p_entity", "entities"} <= set(record)
        n = len(record["tokens"])
        assert len(record["tags"]) == len(record["p_tag"]) == len(record["p_entity"]) == n
        assert len(record["offsets"]) == n
        assert_valid_iob2(record["tags"])
        for token, (start, end) in zip(record["tokens"], record["offsets"], strict=True):
            assert record["text"][start:end] == token
        for entity in record["entities"]:
            found += 1
            assert record["text"][entity["start"] : entity["end"]] == entity["text"]
            first, last = entity["token_start"], entity["token_end"]
            assert entity["start"] == record["offsets"][first][0]
            assert entity["end"] == record["offsets"][last - 1][1]
            assert record["tags"][first] == f"B-{entity['type']}"
            assert record["tags"][first + 1 : last] == [f"I-{entity['type']}"] * (last - first - 1)
            assert 0.0 <= entity["confidence"] <= 1.0
        begins = sum(tag.startswith("B-") for tag in record["tags"])
        assert len(record["entities"]) == begins
    assert found > 0
    # The U.S. and the final full stop are tokens of their own.
    assert records[2]["tokens"][-3:] == ["U.S.", "team", "."]


def test_predict_stdin(model_dir, tmp_path):
    text = "\n".join(SENTENCES) + "\n"
    path = write(tmp_path / "input.txt", text)
    from_file = assert_ok(run("predict", "--model", model_dir, path))
    from_stdin = assert_ok(run("predict", "--model", model_dir, "-", input=text))
    assert from_stdin == from_file
    assert len(parse_conll_output(from_stdin)) == 3


def test_predict_conll_input_reads_the_first_column(model_dir, tmp_path):
    gold = read_conll(TEST_FILE)
    tagged = assert_ok(run("predict", "--model", model_dir, "--input-format", "conll", TEST_FILE))
    sentences = parse_conll_output(tagged)
    assert [tuple(row[0] for row in s) for s in sentences] == [s.tokens for s in gold]

    tokens_only = tmp_path / "tokens.conll"
    write(tokens_only, "".join("\n".join(s.tokens) + "\n\n" for s in gold))
    untagged = run("predict", "--model", model_dir, "--input-format", "conll", tokens_only)
    assert assert_ok(untagged) == tagged


def test_predict_conll_input_to_jsonl_has_no_offsets(model_dir, tmp_path):
    path = write(tmp_path / "tokens.conll", "Peter\nBlackburn\n\n-DOCSTART-\n\nLONDON\n,\n")
    args = ("predict", "--model", model_dir, "--input-format", "conll")
    stdout = assert_ok(run(*args, "--output-format", "jsonl", path))
    records = [json.loads(line) for line in stdout.splitlines()]
    assert [r["tokens"] for r in records] == [["Peter", "Blackburn"], ["LONDON", ","]]
    assert all("offsets" not in r and "text" not in r for r in records)


def test_predict_conll_input_from_stdin(model_dir):
    result = run(
        "predict", "--model", model_dir, "--input-format", "conll", "-", input="Peter\nParis\n\n"
    )
    assert len(parse_conll_output(assert_ok(result))) == 1


def test_predict_text_ignores_a_bom(model_dir, tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes("\ufeffParis is nice\n".encode())
    stdout = assert_ok(run("predict", "--model", model_dir, "--output-format", "jsonl", path))
    assert json.loads(stdout)["tokens"] == ["Paris", "is", "nice"]


def test_predict_conll_input_reads_the_models_token_column(model_dir, tmp_path):
    copy = copy_model(model_dir, tmp_path)
    meta = json.loads((copy / "model.json").read_text(encoding="utf-8"))
    meta["config"]["data"]["token_column"] = 1
    write(copy / "model.json", json.dumps(meta))
    path = write(tmp_path / "two.conll", "1 Peter\n2 Paris\n\n")
    stdout = assert_ok(run("predict", "--model", copy, "--input-format", "conll", path))
    assert [row[0] for row in parse_conll_output(stdout)[0]] == ["Peter", "Paris"]


@pytest.mark.parametrize("input_format", ["text", "conll"])
def test_predict_empty_input_prints_nothing(model_dir, tmp_path, input_format):
    path = write(tmp_path / "empty.txt", "")
    args = ("predict", "--model", model_dir, "--input-format", input_format)
    assert assert_ok(run(*args, path)) == ""
    assert assert_ok(run(*args, "-", input="")) == ""


def test_predict_encoding_error_names_the_option(model_dir):
    result = run("predict", "--model", model_dir, "--encoding", "utf-16", TEST_FILE)
    assert assert_user_error(result) == (
        "nerwin: --encoding: encoding 'utf-16' is not ASCII-compatible; use utf-8"
    )


# -- a failed write to stdout ----------------------------------------------------------------


def nerwin_process(*args, **popen):
    """`nerwin ARGS` in a child process, so that its stdout is a real file or pipe."""
    command = [sys.executable, "-m", "nerwin.cli", *map(str, args)]
    return subprocess.Popen(command, stderr=subprocess.PIPE, cwd=REPO, **popen)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize(
    "args",
    [
        ("predict", "--input-format", "conll", TEST_FILE),  # sys.stdout.write, buffered
        ("predict", "-"),  # one line: only the last flush fails
        ("eval", TEST_FILE),  # click.echo
        ("--help",),  # before any command runs
    ],
)
def test_stdout_on_a_full_disk_is_one_line_and_exit_2(model_dir, args):
    if args[0] != "--help":
        args = (args[0], "--model", model_dir, *args[1:])
    with open("/dev/full", "w") as full:
        child = nerwin_process(*args, stdin=subprocess.PIPE, stdout=full)
        _, stderr = child.communicate(b"Peter visits Paris\n", timeout=120)
    assert child.returncode == 2
    assert stderr.decode() == "nerwin: cannot write output: No space left on device\n"


def test_closed_pipe_ends_quietly(model_dir, tmp_path):
    path = write(tmp_path / "many.txt", "Peter Blackburn visited Paris and Berlin .\n" * 5000)
    child = nerwin_process("predict", "--model", model_dir, path, stdout=subprocess.PIPE)
    assert child.stdout.readline().split()[0] == b"Peter"
    child.stdout.close()  # like `| head -1`
    assert child.wait(timeout=120) == 1
    assert child.stderr.read() == b""


def disk_with_room(monkeypatch, room: int) -> None:
    """Make the files nerwin writes atomically fail with ENOSPC past ``room`` bytes in all."""
    written = 0

    class FileOnDisk(io.FileIO):
        def write(self, data) -> int:
            nonlocal written
            written += memoryview(data).nbytes
            if written > room:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return super().write(data)

    monkeypatch.setattr(os, "fdopen", FileOnDisk)


def test_train_that_cannot_write_its_checkpoint_names_it(tmp_path, monkeypatch):
    # The review's `ulimit -f` case: such an OSError names no file, so nerwin must.
    disk_with_room(monkeypatch, 64 * 1024)  # run.json fits, the first checkpoint does not
    result = run(*train_args(SAMPLE, tmp_path, "--set", "model.hidden=8"))
    checkpoint = tmp_path / "out" / "checkpoint.npz"
    line = assert_user_error(result)
    assert line == f"nerwin: {checkpoint}: cannot write (No space left on device)"
    assert not [path.name for path in checkpoint.parent.iterdir() if path.name.startswith(".")]


def make_file(path: Path) -> str:
    path.touch()
    return f"{path / 'checkpoint.npz'}: cannot write (Not a directory)"


def make_checkpoint_a_directory(path: Path) -> str:
    (path / "checkpoint.npz").mkdir(parents=True)
    (path / "model.json").write_text('{"nerwin_version": "0.1.0"}')  # a run's directory
    return f"{path / 'checkpoint.npz'}: cannot write (Is a directory)"


def make_dangling_link(path: Path) -> str:
    path.symlink_to(path.parent / "nowhere")  # the checkpoint is not there; mkdir fails
    return f"{path}: cannot write (File exists)"


@pytest.mark.parametrize("make", [make_file, make_checkpoint_a_directory, make_dangling_link])
def test_train_into_an_output_that_cannot_be_a_directory_names_it(tmp_path, make):
    message = make(tmp_path / "out")
    result = run(*train_args(SAMPLE, tmp_path, "--set", "model.hidden=8"))
    assert assert_user_error(result) == f"nerwin: {message}"


def test_an_oserror_naming_a_file_is_one_line_naming_it(tmp_path, monkeypatch):
    # The last resort for a file nerwin forgot to check: one line, no traceback.
    def fail(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(tmp_path / "x"))

    monkeypatch.setattr("nerwin.cli.train_model", fail)
    result = run("train", "--output", tmp_path)
    assert assert_user_error(result) == f"nerwin: {tmp_path / 'x'}: Permission denied"


# -- gradcheck ------------------------------------------------------------------------------


def check_gradcheck_table(stdout, parameters):
    lines = stdout.splitlines()
    assert lines[0].split() == ["parameter", "shape", "max", "rel", "error", "ok"]
    rows = [line.split() for line in lines[1:-1]]
    assert [row[0] for row in rows] == parameters
    for row in rows:
        assert row[-1] == "yes", row
        assert float(row[2]) < 1e-6
    assert lines[-1] == f"all {len(parameters)} gradients agree (tolerance 1e-06)"


def test_gradcheck():
    check_gradcheck_table(assert_ok(run("gradcheck")), PARAMETERS)


def test_gradcheck_suffix_and_relu():
    result = run("gradcheck", "--set", "features.suffix_dim=3", "--set", "model.activation=relu")
    expected = [*PARAMETERS[:2], "suffix.table", *PARAMETERS[2:]]
    check_gradcheck_table(assert_ok(result), expected)


def test_gradcheck_reads_a_config_file(tmp_path):
    path = write(tmp_path / "c.yaml", "features:\n  caps_dim: 0\n  shape_dim: 2\n")
    expected = ["word.table", "shape.table", *PARAMETERS[2:]]
    check_gradcheck_table(assert_ok(run("gradcheck", "--config", path)), expected)


# -- errors --------------------------------------------------------------------------------


def test_eval_wrong_column_count(model_dir, tmp_path):
    path = write(tmp_path / "bad.conll", "Peter B-PER\nvisits O\nParis B-LOC extra\n")
    message = assert_user_error(run("eval", "--model", model_dir, path), f"{path}:3:")
    assert message == f"nerwin: {path}:3: found 3 columns, expected 2 like line 1"


def test_eval_not_a_tag(model_dir, tmp_path):
    path = write(tmp_path / "bad.conll", "Peter B-PER\n\nvisits O\nParis PLACE\n")
    assert_user_error(run("eval", "--model", model_dir, path), f"{path}:4:", "'PLACE'")


def test_eval_undecodable_byte(model_dir, tmp_path):
    path = tmp_path / "bad.conll"
    path.write_bytes(b"Peter B-PER\nvisits O\nPar\xffis B-LOC\n")
    message = assert_user_error(run("eval", "--model", model_dir, path), f"{path}:3:")
    assert message == f"nerwin: {path}:3: cannot decode byte 0xff at column 4 as utf-8"


def test_eval_empty_file(model_dir, tmp_path):
    path = write(tmp_path / "empty.conll", "")
    message = assert_user_error(run("eval", "--model", model_dir, path), str(path))
    assert message == f"nerwin: {path}: no sentences found (empty file?)"


def test_eval_missing_file(model_dir, tmp_path):
    path = tmp_path / "absent.conll"
    message = assert_user_error(run("eval", "--model", model_dir, path))
    assert message == f"nerwin: {path}: no such file"


@pytest.mark.parametrize("input_format", ["text", "conll"])
def test_predict_missing_file(model_dir, tmp_path, input_format):
    path = tmp_path / "absent.txt"
    result = run("predict", "--model", model_dir, "--input-format", input_format, path)
    assert assert_user_error(result) == f"nerwin: {path}: no such file"


def test_predict_undecodable_byte_names_the_line(model_dir, tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"Peter visits Paris\nBonn \xff\n")
    result = run("predict", "--model", model_dir, path)
    assert_user_error(result, f"{path}:2:", "cannot decode byte 0xff")


def test_predict_directory(model_dir, tmp_path):
    assert_user_error(run("predict", "--model", model_dir, tmp_path), str(tmp_path))


def test_eval_directory(model_dir, tmp_path):
    assert_user_error(run("eval", "--model", model_dir, tmp_path), str(tmp_path), "cannot open")


@pytest.mark.parametrize("command", ["eval", "predict"])
def test_missing_model_dir(command):
    result = run(command, "--model", "/nonexistent", TEST_FILE)
    message = assert_user_error(result)
    assert message == "nerwin: /nonexistent: no model here (train one with `nerwin train`)"


def copy_model(model_dir, tmp_path) -> Path:
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    return copy


def test_model_of_another_format_version(model_dir, tmp_path):
    copy = copy_model(model_dir, tmp_path)
    meta_path = copy / "model.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta["format_version"] = 99
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    message = assert_user_error(run("eval", "--model", copy, TEST_FILE), str(meta_path))
    assert message == f"nerwin: {meta_path}: model format version 99, this nerwin reads version 1"


def test_model_json_not_json(model_dir, tmp_path):
    copy = copy_model(model_dir, tmp_path)
    write(copy / "model.json", "{not json")
    assert_user_error(run("eval", "--model", copy, TEST_FILE), f"{copy / 'model.json'}: unreadable")


def test_model_with_a_bad_stored_config(model_dir, tmp_path):
    copy = copy_model(model_dir, tmp_path)
    meta = json.loads((copy / "model.json").read_text(encoding="utf-8"))
    meta["config"]["model"]["activation"] = "sigmoid"
    write(copy / "model.json", json.dumps(meta))
    assert_user_error(run("eval", "--model", copy, TEST_FILE), "bad stored config", "sigmoid")


def test_model_with_corrupt_weights(model_dir, tmp_path):
    copy = copy_model(model_dir, tmp_path)
    (copy / "weights.npz").write_bytes(b"not a zip file")
    assert_user_error(run("eval", "--model", copy, TEST_FILE), "weights.npz")


@pytest.mark.parametrize("text", ['{"format_version": 1, "config": {}, "labels": ["O"]}', "[1]"])
def test_model_json_of_the_wrong_shape(model_dir, tmp_path, text):
    copy = copy_model(model_dir, tmp_path)
    write(copy / "model.json", text)
    assert_user_error(run("eval", "--model", copy, TEST_FILE), "model.json")


def sample_dir(tmp_path, train_text: str) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    write(data / "train.conll", train_text)
    return data


def train_args(data: Path, tmp_path: Path, *extra):
    return (
        "train",
        "--set",
        f"data.dir={data}",
        "--set",
        "data.dev=",
        "--set",
        "data.test=",
        "--set",
        "train.epochs=1",
        "--output",
        tmp_path / "out",
        *extra,
    )


def test_train_i_after_o_in_iob2(tmp_path):
    data = sample_dir(tmp_path, "Peter B-PER\nsaw O\n\nthe O\nvisit O\nParis I-LOC\n")
    result = run(*train_args(data, tmp_path, "--set", "data.scheme=IOB2"))
    path = data / "train.conll"
    assert_user_error(result, f"{path}:6:", "'I-LOC' follows 'O'")


def test_train_same_file_reads_as_iob1_by_default(tmp_path):
    data = sample_dir(tmp_path, "Peter B-PER\nsaw O\n\nthe O\nvisit O\nParis I-LOC\n")
    assert "best epoch 1" in assert_ok(run(*train_args(data, tmp_path)))


def test_train_not_a_tag(tmp_path):
    data = sample_dir(tmp_path, "Peter PERSON\nsaw O\n")
    assert_user_error(run(*train_args(data, tmp_path)), f"{data / 'train.conll'}:1:", "'PERSON'")


def test_train_missing_data(tmp_path):
    result = run(*train_args(tmp_path / "nowhere", tmp_path))
    message = assert_user_error(result)
    assert message == f"nerwin: {tmp_path / 'nowhere' / 'train.conll'}: no such file"


def test_train_unknown_config_key():
    result = run("train", "--set", "nope.x=1")
    assert assert_user_error(result) == "nerwin: unknown config key 'nope'"


def test_train_unknown_nested_config_key():
    result = run("train", "--set", "train.nope=1")
    assert assert_user_error(result) == "nerwin: unknown config key 'train.nope'"


def test_train_malformed_set():
    assert_user_error(run("train", "--set", "train.lr"), "expected key=value")


def test_train_bad_config_file(tmp_path):
    path = write(tmp_path / "c.yaml", "model:\n  hidden: 3\n   activation: relu\n")
    result = run("train", "--config", path)
    assert assert_user_error(result) == f"nerwin: {path}:3: not valid YAML " + (
        "(mapping values are not allowed here)"
    )


def test_train_config_file_with_unknown_key(tmp_path):
    path = write(tmp_path / "c.yaml", "train:\n  epochs: 2\n  epoch: 3\n")
    result = run("train", "--config", path)
    assert assert_user_error(result) == f"nerwin: {path}:3: unknown config key 'train.epoch'"


def test_train_missing_config_file(tmp_path):
    path = tmp_path / "absent.yaml"
    assert_user_error(run("train", "--config", path), str(path), "cannot read config")


def test_gradcheck_bad_value():
    result = run("gradcheck", "--set", "model.activation=sigmoid")
    assert assert_user_error(result) == (
        "nerwin: model.activation: 'sigmoid' is not one of tanh, relu, hardtanh"
    )


@pytest.mark.parametrize("encoding", ["utf-16", "rot13"])
def test_train_encoding_that_conll_cannot_read(tmp_path, encoding):
    data = sample_dir(tmp_path, "Peter B-PER\n")
    assert_user_error(run(*train_args(data, tmp_path, "--set", f"data.encoding={encoding}")))


@pytest.mark.parametrize("output", ["2024", "null", "~", "yes", "runs/a #1"])
def test_train_output_is_a_path_as_typed(tmp_path, monkeypatch, output):
    data = sample_dir(tmp_path, "Peter B-PER\nsaw O\n")
    monkeypatch.chdir(tmp_path)
    args = train_args(data, tmp_path, "--set", "model.hidden=4")
    result = run(*args[: args.index("--output")], "--output", output)
    assert f"model saved in {output}" in assert_ok(result)
    assert (tmp_path / output / "model.json").is_file()
    assert not (tmp_path / "model.json").exists()


@pytest.mark.parametrize("how", ["--output", "--set"])
def test_train_output_empty_is_one_line(tmp_path, monkeypatch, how):
    monkeypatch.chdir(tmp_path)  # where an empty path would have written
    args = ("--output", "") if how == "--output" else ("--set", "output=''")
    result = run("train", "--set", "model.hidden=4", *args)
    assert assert_user_error(result) == "nerwin: output: must name a directory, got ''"
    assert list(tmp_path.iterdir()) == []


OTHERS_FILES = {
    "model.json": {"model.json": '{"mine": 1}'},
    "model.json with a format_version": {"model.json": '{"format_version": 1}'},
    "weights.npz": {"weights.npz": "mine"},
    "checkpoint.npz": {"checkpoint.npz": ""},
    "model.json beside another's run.json": {"run.json": '{"tool": 1}', "model.json": "{}"},
}


@pytest.mark.parametrize("files", OTHERS_FILES)
def test_train_leaves_a_model_file_nerwin_did_not_write(tmp_path, files):
    out = tmp_path / "out"
    out.mkdir()
    for file_name, content in OTHERS_FILES[files].items():
        (out / file_name).write_text(content)
    name = next(n for n in ("checkpoint.npz", "weights.npz", "model.json") if (out / n).exists())
    text = (out / name).read_text()
    result = run(*train_args(SAMPLE, tmp_path, "--set", "model.hidden=8"))
    assert assert_user_error(result) == (
        f"nerwin: {out / name}: not beside a nerwin run's model.json or run.json, so not "
        "replaced; train into another directory (--output)"
    )
    assert (out / name).read_text() == text


def test_train_sizes_beyond_memory_are_one_line(tmp_path):
    result = run(*train_args(SAMPLE, tmp_path, "--set", "model.hidden=1000000000000"))
    message = assert_user_error(result)
    assert message.startswith("nerwin: out of memory (Unable to allocate")


def test_train_negative_seed(tmp_path):
    data = sample_dir(tmp_path, "Peter B-PER\n")
    assert_user_error(run(*train_args(data, tmp_path, "--set", "train.seed=-1")), "train.seed")


# -- --version and --help --------------------------------------------------------------------


def test_version():
    assert assert_ok(run("--version")) == f"nerwin, version {__version__}\n"


@pytest.mark.parametrize(
    ("command", "usage"),
    [
        ([], "Usage: main [OPTIONS] COMMAND [ARGS]..."),
        (["train"], "Usage: main train [OPTIONS]"),
        (["eval"], "Usage: main eval [OPTIONS] FILE"),
        (["predict"], "Usage: main predict [OPTIONS] FILE"),
        (["gradcheck"], "Usage: main gradcheck [OPTIONS]"),
    ],
)
def test_help(command, usage):
    stdout = assert_ok(run(*command, "--help"))
    assert stdout.startswith(usage)
    if not command:
        for name in ("train", "eval", "predict", "gradcheck"):
            assert re.search(rf"^  {name}\s", stdout, re.M), name


def test_data_validate_and_stats_on_the_sample():
    files = [str(REPO / "data" / "sample" / f"{split}.conll") for split in ("train", "dev", "test")]
    result = run("data", "validate", *files)
    assert result.exit_code == 0, result.output
    assert "3 files checked: 0 errors, 0 warnings" in result.output
    result = run("data", "stats", "--json", *files)
    assert result.exit_code == 0
    assert json.loads(result.output)[files[0]]["sentences"] == 325


def test_data_validate_exit_code_2_on_errors(tmp_path):
    bad = tmp_path / "bad.conll"
    bad.write_text("Peter B-PER\nBlackburn X-PER\n")
    result = run("data", "validate", str(bad))
    assert result.exit_code == 2
    assert f"{bad}:2:" in result.output


def test_predict_writes_the_scheme_asked_for(model_dir):
    from nerwin.data.conll import to_iob2

    iob2 = assert_ok(run("predict", "--model", model_dir, TEST_FILE, "--input-format", "conll"))
    bioes = assert_ok(
        run("predict", "--model", model_dir, TEST_FILE, "--input-format", "conll",
            "--scheme", "BIOES")
    )  # fmt: skip

    def tags(output):
        return [[line.split()[1] for line in block.splitlines()] for block in output.split("\n\n")]

    assert any(tag.startswith(("E-", "S-")) for sentence in tags(bioes) for tag in sentence)
    assert [to_iob2(s, "BIOES") for s in tags(bioes)] == tags(iob2)


# -- data ---------------------------------------------------------------------------------------


def test_data_validate_max_sentence_tokens_names_the_option():
    result = run("data", "validate", "--max-sentence-tokens", "0", TEST_FILE)
    assert result.exit_code == 2
    assert "Invalid value for '--max-sentence-tokens'" in result.stderr


def test_data_stats_missing_vectors_names_no_config_key(tmp_path):
    path = tmp_path / "absent.txt"
    result = run("data", "stats", "--vectors", path, TEST_FILE)
    assert assert_user_error(result) == f"nerwin: {path}: no such vectors file"


# -- the README's synopses and --help ----------------------------------------------------------


def cli_commands():
    """(name, command) of every command, "data validate" for the ones in a group."""
    for name, command in main.commands.items():
        if isinstance(command, click.Group):
            for sub, subcommand in command.commands.items():
                yield f"{name} {sub}", subcommand
        else:
            yield name, command


def readme_synopses() -> dict[str, set[str]]:
    """The options that the README's ``### `nerwin …` `` headings name, by command."""
    found: dict[str, set[str]] = {}
    for line in (REPO / "README.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("### "):
            for synopsis in re.findall(r"`nerwin ([^`]+)`", line):
                words = synopsis.split()
                name = " ".join(words[:2]) if words[0] == "data" else words[0]
                found.setdefault(name, set()).update(re.findall(r"--[a-z-]+", synopsis))
    return found


def test_readme_synopses_name_the_options_of_help():
    synopses = readme_synopses()
    for name, command in cli_commands():
        options = {
            opt for param in command.params if isinstance(param, click.Option)
            for opt in param.opts
        }  # fmt: skip
        assert synopses.get(name) == options, name


def test_every_option_has_help_and_shows_its_default():
    for name, command in cli_commands():
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, (name, param.opts)
                if isinstance(param.default, (str, int, float)) and param.default is not False:
                    assert param.show_default, (name, param.opts)
