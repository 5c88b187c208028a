"""Tests for nerwin.data.validate: every kind of finding, exit codes, stats, formatting."""

import json
from pathlib import Path

import pytest

from nerwin.data.conll import read_conll
from nerwin.data.validate import (
    Report,
    format_report,
    format_stats,
    stats,
    validate,
    vocabulary_from,
)
from nerwin.errors import ConfigError, DataError

CONLL2003 = Path(__file__).resolve().parents[1].parent / "shared/data/conll2003"

TRAIN = """\
-DOCSTART- O

Peter B-PER
Blackburn I-PER
visits O
Paris B-LOC
. O

The O
EU B-ORG
said O
so O

-DOCSTART- O

Hello O
world O
again O
"""


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def sentences(*rows: str) -> str:
    """CoNLL text from sentences written as "token/TAG token/TAG ..."."""
    return "".join(
        "".join(f"{pair.rsplit('/', 1)[0]} {pair.rsplit('/', 1)[1]}\n" for pair in row.split())
        + "\n"
        for row in rows
    )


def only(report: Report, code: str):
    """The one finding with ``code``."""
    found = [finding for finding in report.findings if finding.code == code]
    assert len(found) == 1, format_report(report)
    return found[0]


def codes(report: Report, severity: str | None = None) -> list[str]:
    return [f.code for f in report.findings if severity is None or f.severity == severity]


# ---------------------------------------------------------------------------
# Clean files and exit codes


def test_clean_file_has_only_info_and_exit_code_0(tmp_path):
    report = validate([write(tmp_path, "train.conll", TRAIN)])
    assert codes(report) == ["encoding", "scheme"]
    assert report.exit_code == 0
    assert "utf-8" in only(report, "encoding").message
    assert "IOB2" in only(report, "scheme").message
    assert report.files[0].scheme == "IOB2"
    assert (report.files[0].sentences, report.files[0].tokens) == (3, 12)


def test_exit_code_is_1_for_warnings_and_2_for_errors(tmp_path):
    warned = write(tmp_path, "warned.conll", sentences("a/O b/O c/O d/B-PER"))
    broken = write(tmp_path, "broken.conll", sentences("a/O b/B_PER"))
    assert validate([warned], max_sentence_tokens=3).exit_code == 1
    assert validate([broken]).exit_code == 2
    assert validate([warned, broken], max_sentence_tokens=3).exit_code == 2


def test_crlf_and_bom_are_clean(tmp_path):
    path = write(tmp_path, "crlf.conll", "\ufeff" + TRAIN.replace("\n", "\r\n"))
    report = validate([path])
    assert report.exit_code == 0, format_report(report)
    assert report.files[0].tokens == 12


# ---------------------------------------------------------------------------
# One file: encodings, columns, tags, transitions, structure


def test_latin1_fallback_is_a_warning_at_the_first_bad_line(tmp_path):
    path = write(tmp_path, "l1.conll", "Paris B-LOC\n\nZürich B-LOC\n", encoding="latin-1")
    report = validate([path])
    finding = only(report, "encoding")
    assert (finding.severity, finding.line) == ("warning", 3)
    assert "latin-1" in finding.message and "0xfc" in finding.message
    assert report.files[0].encoding == "latin-1"
    assert report.exit_code == 1


def test_undecodable_bytes_in_the_given_encoding_are_errors_on_every_line(tmp_path):
    text = "Zürich B-LOC\nok O\n\nMünchen B-LOC\nx B_LOC\n"
    report = validate([write(tmp_path, "l1.conll", text, encoding="latin-1")], encoding="utf-8")
    finding = only(report, "decode")
    assert (finding.severity, finding.line, finding.count, finding.lines) == ("error", 1, 2, (1, 4))
    assert only(report, "bad-tag").line == 5  # the scan went on after the bad bytes


def test_columns_that_differ_from_the_first_line(tmp_path):
    text = "EU NNP B-ORG\nrejects VBZ O\nGerman B-MISC\n\ncall NN O\nto TO VB O\n"
    report = validate([write(tmp_path, "cols.conll", text)])
    finding = only(report, "columns")
    assert (finding.severity, finding.line, finding.count, finding.lines) == ("error", 3, 2, (3, 6))
    assert "line 1's 3" in finding.message
    assert "(2 times, lines 3, 6; the first of them has 2 columns)" in finding.message
    assert report.exit_code == 2


def test_too_few_columns_for_the_tag_column(tmp_path):
    report = validate([write(tmp_path, "one.conll", "EU\nrejects\n")])
    finding = only(report, "columns")
    assert (finding.severity, finding.line) == ("error", 1)
    assert "token column 0 is the tag column" in finding.message
    report = validate([write(tmp_path, "two.conll", "EU B-ORG\n")], tag_column=3)
    assert "--tag-column 3 needs at least 4" in only(report, "columns").message


def test_tags_that_are_not_tags(tmp_path):
    text = sentences("EU/B-ORG rejects/o German/B-MISC", "call/B_PER to/O", "x/B-")
    finding = only(validate([write(tmp_path, "tags.conll", text)]), "bad-tag")
    assert (finding.severity, finding.line, finding.count, finding.lines) == (
        "error",
        2,
        3,
        (2, 5, 8),
    )
    assert "'o'" in finding.message


def test_wrong_tag_column_gets_a_hint(tmp_path):
    text = "EU NNP B-ORG\nrejects VBZ O\n"
    finding = only(validate([write(tmp_path, "pos.conll", text)], tag_column=1), "bad-tag")
    assert finding.count == 2 and "--tag-column" in finding.message


def test_bioes_tags_in_an_iob_scheme(tmp_path):
    path = write(tmp_path, "bioes.conll", sentences("EU/S-ORG rejects/O", "a/B-PER b/E-PER"))
    report = validate([path], scheme="IOB2")
    finding = only(report, "wrong-scheme")
    assert (finding.severity, finding.line, finding.count) == ("error", 1, 2)
    assert "transition" not in codes(report)  # the unreadable tags are not also transitions


def test_strict_iob2_transitions_are_errors_counted_per_kind(tmp_path):
    text = sentences(
        "a/O b/I-PER c/I-PER",  # line 2: I-X after O
        "d/I-LOC e/O",  # line 5: I-X at sentence start
        "f/B-PER g/I-LOC",  # line 9: I-X after another type
        "h/O i/I-ORG j/B-ORG",  # line 12: I-X after O again
    )
    report = validate([write(tmp_path, "t.conll", text)], scheme="IOB2")
    found = {f.message.split(":")[0]: f for f in report.findings if f.code == "transition"}
    assert {kind: (f.severity, f.count, f.lines) for kind, f in found.items()} == {
        "I-X after O": ("error", 2, (2, 12)),
        "I-X at the start of a sentence": ("error", 1, (5,)),
        "I-X after B-Y or I-Y (another type)": ("error", 1, (9,)),
    }
    assert report.exit_code == 2


def test_auto_warns_on_iob2_with_a_few_i_beginnings(tmp_path):
    text = sentences("a/B-PER b/I-PER c/O d/B-LOC", "e/O f/I-ORG", "g/B-ORG h/O")
    report = validate([write(tmp_path, "mixed.conll", text)])
    finding = only(report, "transition")
    assert (finding.severity, finding.line, finding.count) == ("warning", 7, 1)
    assert finding.message.startswith("I-X after O") and "IOB1" in finding.message
    assert "IOB1" in only(report, "scheme").message  # read as IOB1, as read_conll reads it
    assert report.exit_code == 1


def test_auto_accepts_pure_iob1(tmp_path):
    text = sentences("a/I-PER b/I-PER c/O d/I-LOC", "e/I-ORG f/B-ORG")
    report = validate([write(tmp_path, "iob1.conll", text)])
    assert codes(report) == ["encoding", "scheme"]
    assert report.files[0].scheme == "IOB1"


def test_auto_warns_on_the_b_tags_of_a_mostly_iob1_file(tmp_path):
    text = sentences("a/I-PER b/O c/I-LOC", "d/I-ORG e/O f/B-LOC")
    finding = only(validate([write(tmp_path, "iob1.conll", text)]), "transition")
    assert (finding.severity, finding.line) == ("warning", 7)
    assert finding.message.startswith("B-X after O")


def test_bioes_transitions_are_errors_even_when_detected(tmp_path):
    text = sentences(
        "a/B-PER b/E-PER c/O",
        "d/O e/E-LOC",  # line 6: E-X without B-X
        "f/B-ORG g/O",  # line 8: B-X not followed by I-X or E-X
        "h/S-PER i/B-LOC",  # line 12: B-X open at the sentence end
    )
    report = validate([write(tmp_path, "bioes.conll", text)])
    assert report.files[0].scheme == "BIOES"
    found = {f.message.split(":")[0]: (f.severity, f.lines) for f in report.findings}
    assert found["E-X without B-X before it"] == ("error", (6,))
    assert found["B-X not followed by I-X or E-X"] == ("error", (8, 12))


def test_docstart_inside_a_sentence_is_a_warning(tmp_path):
    text = "-DOCSTART- O\n\na O\nb B-PER\n-DOCSTART- O\n\nc O\n"
    report = validate([write(tmp_path, "doc.conll", text)])
    finding = only(report, "docstart-in-sentence")
    assert (finding.severity, finding.line) == ("warning", 5)
    assert report.files[0].sentences == 2


def test_long_sentences_are_warnings(tmp_path):
    text = sentences("a/O b/O", "c/O d/B-PER e/O f/O", "g/O h/O i/O j/O k/B-LOC")
    finding = only(
        validate([write(tmp_path, "long.conll", text)], max_sentence_tokens=3), "long-sentence"
    )
    assert (finding.severity, finding.count, finding.lines) == ("warning", 2, (4, 9))
    assert "the longest has 5" in finding.message


def test_empty_and_missing_files_are_errors(tmp_path):
    empty = write(tmp_path, "empty.conll", "")
    docstarts = write(tmp_path, "docstarts.conll", "-DOCSTART- O\n\n\n")
    report = validate([empty, docstarts, tmp_path / "missing.conll"])
    assert [(f.file, f.code, f.severity) for f in report.findings if f.severity == "error"] == [
        (str(empty), "empty-file", "error"),
        (str(docstarts), "empty-file", "error"),
        (str(tmp_path / "missing.conll"), "no-file", "error"),
    ]
    assert report.exit_code == 2


@pytest.mark.parametrize(
    "text, what",
    [
        ("", "the file is empty"),
        ("\n \n\n", "only blank lines"),
        ("\ufeff\n\n", "only blank lines"),
        ("-DOCSTART- O\n\n", "only blank and -DOCSTART- lines"),
    ],
)
def test_a_file_without_sentences_says_what_it_holds(tmp_path, text, what):
    finding = only(validate([write(tmp_path, "f.conll", text)]), "empty-file")
    assert finding.message == f"no sentences: {what}"


def test_a_file_without_entities_is_a_warning(tmp_path):
    report = validate([write(tmp_path, "o.conll", sentences("a/O b/O"))])
    assert only(report, "no-entities").severity == "warning"


# ---------------------------------------------------------------------------
# Across files: the first is the training data


def test_labels_only_in_dev(tmp_path):
    train = write(tmp_path, "train.conll", TRAIN)
    dev = write(tmp_path, "dev.conll", sentences("x/B-PER y/O", "z/O Expo/B-EVENT 98/I-EVENT"))
    finding = only(validate([train, dev]), "unseen-label")
    assert (finding.severity, finding.file, finding.line) == ("warning", str(dev), 5)
    assert "EVENT" in finding.message and finding.count == 2


def test_mixed_schemes_across_files(tmp_path):
    train = write(tmp_path, "train.conll", sentences("a/B-PER b/I-PER c/O"))
    dev = write(tmp_path, "dev.conll", sentences("a/B-PER b/E-PER c/O"))
    report = validate([train, dev])
    finding = only(report, "mixed-schemes")
    assert (finding.severity, finding.file) == ("warning", str(dev))
    assert "BIOES" in finding.message and "IOB2" in finding.message
    overlap = only(report, "overlap")  # the same sentence, the same entity in another scheme
    assert overlap.count == 1 and "tagged differently" not in overlap.message
    assert "mixed-schemes" not in codes(validate([train, dev], scheme="IOB2"))


def test_overlap_with_the_training_file(tmp_path):
    train = write(
        tmp_path,
        "train.conll",
        sentences(
            "The/O EU/B-ORG said/O so/O", "Results/O :/O", "-/O ,/O ./O", "Paris/B-LOC won/O ./O"
        ),
    )
    test = write(
        tmp_path,
        "test.conll",
        sentences(
            "Results/O :/O",  # two tokens: ignored
            "-/O ,/O ./O",  # punctuation only: ignored
            "The/O EU/B-ORG said/O so/O",  # line 8: duplicate
            "Paris/B-ORG won/O ./O",  # line 13: duplicate, tagged differently
            "Rome/B-LOC lost/O ./O",
        ),
    )
    finding = only(validate([train, test]), "overlap")
    assert (finding.severity, finding.count, finding.lines) == ("warning", 2, (8, 13))
    assert "2 of the 3 sentences of 3+ tokens with a letter or digit (66.7%)" in finding.message
    assert "1 of them tagged differently" in finding.message
    assert f"{train}:1" in finding.message


def test_no_overlap_is_info(tmp_path):
    train = write(tmp_path, "train.conll", TRAIN)
    dev = write(tmp_path, "dev.conll", sentences("Rome/B-LOC lost/O ./O"))
    finding = only(validate([train, dev]), "overlap")
    assert (finding.severity, finding.line) == ("info", None)


# ---------------------------------------------------------------------------
# Formatting, JSON, arguments


def test_format_report_lines_and_summary(tmp_path):
    path = write(tmp_path, "tags.conll", sentences("a/O b/B_PER c/B-LOC"))
    lines = format_report(validate([path])).splitlines()
    assert f"{path}:2: error: not a tag: 'B_PER' (line 2); expected O or PREFIX-TYPE" in lines[-2]
    assert lines[-2].endswith("[bad-tag]")
    assert lines[0].startswith(f"{path}: info: encoding utf-8")
    assert lines[-1] == "1 file checked: 1 error, 0 warnings, 2 info (exit code 2)"


def test_report_to_dict_is_json(tmp_path):
    path = write(tmp_path, "tags.conll", sentences("a/O b/B_PER c/B_PER d/B-LOC"))
    data = json.loads(json.dumps(validate([path]).to_dict()))
    assert data["exit_code"] == 2
    assert data["counts"] == {"error": 1, "warning": 0, "info": 2}
    assert data["files"][0]["encoding"] == "utf-8"
    bad = [f for f in data["findings"] if f["code"] == "bad-tag"]
    assert bad == [
        {
            "severity": "error",
            "file": str(path),
            "line": 2,
            "code": "bad-tag",
            "message": bad[0]["message"],
            "count": 2,
            "lines": [2, 3],
        }
    ]


@pytest.mark.parametrize(
    "arguments",
    [{"encoding": "nope"}, {"encoding": "utf-16"}, {"scheme": "BILOU"}, {"max_sentence_tokens": 0}],
)
def test_bad_arguments_are_config_errors(tmp_path, arguments):
    with pytest.raises(ConfigError):
        validate([write(tmp_path, "t.conll", TRAIN)], **arguments)


# ---------------------------------------------------------------------------
# Stats


def test_stats_are_exact_on_a_small_file(tmp_path):
    path = write(tmp_path, "train.conll", TRAIN)
    counts = stats([path], vocabulary={"peter", "visits", "paris", ".", "the", "said", "hello"})
    assert list(counts) == [str(path)]
    assert counts[str(path)] == {
        "file": str(path),
        "encoding": "utf-8",
        "scheme": "IOB2",
        "documents": 2,
        "sentences": 3,
        "tokens": 12,
        "sentence_length": {"mean": 4.0, "max": 5},
        "entities": {"LOC": 1, "ORG": 1, "PER": 1},
        "tags": {"O": 8, "B-LOC": 1, "B-ORG": 1, "B-PER": 1, "I-PER": 1},
        "words": 12,
        "oov": {"tokens": 5, "token_rate": 5 / 12, "types": 5, "type_rate": 5 / 12},
    }
    json.dumps(counts)


def test_stats_count_iob1_entities_as_spans(tmp_path):
    path = write(tmp_path, "iob1.conll", sentences("a/I-PER b/I-PER c/O d/I-LOC e/B-LOC 1/O 2/O"))
    counts = stats([path])[str(path)]
    assert counts["scheme"] == "IOB1"
    assert counts["entities"] == {"LOC": 2, "PER": 1}
    assert counts["tags"] == {"O": 3, "B-LOC": 1, "I-LOC": 1, "I-PER": 2}  # as in the file
    assert counts["words"] == 6  # 1 and 2 are both "0"
    assert counts["oov"] is None


def test_stats_count_documents_as_read_conll_numbers_them(tmp_path):
    # A -DOCSTART- with no sentence after it starts no document that read_conll yields.
    text = "a O\n\n-DOCSTART- O\n\nb B-PER\n-DOCSTART- O\n\n"
    path = write(tmp_path, "docs.conll", text)
    assert [sentence.doc for sentence in read_conll(path)] == [0, 1]
    assert stats([path])[str(path)]["documents"] == 2


def test_stats_refuse_a_file_with_errors(tmp_path):
    path = write(tmp_path, "bad.conll", sentences("a/O b/B_PER"))
    with pytest.raises(DataError, match=r"bad.conll:2: not a tag"):
        stats([path])


def test_vocabulary_from_conll_and_from_vectors(tmp_path):
    conll = write(tmp_path, "train.conll", TRAIN)
    assert vocabulary_from(conll) == {
        "peter", "blackburn", "visits", "paris", ".", "the", "eu", "said", "so", "hello", "world",
        "again",
    }  # fmt: skip
    vectors = write(tmp_path, "vectors.txt", "the 0.1 0.2\nParis 0.3 0.4\n1996 0.5 0.6\n")
    assert vocabulary_from(vectors) == {"the", "paris", "0000"}
    assert vocabulary_from(vectors, kind="vectors") == {"the", "paris", "0000"}


def test_format_stats_is_an_aligned_table(tmp_path):
    train = write(tmp_path, "train.conll", TRAIN)
    dev = write(tmp_path, "dev.conll", sentences("Expo/B-EVENT 98/I-EVENT"))
    table = format_stats(stats([train, dev], vocabulary={"the"})).splitlines()
    assert table[0].split() == ["train.conll", "dev.conll"]
    assert table[0].index("dev.conll") + len("dev.conll") == len(table[1])  # right-aligned
    rows = {line[:22].strip(): line[22:].split() for line in table[1:]}
    assert rows["sentences"] == ["3", "1"]
    assert rows["EVENT"] == ["0", "1"]
    assert rows["OOV tokens"] == ["91.7%", "(11)", "100.0%", "(2)"]


# ---------------------------------------------------------------------------
# CoNLL-2003, when present


@pytest.mark.skipif(not (CONLL2003 / "eng.train").is_file(), reason="CoNLL-2003 data absent")
def test_conll2003_counts_match_its_readme():
    paths = [CONLL2003 / name for name in ("eng.train", "eng.testa", "eng.testb")]
    report = validate(paths)
    assert report.exit_code == 0, format_report(report)
    counts = stats(paths[:1])[str(paths[0])]
    assert (counts["sentences"], counts["tokens"], counts["documents"]) == (14_041, 203_621, 946)
    assert counts["entities"] == {"LOC": 7_140, "MISC": 3_438, "ORG": 6_321, "PER": 6_600}
