"""Tests for nerwin.data.conll: reading, writing and tag-scheme conversion."""

import doctest
import io
from pathlib import Path

import pytest

from nerwin.data import conll
from nerwin.data.conll import (
    SCHEMES,
    Sentence,
    detect_scheme,
    entity_type,
    from_iob2,
    iter_token_sentences,
    read_conll,
    to_iob2,
    write_conll,
)
from nerwin.errors import ConfigError, DataError

CONLL2003 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "conll2003"

# The module docstring's example in each scheme: two adjacent ORG entities
# would need IOB1's B-, so the last sentence has them.
TOKENS = (
    ("Peter", "Blackburn", "visits", "EU", "Commission", "(", "EC", ")"),
    ("Bonn", "Paris", "Reuters"),
)
TAGS = {
    "IOB1": (
        ("I-PER", "I-PER", "O", "I-ORG", "I-ORG", "O", "I-ORG", "O"),
        ("I-LOC", "B-LOC", "I-ORG"),
    ),
    "IOB2": (
        ("B-PER", "I-PER", "O", "B-ORG", "I-ORG", "O", "B-ORG", "O"),
        ("B-LOC", "B-LOC", "B-ORG"),
    ),
    "BIOES": (
        ("B-PER", "E-PER", "O", "B-ORG", "E-ORG", "O", "S-ORG", "O"),
        ("S-LOC", "S-LOC", "S-ORG"),
    ),
}


def write_file(tmp_path: Path, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / "data.conll"
    path.write_bytes(text.encode(encoding))
    return path


def conll_text(tokens, tags) -> str:
    """Two-column CoNLL text, a blank line after each sentence."""
    return "".join(
        "".join(f"{token} {tag}\n" for token, tag in zip(sentence, sentence_tags, strict=True))
        + "\n"
        for sentence, sentence_tags in zip(tokens, tags, strict=True)
    )


def raises_data_error(path, line, phrase, **read_options) -> DataError:
    with pytest.raises(DataError) as info:
        read_conll(path, **read_options)
    err = info.value
    assert err.line == line
    assert phrase in err.message
    expected_start = f"{path}:{line}: " if line is not None else f"{path}: "
    assert str(err).startswith(expected_start)
    return err


# ---------------------------------------------------------------------------
# Schemes


def test_doctests_pass():
    assert doctest.testmod(conll).failed == 0


@pytest.mark.parametrize("scheme", SCHEMES)
def test_to_iob2_and_back(scheme):
    for tags, iob2 in zip(TAGS[scheme], TAGS["IOB2"], strict=True):
        assert to_iob2(tags, scheme) == list(iob2)
        assert from_iob2(iob2, scheme) == list(tags)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_detect_scheme(scheme):
    assert detect_scheme(TAGS[scheme]) == scheme


@pytest.mark.parametrize("scheme", SCHEMES)
def test_empty_sequence(scheme):
    assert to_iob2([], scheme) == []
    assert from_iob2([], scheme) == []


def test_detect_scheme_i_after_other_type_is_iob1():
    assert detect_scheme([["B-PER", "I-LOC"]]) == "IOB1"
    assert detect_scheme([["B-PER", "I-PER"], []]) == "IOB2"
    assert detect_scheme([]) == "IOB2"


def test_iob1_repairs_stray_inside_tags():
    assert to_iob2(["O", "I-PER", "I-LOC"], "IOB1") == ["O", "B-PER", "B-LOC"]


@pytest.mark.parametrize(
    ("tags", "phrase"),
    [
        (["B-PER", "O"], "must end with E- or S-"),
        (["B-PER"], "must end with E- or S-"),
        (["B-PER", "B-PER"], "must end with E- or S-"),
        (["S-PER", "E-PER"], "must continue"),
        (["B-PER", "I-LOC", "E-LOC"], "must continue"),
    ],
)
def test_bad_bioes_sequences(tags, phrase):
    with pytest.raises(ValueError, match=phrase):
        to_iob2(tags, "BIOES")


def test_from_iob2_rejects_invalid_iob2():
    with pytest.raises(ValueError, match="must continue"):
        from_iob2(["O", "I-PER"], "BIOES")


def test_unknown_scheme():
    with pytest.raises(ValueError, match="unknown tag scheme 'BILOU'"):
        to_iob2(["O"], "BILOU")


def test_entity_type():
    assert entity_type("B-PER") == "PER"
    assert entity_type("I-WORK_OF-ART") == "WORK_OF-ART"
    assert entity_type("O") is None
    with pytest.raises(ValueError, match="not a tag: 'PER'"):
        entity_type("PER")


# ---------------------------------------------------------------------------
# Reading


def test_read_iob2(tmp_path):
    path = write_file(tmp_path, conll_text(TOKENS, TAGS["IOB2"]))
    sentences = read_conll(path, scheme="IOB2")
    assert sentences == [
        Sentence(TOKENS[0], TAGS["IOB2"][0], line=1, doc=0),
        Sentence(TOKENS[1], TAGS["IOB2"][1], line=10, doc=0),
    ]


@pytest.mark.parametrize("declared", ["explicit", "auto"])
@pytest.mark.parametrize("scheme", SCHEMES)
def test_read_normalises_to_iob2(tmp_path, scheme, declared):
    path = write_file(tmp_path, conll_text(TOKENS, TAGS[scheme]))
    read_as = scheme if declared == "explicit" else "auto"
    sentences = read_conll(path, scheme=read_as)
    assert [sentence.tags for sentence in sentences] == list(TAGS["IOB2"])
    assert [sentence.tokens for sentence in sentences] == list(TOKENS)


def test_read_conll_checks_arguments_before_the_file(tmp_path):
    with pytest.raises(ValueError, match="unknown tag scheme"):
        read_conll(tmp_path / "absent", scheme="BILOU")


def test_docstart_with_and_without_blank_line(tmp_path):
    text = (
        "-DOCSTART- -X- O\n"
        "\n"
        "EU NNP B-ORG\n"
        "\n"
        "Peter NNP B-PER\n"
        "\n"
        "-DOCSTART- -X- O\n"
        "Bonn NNP B-LOC\n"
        "\n\n\n"
        "-DOCSTART- -X- O\n"
        "Paris NNP B-LOC\n"
    )
    sentences = read_conll(write_file(tmp_path, text))
    assert [(s.tokens, s.line, s.doc) for s in sentences] == [
        (("EU",), 3, 0),
        (("Peter",), 5, 0),
        (("Bonn",), 8, 1),
        (("Paris",), 13, 2),
    ]


def test_sentences_before_first_docstart_are_document_zero(tmp_path):
    text = "EU B-ORG\n\n-DOCSTART- O\n\nBonn B-LOC\n"
    sentences = read_conll(write_file(tmp_path, text))
    assert [s.doc for s in sentences] == [0, 1]


def test_docstart_ends_a_sentence_without_blank_line(tmp_path):
    text = "EU B-ORG\n-DOCSTART- O\nBonn B-LOC\n"
    sentences = read_conll(write_file(tmp_path, text))
    assert [(s.tokens, s.doc) for s in sentences] == [(("EU",), 0), (("Bonn",), 1)]


def test_tabs_crlf_trailing_spaces_and_blank_runs(tmp_path):
    text = "EU\tNNP \t B-ORG  \r\nrejects VBZ\tO\t\r\n \t\r\n\r\nPeter NNP B-PER \r\n"
    sentences = read_conll(write_file(tmp_path, text))
    assert sentences == [
        Sentence(("EU", "rejects"), ("B-ORG", "O"), line=1, doc=0),
        Sentence(("Peter",), ("B-PER",), line=5, doc=0),
    ]


def test_latin1_file(tmp_path):
    # "\xa0" (no-break space) is part of a token, not a column separator.
    text = "José B-PER\nPérez\xa0Gil I-PER\n\n"
    path = write_file(tmp_path, text, encoding="latin-1")
    sentences = read_conll(path, encoding="latin-1")
    assert sentences[0].tokens == ("José", "Pérez\xa0Gil")
    raises_data_error(path, 1, "cannot decode byte 0xe9", encoding="utf-8")


def test_utf8_bom(tmp_path):
    path = write_file(tmp_path, "\ufeffEU B-ORG\n\n")
    assert read_conll(path)[0].tokens == ("EU",)


def test_tag_column_choice_on_conll2003_layout(tmp_path):
    text = "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\ncall NN I-VP O\n\n"
    path = write_file(tmp_path, text)
    assert read_conll(path)[0].tags == ("B-ORG", "O", "O")
    assert read_conll(path, tag_column=3)[0].tags == ("B-ORG", "O", "O")
    assert read_conll(path, tag_column=2)[0].tags == ("B-NP", "B-VP", "I-VP")
    assert read_conll(path, token_column=1, tag_column=2)[0].tokens == ("NNP", "VBZ", "NN")


# ---------------------------------------------------------------------------
# Malformed input: each error names its line


def test_wrong_column_count(tmp_path):
    path = write_file(tmp_path, "EU NNP B-ORG\n\nPeter NNP B-PER\nBlackburn I-PER\n")
    raises_data_error(path, 4, "found 2 columns, expected 3 like line 1")


def test_too_few_columns_for_tag_column(tmp_path):
    path = write_file(tmp_path, "\nEU B-ORG\n")
    raises_data_error(path, 2, "tag column 3 needs at least 4", tag_column=3)


def test_single_column_has_no_tag(tmp_path):
    path = write_file(tmp_path, "EU\nrejects\n")
    raises_data_error(path, 1, "is the tag column")


@pytest.mark.parametrize("tag", ["PER", "X-PER", "B-", "b-PER", "O-PER"])
def test_bad_tag(tmp_path, tag):
    path = write_file(tmp_path, f"EU B-ORG\n\nPeter O\nBlackburn {tag}\n")
    raises_data_error(path, 4, "is not a tag")


def test_inside_after_outside_in_iob2_mode(tmp_path):
    path = write_file(tmp_path, "EU B-ORG\n\nPeter O\nBlackburn I-PER\n")
    err = raises_data_error(path, 4, "must continue an entity", scheme="IOB2")
    assert "'I-PER' follows 'O'" in err.message


def test_end_tag_in_iob2_mode(tmp_path):
    path = write_file(tmp_path, "EU B-ORG\n\nPeter B-PER\nBlackburn E-PER\n")
    raises_data_error(path, 4, "'E-PER' is not valid in IOB2", scheme="IOB2")


def test_ill_formed_bioes(tmp_path):
    path = write_file(tmp_path, "EU S-ORG\n\nPeter B-PER\nBlackburn O\n")
    raises_data_error(path, 4, "must end with E- or S-", scheme="BIOES")


def test_undecodable_bytes(tmp_path):
    path = tmp_path / "data.conll"
    path.write_bytes(b"EU B-ORG\n\nPeter B-PER\nBl\xffckburn I-PER\n")
    raises_data_error(path, 4, "cannot decode byte 0xff at column 3 as utf-8")


@pytest.mark.parametrize("text", ["", "\n\n", "-DOCSTART- -X- O\n\n"])
def test_empty_file(tmp_path, text):
    raises_data_error(write_file(tmp_path, text), None, "no sentences")


def test_missing_file(tmp_path):
    raises_data_error(tmp_path / "absent.conll", None, "no such file")


def test_bad_encoding_argument_is_a_config_error(tmp_path):
    path = write_file(tmp_path, "EU B-ORG\n")
    with pytest.raises(ConfigError, match="unknown text encoding 'no-such-codec'"):
        read_conll(path, encoding="no-such-codec")
    with pytest.raises(ConfigError, match="'utf-16' is not ASCII-compatible"):
        read_conll(path, encoding="utf-16")


def test_token_sentences_are_grouped_as_read_conll_groups_them(tmp_path):
    text = "-DOCSTART- -X- O\n\nEU NNP B-ORG\nrejects VBZ O\n-DOCSTART- -X- O\nBonn NNP\n\n\n"
    path = write_file(tmp_path, text)
    assert list(iter_token_sentences(path)) == [["EU", "rejects"], ["Bonn"]]
    assert list(iter_token_sentences(path, token_column=1)) == [["NNP", "VBZ"], ["NNP"]]
    with pytest.raises(DataError, match=r":6: no token column 2"):
        list(iter_token_sentences(path, token_column=2))


# ---------------------------------------------------------------------------
# Writing


def test_write_extra_columns_and_scheme():
    out = io.StringIO()
    write_conll(
        out, [(("EU", "rejects"), ("B-ORG", "O"), ("B-ORG", "O"), ("0.93", "0.88"))], "BIOES"
    )
    assert out.getvalue() == "EU S-ORG B-ORG 0.93\nrejects O O 0.88\n\n"


def test_write_rejects_mismatched_columns():
    with pytest.raises(ValueError):
        write_conll(io.StringIO(), [(("EU", "rejects"), ("B-ORG",))])


@pytest.mark.parametrize("scheme", SCHEMES)
def test_write_read_round_trip(tmp_path, scheme):
    out = io.StringIO()
    write_conll(out, zip(TOKENS, TAGS["IOB2"], strict=True), scheme)
    assert out.getvalue() == conll_text(TOKENS, TAGS[scheme])
    path = write_file(tmp_path, out.getvalue())
    for read_as in (scheme, "auto"):
        sentences = read_conll(path, scheme=read_as)
        assert [(s.tokens, s.tags) for s in sentences] == list(
            zip(TOKENS, TAGS["IOB2"], strict=True)
        )


# ---------------------------------------------------------------------------
# The real corpus


def test_conll2003_dev_counts():
    path = CONLL2003 / "eng.testa"
    if not path.exists():
        pytest.skip(f"{path} not found")
    sentences = read_conll(path)
    assert len(sentences) == 3250
    assert len({sentence.doc for sentence in sentences}) == 216
    assert sum(len(sentence.tokens) for sentence in sentences) == 51362
