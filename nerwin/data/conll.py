"""CoNLL files: reading, writing and the IOB1 / IOB2 / BIOES tag schemes.

A CoNLL file has one token a line, its columns separated by spaces or tabs,
and a blank line after each sentence; ``-DOCSTART-`` lines separate
documents. Inside nerwin every tag sequence is IOB2: files are converted on
read and, if asked, converted back on write.

The three schemes, on "Peter Blackburn visits EU Commission ( EC )" with
"EU Commission" and "EC" typed ORG (IOB1 keeps B- for an entity that starts
right after another of the same type):

    token       IOB1   IOB2   BIOES
    Peter       I-PER  B-PER  B-PER
    Blackburn   I-PER  I-PER  E-PER
    visits      O      O      O
    EU          I-ORG  B-ORG  B-ORG
    Commission  I-ORG  I-ORG  E-ORG
    (           O      O      O
    EC          I-ORG  B-ORG  S-ORG
    )           O      O      O
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from os import PathLike
from typing import BinaryIO, NamedTuple, TextIO

from nerwin.config import check_encoding
from nerwin.errors import DataError

SCHEMES = ("IOB1", "IOB2", "BIOES")

_DOCSTART = "-DOCSTART-"
BOM = "\ufeff"
_ASCII_BLANKS = " \t\r\n\f\v"
_ASCII_BLANK_RUN = re.compile(f"[{_ASCII_BLANKS}]+")


@dataclass(frozen=True)
class Sentence:
    """One sentence of a CoNLL file, tags in IOB2."""

    tokens: tuple[str, ...]
    tags: tuple[str, ...]  # always IOB2 inside nerwin
    line: int  # 1-based line number of the first token in its file
    doc: int  # 0-based document index; -DOCSTART- lines start a new document


# ---------------------------------------------------------------------------
# Tag schemes


class _Role(NamedTuple):
    """What a prefix says about its token's place in an entity."""

    continues: bool | None  # continues the previous token's entity; None: iff same type
    closes: bool | None  # the entity ends here; None: iff the next tag does not continue it


_OUTSIDE = _Role(continues=False, closes=True)

# The grammar of each scheme, one row per prefix (seqeval's scheme.py, as a table).
_ROLES = {
    "IOB1": {"O": _OUTSIDE, "B": _Role(False, None), "I": _Role(None, None)},
    "IOB2": {"O": _OUTSIDE, "B": _Role(False, None), "I": _Role(True, None)},
    "BIOES": {
        "O": _OUTSIDE,
        "B": _Role(False, False),
        "I": _Role(True, False),
        "E": _Role(True, True),
        "S": _Role(False, True),
    },
}
_ENTITY_PREFIXES = ("B", "I", "E", "S")

# IOB2 -> BIOES prefix, by (IOB2 prefix, does the next tag continue the entity).
_BIOES_PREFIX = {("B", True): "B", ("B", False): "S", ("I", True): "I", ("I", False): "E"}


class Tag(NamedTuple):
    """A tag read by ``parse_tag``."""

    prefix: str  # "O", "B", "I", "E" or "S"
    type: str | None  # None for O
    begin: str  # the IOB2 tag opening an entity of this type ("O" for O)
    inside: str  # the IOB2 tag continuing one ("O" for O)


class TagError(ValueError):
    """A bad tag at position ``index`` of its sequence; ``str(err)`` says why."""

    def __init__(self, index: int, message: str):
        super().__init__(message)
        self.index = index


@functools.lru_cache(maxsize=4096)  # a corpus has few distinct tags; this is the hot path
def parse_tag(tag: str) -> Tag | None:
    """Split ``PREFIX-TYPE`` on its first hyphen; None if ``tag`` is not a tag.

    The one reader of tag syntax: O, or a prefix B, I, E or S, a hyphen and
    a non-empty type (which may hold hyphens). Whether the prefix belongs
    to a scheme is for the caller to say.

    >>> parse_tag("I-WORK-OF-ART")
    Tag(prefix='I', type='WORK-OF-ART', begin='B-WORK-OF-ART', inside='I-WORK-OF-ART')
    >>> parse_tag("O").type, parse_tag("B-"), parse_tag("PER")
    (None, None, None)
    """
    if tag == "O":
        return Tag("O", None, "O", "O")
    prefix, _, etype = tag.partition("-")
    if prefix not in _ENTITY_PREFIXES or not etype:
        return None
    return Tag(prefix, etype, f"B-{etype}", f"I-{etype}")


def _roles(scheme: str) -> dict[str, _Role]:
    if scheme not in _ROLES:
        raise ValueError(f"unknown tag scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")
    return _ROLES[scheme]


def entity_type(tag: str) -> str | None:
    """The entity type of a tag, None for O; ValueError if ``tag`` is not a tag.

    >>> entity_type("B-PER"), entity_type("I-WORK-OF-ART"), entity_type("O")
    ('PER', 'WORK-OF-ART', None)
    """
    parsed = parse_tag(tag)
    if parsed is None:
        raise ValueError(f"not a tag: {tag!r}")
    return parsed.type


def detect_scheme(tag_sequences: Iterable[Sequence[str]]) -> str:
    """Guess the scheme of some tag sequences: "IOB1", "IOB2" or "BIOES".

    Any S- or E- tag means BIOES; otherwise an I- tag that begins an entity
    (at the start, after O or after another type) means IOB1; else IOB2.

    >>> detect_scheme([["B-PER", "E-PER", "O"]])
    'BIOES'
    >>> detect_scheme([["I-PER", "I-PER", "O"], ["O"]])
    'IOB1'
    >>> detect_scheme([["B-PER", "I-PER", "O", "B-LOC"]])
    'IOB2'
    """
    has_beginning_i = False
    for tags in tag_sequences:
        previous = "O"
        for tag in tags:
            head = tag[:2]
            if head in ("E-", "S-"):
                return "BIOES"
            # tag[1:] is "-TYPE" (and "" for O), so this compares entity types cheaply.
            if head == "I-" and tag[1:] != previous[1:]:
                has_beginning_i = True
            previous = tag
    return "IOB1" if has_beginning_i else "IOB2"


def to_iob2(tags: Sequence[str], scheme: str) -> list[str]:
    """Convert ``tags`` from ``scheme`` to IOB2, checking them on the way.

    Raises TagError (a ValueError; the position is in ``index``) for a tag
    that is not ``O`` or ``PREFIX-TYPE`` with a prefix of ``scheme``, an
    IOB2 or BIOES ``I-`` that continues no entity of its type, and a BIOES
    entity not closed by ``E-``/``S-``.
    IOB1 is read leniently: any ``I-`` that follows no entity of its type
    begins one, which also repairs IOB2 that breaks this rule (argmax output).

    >>> to_iob2(["I-PER", "I-PER", "O", "I-ORG", "B-ORG"], "IOB1")
    ['B-PER', 'I-PER', 'O', 'B-ORG', 'B-ORG']
    >>> to_iob2(["B-PER", "E-PER", "O", "S-ORG", "S-ORG"], "BIOES")
    ['B-PER', 'I-PER', 'O', 'B-ORG', 'B-ORG']
    >>> to_iob2(["O", "I-PER"], "IOB2")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    nerwin.data.conll.TagError: 'I-PER' follows 'O'; in IOB2 an I- tag must continue ...
    """
    roles = _roles(scheme)
    iob2 = []
    open_type = None  # the type an I-/E- tag here may continue; None outside entities
    must_continue = False  # the previous tag (BIOES B-/I-) said its entity goes on here
    for index, tag in enumerate(tags):
        parsed = parse_tag(tag)
        if parsed is None:
            raise TagError(index, f"{tag!r} is not a tag: expected O or PREFIX-TYPE, e.g. B-PER")
        role = roles.get(parsed.prefix)
        if role is None:
            uses = ", ".join(f"{prefix}-TYPE" for prefix in roles if prefix != "O")
            raise TagError(index, f"{tag!r} is not valid in {scheme}, which uses O, {uses}")
        continues = parsed.type == open_type if role.continues is None else role.continues
        if continues and parsed.type != open_type:
            previous = repr(tags[index - 1]) if index else "the sentence start"
            raise TagError(
                index,
                f"{tag!r} follows {previous}; in {scheme} an {parsed.prefix}- tag"
                " must continue an entity of the same type",
            )
        if must_continue and not continues:
            raise TagError(
                index, f"{tag!r} follows {tags[index - 1]!r}; a BIOES entity must end with E- or S-"
            )
        iob2.append(parsed.inside if continues else parsed.begin)
        open_type = None if role.closes else parsed.type
        must_continue = role.closes is False
    if must_continue:
        raise TagError(
            len(tags) - 1,
            f"sentence ends after {tags[-1]!r}; a BIOES entity must end with E- or S-",
        )
    return iob2


def from_iob2(tags: Sequence[str], scheme: str) -> list[str]:
    """Convert valid IOB2 ``tags`` to ``scheme``; TagError (a ValueError) if not valid IOB2.

    Repair argmax output first with ``to_iob2(tags, "IOB1")``.

    >>> iob2 = ["B-PER", "I-PER", "O", "B-ORG", "B-ORG", "I-ORG"]
    >>> from_iob2(iob2, "IOB1")
    ['I-PER', 'I-PER', 'O', 'I-ORG', 'B-ORG', 'I-ORG']
    >>> from_iob2(iob2, "BIOES")
    ['B-PER', 'E-PER', 'O', 'S-ORG', 'B-ORG', 'E-ORG']
    """
    _roles(scheme)  # an unknown scheme fails before the tags are looked at
    iob2 = to_iob2(tags, "IOB2")  # validates
    if scheme == "IOB1":
        return _iob2_to_iob1(iob2)
    if scheme == "BIOES":
        return _iob2_to_bioes(iob2)
    return iob2


def _iob2_to_iob1(iob2: list[str]) -> list[str]:
    # IOB1 keeps B- only where an entity starts right after one of the same type.
    return [
        tag if tag == "O" or (tag[0] == "B" and previous[1:] == tag[1:]) else f"I{tag[1:]}"
        for previous, tag in itertools.pairwise(["O", *iob2])
    ]


def _iob2_to_bioes(iob2: list[str]) -> list[str]:
    # tag[1:] is "-TYPE": the entity goes on if the next tag is "I-TYPE".
    return [
        tag if tag == "O" else f"{_BIOES_PREFIX[tag[0], following == f'I{tag[1:]}']}{tag[1:]}"
        for tag, following in itertools.pairwise([*iob2, "O"])
    ]


# ---------------------------------------------------------------------------
# Reading


class _RawSentence(NamedTuple):
    tokens: list[str]
    tags: list[str]  # as in the file, not yet checked
    line: int
    doc: int


def read_conll(
    path: str | PathLike,
    *,
    token_column: int = 0,
    tag_column: int = -1,
    scheme: str = "auto",
    encoding: str = "utf-8",
) -> list[Sentence]:
    """Read a CoNLL file into IOB2 sentences; DataError (``FILE:LINE: why``) if malformed.

    Columns are split at runs of spaces and tabs; ``token_column`` and
    ``tag_column`` index them (negative from the end). ``scheme`` is one of
    SCHEMES or "auto" (see ``detect_scheme``, run on the whole file).
    ``encoding`` must be ASCII-compatible (utf-8, latin-1, cp1252, ...;
    ConfigError if not); a UTF-8 BOM is ignored. Sentences before the first ``-DOCSTART-`` and
    after it are document 0; each later ``-DOCSTART-`` starts the next.
    """
    _check_arguments(scheme, encoding)
    raw_sentences = list(_read_raw(path, token_column, tag_column, encoding))
    if scheme == "auto":
        scheme = detect_scheme(raw.tags for raw in raw_sentences)
    return [_normalise(path, raw, scheme) for raw in raw_sentences]


def iter_token_sentences(
    path: str | PathLike, *, token_column: int = 0, encoding: str = "utf-8"
) -> Iterator[list[str]]:
    """Stream untagged sentences: the token column of each line, split at blank lines.

    For text to tag, so there is no tag column and nothing to detect.
    """
    _check_arguments("auto", encoding)
    for sentence in sentence_lines(_split_lines(path, encoding)):
        tokens = []
        for line_no, fields in sentence.rows:
            if not -len(fields) <= token_column < len(fields):
                raise DataError(path, line_no, f"no token column {token_column}")
            tokens.append(fields[token_column])
        yield tokens


def _check_arguments(scheme: str, encoding: str) -> None:
    """ValueError for an unknown scheme; ConfigError for an encoding the reader cannot use."""
    if scheme != "auto":
        _roles(scheme)
    check_encoding(encoding)  # files are split into lines as bytes, before decoding


def _normalise(path, raw: _RawSentence, scheme: str) -> Sentence:
    try:
        tags = to_iob2(raw.tags, scheme)
    except TagError as err:
        raise DataError(path, raw.line + err.index, str(err)) from None
    return Sentence(tuple(raw.tokens), tuple(tags), raw.line, raw.doc)


def _read_raw(path, token_column: int, tag_column: int, encoding: str) -> Iterator[_RawSentence]:
    """Group the lines into sentences, checking the column counts; tags unchecked.

    The first token line must hold both columns (``column_problem``), and
    every other one must have as many columns as it.
    """
    width = width_line = None  # column count of the first token line, and where it is
    for sentence in sentence_lines(_split_lines(path, encoding)):
        if width is None:
            width_line, first = sentence.rows[0]
            width = len(first)
            problem = column_problem(width, token_column, tag_column)
            if problem:
                raise DataError(path, width_line, problem)
        for line_no, fields in sentence.rows:
            if len(fields) != width:
                message = f"found {len(fields)} columns, expected {width} like line {width_line}"
                raise DataError(path, line_no, message)
        tokens = [fields[token_column] for _, fields in sentence.rows]
        tags = [fields[tag_column] for _, fields in sentence.rows]
        yield _RawSentence(tokens, tags, sentence.line, sentence.doc)
    if width is None:
        raise DataError(path, None, "no sentences found (empty file?)")


def column_problem(
    width: int,
    token_column: int,
    tag_column: int,
    names: tuple[str, str] = ("token column", "tag column"),
) -> str | None:
    """Why a line of ``width`` columns cannot give both columns; None if it can.

    ``names`` are what the message calls the token and the tag column setting.

    >>> column_problem(2, 0, 3)
    'found 2 columns, but tag column 3 needs at least 4'
    >>> column_problem(3, 0, -1) is None
    True
    """
    for name, column in zip(names, (token_column, tag_column), strict=True):
        if not -width <= column < width:
            needed = column + 1 if column >= 0 else -column
            return f"found {width} columns, but {name} {column} needs at least {needed}"
    if token_column % width == tag_column % width:
        return f"found {width} column(s): token column {token_column} is the tag column"
    return None


class SentenceLines(NamedTuple):
    """The token lines of one sentence, as ``sentence_lines`` groups them."""

    line: int  # 1-based line number of the first token
    rows: list[tuple[int, list[str]]]  # (line number, columns) of each token line
    doc: int  # 0-based document index, as in Sentence.doc
    docstart_inside: bool  # ended by a -DOCSTART- line, not by a blank line or the end


def sentence_lines(numbered: Iterable[tuple[int, list[str]]]) -> Iterator[SentenceLines]:
    """Group (line number, columns) pairs into sentences, the way ``read_conll`` reads a file.

    A blank line or a ``-DOCSTART-`` line ends a sentence. Sentences before
    the first ``-DOCSTART-`` and after it are document 0; each later
    ``-DOCSTART-`` starts the next. Columns are not checked here.
    """
    rows: list[tuple[int, list[str]]] = []
    doc = -1  # bumped by each -DOCSTART-; sentences before the first one are document 0
    # A blank line after the last one flushes the last sentence.
    for line_no, fields in itertools.chain(numbered, [(0, [])]):
        if fields and fields[0] != _DOCSTART:  # a token line
            rows.append((line_no, fields))
            continue
        if rows:  # a blank line or -DOCSTART- ends the sentence
            doc = max(doc, 0)
            yield SentenceLines(rows[0][0], rows, doc, docstart_inside=bool(fields))
            rows = []
        if fields:
            doc += 1


def iter_lines(path: str | PathLike, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, text) for each line of ``path`` ("-" reads stdin).

    Bytes are decoded a line at a time so that a decoding error names its
    line; a UTF-8 BOM is dropped. Errors are DataError.
    """
    with open_input(path) as file:
        for line_no, line_bytes in enumerate(file, start=1):
            try:
                text = line_bytes.decode(encoding)
            except UnicodeDecodeError as err:
                message = (
                    f"cannot decode byte 0x{line_bytes[err.start]:02x}"
                    f" at column {err.start + 1} as {encoding}"
                )
                raise DataError(path, line_no, message) from None
            yield line_no, text.removeprefix(BOM) if line_no == 1 else text


def open_input(path: str | PathLike) -> contextlib.AbstractContextManager[BinaryIO]:
    """``path`` opened to read bytes, for a ``with``; "-" is stdin, which the ``with`` leaves open.

    DataError (``FILE: why``) if the file cannot be opened.
    """
    if str(path) == "-":
        return contextlib.nullcontext(sys.stdin.buffer)
    try:
        return open(path, "rb")  # noqa: SIM115 -- the caller's with closes it
    except FileNotFoundError:
        raise DataError(path, None, "no such file") from None
    except OSError as err:
        raise DataError(path, None, f"cannot open: {err.strerror}") from None


def split_fields(text: str) -> list[str]:
    r"""The columns of one line: split at runs of ASCII blanks (space, tab, CR, LF, FF, VT).

    Not ``str.split()``, which would also split at U+00A0 and U+0085,
    characters a latin-1 token can hold.

    >>> split_fields("Rio\u00a0de\u00a0Janeiro \tB-LOC\r\n")
    ['Rio\xa0de\xa0Janeiro', 'B-LOC']
    """
    if text.isascii():
        return text.split()
    return _ASCII_BLANK_RUN.split(text.strip(_ASCII_BLANKS))


def _split_lines(path, encoding: str) -> Iterator[tuple[int, list[str]]]:
    """Yield (line number, columns) per line."""
    for line_no, text in iter_lines(path, encoding):
        yield line_no, split_fields(text)


# ---------------------------------------------------------------------------
# Writing


def write_conll(
    out: TextIO, sentences: Iterable[tuple[Sequence[str], ...]], scheme: str = "IOB2"
) -> None:
    """Write ``(tokens, tags, *extra_columns)`` items as CoNLL, tags converted to ``scheme``.

    ``tags`` must be valid IOB2; extra columns (strings) follow the tag, and
    a blank line follows each sentence. ValueError if the columns differ in
    length.
    """
    for tokens, tags, *extra_columns in sentences:
        rows = zip(tokens, from_iob2(tags, scheme), *extra_columns, strict=True)
        out.write("".join(" ".join(row) + "\n" for row in rows) + "\n")
