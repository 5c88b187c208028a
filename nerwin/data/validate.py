"""Check CoNLL files before training on them, and count what is in them.

``validate(paths)`` reads every file tolerantly, line by line, and reports
every problem it finds instead of stopping at the first one as
``read_conll`` does. Each ``Finding`` has a severity, a file, a line (the
first occurrence; None for the whole file) and one of the codes below. A
problem that repeats (the same ill-formed transition a thousand times) is
one finding with a count and its first few line numbers.

When several files are given, the first is taken as the training data and
the others (dev, test) are compared with it.

    code                  severity          what
    no-file               error             the file cannot be opened
    empty-file            error             no sentences in the file
    encoding              info / warning    the encoding used; warning: not UTF-8, read as latin-1
    decode                error             bytes not valid in the encoding asked for
    columns               error             a column count unlike the first line's, or too few
    bad-tag               error             a tag that is not O or PREFIX-TYPE
    wrong-scheme          error             E-/S- tags when the scheme asked for is IOB1 / IOB2
    scheme                info              the tag scheme, detected or as given
    transition            error / warning   ill-formed tag sequences, one finding per kind
    no-entities           warning           every tag is O
    docstart-in-sentence  warning           -DOCSTART- with no blank line before it
    long-sentence         warning           sentences longer than max_sentence_tokens
    mixed-schemes         warning           files whose detected schemes differ
    unseen-label          warning           an entity type absent from the first file
    overlap               info / warning    sentences of a later file that are in the first

Transitions: IOB2 (or BIOES) asked for, every ill-formed one is an error
(``read_conll`` would refuse the file). With ``scheme="auto"`` a file whose
I- tags begin entities is IOB1, which is legal; only a file that mixes the
two ways of beginning an entity gets warnings, on the rarer of the two. A
detected BIOES file has no lenient reading, so its ill-formed transitions
stay errors.

``stats(paths)`` counts sentences, documents, tokens, entities and tags per
file, and the out-of-vocabulary rate against a vocabulary from
``vocabulary_from`` (another CoNLL file or pretrained vectors).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from os import PathLike
from pathlib import Path

from nerwin.config import check_encoding
from nerwin.data.conll import (
    BOM,
    SCHEMES,
    Tag,
    TagError,
    column_problem,
    detect_scheme,
    iter_token_sentences,
    open_input,
    parse_tag,
    sentence_lines,
    split_fields,
    to_iob2,
)
from nerwin.data.features import normalise_word
from nerwin.data.vectors import PACKAGED, load_vectors
from nerwin.errors import ConfigError, DataError

SEVERITIES = ("error", "warning", "info")  # most severe first
EXIT_CODES = {"error": 2, "warning": 1}  # the worst finding decides; 0 if only info

MAX_LINES = 5  # line numbers kept per finding (the first ones)
OVERLAP_WARNING_RATE = 0.05  # overlap below this share of a file is info (news boilerplate)
MIN_OVERLAP_TOKENS = 3  # shorter sentences ("Results :", "1. Smith") are not compared

_COLUMN_OPTIONS = ("--token-column", "--tag-column")  # what column_problem calls the columns


# ---------------------------------------------------------------------------
# The report


@dataclass(frozen=True)
class Finding:
    """One problem (or one fact, for info) about a file.

    ``line`` is the 1-based line of the first occurrence, None for the whole
    file; ``lines`` holds the first MAX_LINES occurrences and ``count`` all
    of them.
    """

    severity: str  # "error" | "warning" | "info"
    file: str
    line: int | None
    code: str
    message: str
    count: int = 1
    lines: tuple[int, ...] = ()

    def to_dict(self) -> dict:
        return {**asdict(self), "lines": list(self.lines)}


@dataclass(frozen=True)
class FileInfo:
    """What validate learnt about one file: the encoding and scheme it read it with."""

    file: str
    encoding: str | None  # None if the file could not be read
    scheme: str | None  # None if it has no sentences
    sentences: int
    tokens: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Report:
    """Every finding of one ``validate`` call, grouped by file in the order given."""

    files: list[FileInfo]
    findings: list[Finding]

    def count(self, severity: str) -> int:
        return sum(finding.severity == severity for finding in self.findings)

    @property
    def exit_code(self) -> int:
        """2 if any error, 1 if any warning, else 0."""
        return max((EXIT_CODES.get(f.severity, 0) for f in self.findings), default=0)

    def to_dict(self) -> dict:
        return {
            "exit_code": self.exit_code,
            "counts": {severity: self.count(severity) for severity in SEVERITIES},
            "files": [info.to_dict() for info in self.files],
            "findings": [finding.to_dict() for finding in self.findings],
        }


def validate(
    paths: Sequence[str | PathLike],
    *,
    encoding: str = "auto",
    scheme: str = "auto",
    token_column: int = 0,
    tag_column: int = -1,
    max_sentence_tokens: int = 250,
) -> Report:
    """Check CoNLL files; the first is the training data the others are compared with.

    ``encoding`` "auto" reads UTF-8 and falls back to latin-1 (a warning);
    a named encoding is used as is, and bytes it cannot decode are errors.
    ``scheme`` is "auto" or one of SCHEMES. ConfigError for a bad argument;
    problems in the files are findings, never exceptions.
    """
    _check_arguments(encoding, scheme)
    if max_sentence_tokens < 1:
        raise ConfigError(f"max_sentence_tokens must be at least 1, not {max_sentence_tokens}")
    files = [_read_file(path, encoding, token_column, tag_column) for path in paths]
    for scanned in files:
        if scanned.sentences:
            _check_tags(scanned, scheme)
            _check_lengths(scanned, max_sentence_tokens)
    if scheme == "auto":
        _check_mixed_schemes(files)
    train, others = files[0], [scanned for scanned in files[1:] if scanned.sentences]
    if train.sentences and others:
        train_sentences = _comparable_sentences(train)
        for other in others:
            _check_unseen_labels(train, other)
            _check_overlap(train, train_sentences, other)
    findings = [finding for scanned in files for finding in _sorted(scanned.findings)]
    return Report([scanned.info() for scanned in files], findings)


def format_report(report: Report) -> str:
    """One ``FILE:LINE: severity: message [code]`` line per finding, then a summary line."""
    lines = []
    for finding in report.findings:
        where = finding.file if finding.line is None else f"{finding.file}:{finding.line}"
        lines.append(f"{where}: {finding.severity}: {finding.message} [{finding.code}]")
    counts = ", ".join(_plural(report.count(s), s) for s in ("error", "warning"))
    lines.append(
        f"{_plural(len(report.files), 'file')} checked: {counts},"
        f" {report.count('info')} info (exit code {report.exit_code})"
    )
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Statistics


def stats(
    paths: Sequence[str | PathLike],
    *,
    encoding: str = "auto",
    scheme: str = "auto",
    token_column: int = 0,
    tag_column: int = -1,
    vocabulary: set[str] | None = None,
) -> dict[str, dict]:
    """Counts per file, keyed by the path as given; JSON-able.

    Per file: encoding, scheme, documents, sentences, tokens, sentence
    length (mean, max), entities per type (IOB2 spans), tags as written in
    the file, distinct words (normalised as the word feature normalises
    them) and, if a ``vocabulary`` of normalised words is given, the
    out-of-vocabulary rate over tokens and over distinct words.
    DataError on the first error ``validate`` would report.
    """
    _check_arguments(encoding, scheme)
    return {
        str(path): _file_stats(
            _read_file(path, encoding, token_column, tag_column), scheme, vocabulary
        )
        for path in paths
    }


def vocabulary_from(
    source: str | PathLike,
    *,
    kind: str = "auto",
    token_column: int = 0,
    encoding: str = "auto",
) -> set[str]:
    """The normalised words of a CoNLL file (``kind="conll"``) or of pretrained vectors.

    ``kind="vectors"``: a packaged name (glove-6b-50d) or a GloVe / word2vec
    text file, read by ``load_vectors``. ``"auto"``: vectors if ``source``
    is a packaged name, ends in .gz, or its first line is a word and numbers.
    """
    if kind not in ("auto", "conll", "vectors"):
        raise ConfigError(f"vocabulary kind must be auto, conll or vectors, not {kind!r}")
    if kind == "vectors" or (kind == "auto" and _looks_like_vectors(source)):
        words = load_vectors(str(source)).words
        return set(words)
    _check_arguments(encoding, "auto")
    if encoding == "auto":
        encoding = detect_encoding(source)
    sentences = iter_token_sentences(source, token_column=token_column, encoding=encoding)
    return {normalise_word(token) for tokens in sentences for token in tokens}


def detect_encoding(path: str | PathLike) -> str:
    """ "utf-8" if the whole file decodes as UTF-8, else "latin-1" (which decodes anything)."""
    try:
        _read_bytes(path).decode("utf-8")
    except UnicodeDecodeError:
        return "latin-1"
    return "utf-8"


def format_stats(stats_by_file: dict[str, dict]) -> str:
    """A table, one column per file, one row per count; entity types and tags as sub-rows."""
    files = list(stats_by_file.values())
    types = sorted({etype for s in files for etype in s["entities"]})
    tags = sorted({tag for s in files for tag in s["tags"]}, key=_tag_order)
    rows: list[tuple[str, list[str]]] = [
        ("encoding", [s["encoding"] for s in files]),
        ("scheme", [s["scheme"] for s in files]),
    ]
    for key in ("documents", "sentences", "tokens"):
        rows.append((key, [f"{s[key]:,}" for s in files]))
    rows.append(("mean sentence length", [f"{s['sentence_length']['mean']:.1f}" for s in files]))
    rows.append(("max sentence length", [f"{s['sentence_length']['max']:,}" for s in files]))
    rows.append(("entities", [f"{sum(s['entities'].values()):,}" for s in files]))
    rows += [(f"  {t}", [f"{s['entities'].get(t, 0):,}" for s in files]) for t in types]
    rows.append(("distinct words", [f"{s['words']:,}" for s in files]))
    if any(s["oov"] is not None for s in files):
        for unit in ("token", "type"):
            rows.append((f"OOV {unit}s", [_oov_cell(s["oov"], unit) for s in files]))
    rows.append(("tags", ["" for _ in files]))
    rows += [(f"  {t}", [f"{s['tags'].get(t, 0):,}" for s in files]) for t in tags]
    names = [Path(path).name for path in stats_by_file]
    if len(set(names)) < len(names):
        names = list(stats_by_file)
    label_width = max(len(label) for label, _ in rows)
    widths = [max(len(name), *(len(cells[i]) for _, cells in rows)) for i, name in enumerate(names)]
    header = " " * label_width + "".join(f"  {n:>{w}}" for n, w in zip(names, widths, strict=True))
    body = [
        f"{label:<{label_width}}"
        + "".join(f"  {c:>{w}}" for c, w in zip(cells, widths, strict=True))
        for label, cells in rows
    ]
    return "\n".join(line.rstrip() for line in [header, *body])


def _file_stats(scanned: _FileScan, scheme: str, vocabulary: set[str] | None) -> dict:
    if scanned.sentences:
        _check_tags(scanned, scheme)
    errors = [f for f in _sorted(scanned.findings) if f.severity == "error"]
    if errors:
        first = errors[0]
        hint = "; `nerwin data validate` lists every problem"
        raise DataError(first.file, first.line, first.message + hint)
    entities: Counter[str] = Counter()
    tags: Counter[str] = Counter()
    words: Counter[str] = Counter()
    for sentence in scanned.sentences:
        tags.update(sentence.tags)
        words.update(map(normalise_word, sentence.tokens))
        try:
            iob2 = to_iob2(sentence.tags, scanned.scheme)
        except TagError as err:  # validate should have caught it; never a traceback
            raise DataError(scanned.file, sentence.line + err.index, str(err)) from None
        entities.update(tag[2:] for tag in iob2 if tag[0] == "B")
    lengths = [len(sentence.tokens) for sentence in scanned.sentences]
    tokens = sum(lengths)
    oov = None
    if vocabulary is not None:
        unknown = [word for word in words if word not in vocabulary]
        oov_tokens = sum(words[word] for word in unknown)
        oov = {
            "tokens": oov_tokens,
            "token_rate": oov_tokens / tokens,
            "types": len(unknown),
            "type_rate": len(unknown) / len(words),
        }
    return {
        "file": scanned.file,
        "encoding": scanned.encoding,
        "scheme": scanned.scheme,
        "documents": scanned.documents,
        "sentences": len(lengths),
        "tokens": tokens,
        "sentence_length": {"mean": tokens / len(lengths), "max": max(lengths)},
        "entities": dict(sorted(entities.items())),
        "tags": dict(sorted(tags.items(), key=lambda item: _tag_order(item[0]))),
        "words": len(words),
        "oov": oov,
    }


def _oov_cell(oov: dict | None, unit: str) -> str:
    if oov is None:
        return "-"
    return f"{100 * oov[f'{unit}_rate']:.1f}% ({oov[f'{unit}s']:,})"


def _tag_order(tag: str) -> tuple[str, int]:
    """O first, then by entity type, B I E S within a type."""
    parsed = parse_tag(tag)
    if parsed is None or parsed.type is None:  # O (stats holds no other kind of tag)
        return ("", 0)
    return (parsed.type, "BIES".find(parsed.prefix))


def _looks_like_vectors(source: str | PathLike) -> bool:
    if str(source) in PACKAGED or str(source).endswith(".gz"):
        return True
    try:
        with open(source, "rb") as file:
            fields = file.readline().split()
    except OSError:
        return False  # let the CoNLL reader name the problem
    try:
        [float(number) for number in fields[1:]]
    except ValueError:
        return False
    return len(fields) >= 2


# ---------------------------------------------------------------------------
# Reading: a tolerant pass over the lines


@dataclass
class _Sentence:
    tokens: tuple[str, ...]
    tags: list[str | None]  # as in the file; None where the line's columns are wrong
    line: int  # of the first token; token i is on line + i


class _Tally:
    """The occurrences of one kind of problem: how many, the first lines, the first example."""

    __slots__ = ("count", "lines", "example")

    def __init__(self):
        self.count = 0
        self.lines: list[int] = []
        self.example = None

    def add(self, line: int, example=None) -> None:
        if not self.count:
            self.example = example
        self.count += 1
        if len(self.lines) < MAX_LINES:
            self.lines.append(line)

    def where(self) -> str:
        """ "line 7", or "12 times, lines 7, 9, 30, 31, 40, …"."""
        if self.count == 1:
            return f"line {self.lines[0]}"
        return f"{self.count:,} times, {self.line_list()}"

    def line_list(self) -> str:
        """ "line 7", or "lines 7, 9, 30, 31, 40, …" (the first MAX_LINES)."""
        if self.count == 1:
            return f"line {self.lines[0]}"
        more = ", …" if self.count > len(self.lines) else ""
        return f"lines {', '.join(map(str, self.lines))}{more}"


@dataclass
class _FileScan:
    file: str
    encoding: str | None = None
    scheme: str | None = None
    sentences: list[_Sentence] = field(default_factory=list)
    documents: int = 0
    findings: list[Finding] = field(default_factory=list)
    # entity type -> (tokens tagged with it, first line); filled by _check_tags
    types: dict[str, list[int]] = field(default_factory=dict)

    def add(self, severity: str, code: str, message: str, line: int | None = None) -> None:
        lines = () if line is None else (line,)
        self.findings.append(Finding(severity, self.file, line, code, message, 1, lines))

    def add_tally(self, severity: str, code: str, message: str, tally: _Tally) -> None:
        finding = Finding(
            severity, self.file, tally.lines[0], code, message, tally.count, tuple(tally.lines)
        )
        self.findings.append(finding)

    def info(self) -> FileInfo:
        tokens = sum(len(sentence.tokens) for sentence in self.sentences)
        return FileInfo(self.file, self.encoding, self.scheme, len(self.sentences), tokens)


def _check_arguments(encoding: str, scheme: str) -> None:
    if encoding != "auto":
        check_encoding(encoding, "--encoding: ")
    if scheme != "auto" and scheme not in SCHEMES:
        raise ConfigError(f"--scheme: {scheme!r} is not auto, {', '.join(SCHEMES)}")


def _read_bytes(path: str | PathLike) -> bytes:
    with open_input(path) as file:
        return file.read()


def _read_file(
    path: str | PathLike, encoding: str, token_column: int, tag_column: int
) -> _FileScan:
    scanned = _FileScan(str(path))
    try:
        data = _read_bytes(path)
    except DataError as err:
        scanned.add("error", "no-file", err.message)
        return scanned
    lines = _decode(scanned, data, encoding)
    _split_sentences(scanned, lines, token_column, tag_column)
    if not scanned.sentences:
        what = (
            "the file is empty"
            if not data
            else "only blank lines"
            if not "".join(lines).strip()  # the BOM is gone from the decoded lines
            else "only blank and -DOCSTART- lines"
        )
        scanned.add("error", "empty-file", f"no sentences: {what}")
    return scanned


def _decode(scanned: _FileScan, data: bytes, encoding: str) -> list[str]:
    """The file's lines, split at b"\\n" as iter_lines splits them; findings for bad bytes."""
    asked = "utf-8" if encoding == "auto" else encoding
    try:
        text = data.decode(asked)
    except UnicodeDecodeError as err:
        if encoding != "auto":
            scanned.encoding = encoding
            return _decode_lines(scanned, data, encoding)
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - data.rfind(b"\n", 0, err.start)
        byte = f"0x{data[err.start]:02x}"
        scanned.encoding = "latin-1"
        text = data.decode("latin-1")  # never fails: every byte is a character
        message = (
            f"not UTF-8 (byte {byte} at column {column}); read as latin-1,"
            " which training reads only with data.encoding: latin-1"
        )
        scanned.add("warning", "encoding", message, line)
    else:
        scanned.encoding = asked
        how = "detected" if encoding == "auto" else "as given"
        scanned.add("info", "encoding", f"encoding {asked} ({how})")
    lines = text.split("\n")
    lines[0] = lines[0].removeprefix(BOM)
    return lines


def _decode_lines(scanned: _FileScan, data: bytes, encoding: str) -> list[str]:
    """Slow path: decode line by line, replacing bad bytes and counting the lines that have them."""
    bad = _Tally()
    lines = []
    for line_no, line_bytes in enumerate(data.split(b"\n"), start=1):
        try:
            lines.append(line_bytes.decode(encoding))
        except UnicodeDecodeError as err:
            bad.add(line_no, (line_bytes[err.start], err.start + 1))
            lines.append(line_bytes.decode(encoding, errors="replace"))
    byte, column = bad.example
    message = (
        f"not valid {encoding} ({bad.where()}; the first: byte 0x{byte:02x} at column {column})"
    )
    if encoding.replace("_", "-").lower() in ("utf-8", "utf8"):
        message += "; latin-1 maybe?"
    scanned.add_tally("error", "decode", message, bad)
    lines[0] = lines[0].removeprefix(BOM)
    return lines


def _split_sentences(
    scanned: _FileScan, lines: list[str], token_column: int, tag_column: int
) -> None:
    """Group lines into sentences as read_conll does, counting column and -DOCSTART- problems."""
    width = width_line = None
    tags_readable = True
    bad_width = _Tally()
    docstart_inside = _Tally()
    numbered = enumerate(map(split_fields, lines), start=1)
    for sentence in sentence_lines(numbered):
        if width is None:
            width_line, first = sentence.rows[0]
            width = len(first)
            problem = column_problem(width, token_column, tag_column, _COLUMN_OPTIONS)
            if problem:
                scanned.add("error", "columns", problem, width_line)
                tags_readable = False
        tokens: list[str] = []
        tags: list[str | None] = []
        for line_no, fields in sentence.rows:
            has_token = -len(fields) <= token_column < len(fields)
            tokens.append(fields[token_column] if has_token else fields[0])
            if len(fields) == width:
                tags.append(fields[tag_column] if tags_readable else None)
            else:
                bad_width.add(line_no, len(fields))
                tags.append(None)
        scanned.sentences.append(_Sentence(tuple(tokens), tags, sentence.line))
        scanned.documents = sentence.doc + 1
        if sentence.docstart_inside:
            docstart_inside.add(sentence.rows[-1][0] + 1)  # the line after the last token
    if bad_width.count:
        message = (
            f"column count differs from line {width_line}'s {width}"
            f" ({bad_width.where()}; the first of them has {bad_width.example} columns)"
        )
        scanned.add_tally("error", "columns", message, bad_width)
    if docstart_inside.count:
        message = (
            "-DOCSTART- inside a sentence, with no blank line before it"
            f" ({docstart_inside.where()}); it ends the sentence"
        )
        scanned.add_tally("warning", "docstart-in-sentence", message, docstart_inside)


# ---------------------------------------------------------------------------
# Tags and transitions


# What each kind of transition is called, and why it is ill-formed.
_IOB_I_BEGINS = {
    "start": "I-X at the start of a sentence",
    "O": "I-X after O",
    "other": "I-X after B-Y or I-Y (another type)",
}
_IOB_B_BEGINS = {
    "start": "B-X at the start of a sentence",
    "O": "B-X after O",
    "other": "B-X after B-Y or I-Y (another type)",
}
_BIOES_KINDS = {
    "I-open": "I-X without B-X before it",
    "E-open": "E-X without B-X before it",
    "B-close": "B-X not followed by I-X or E-X",
    "I-close": "I-X not followed by I-X or E-X",
}


def _check_tags(scanned: _FileScan, scheme: str) -> None:
    """Bad tags, the scheme (detected or given), and ill-formed transitions in it."""
    bad = _Tally()
    wrong_scheme = _Tally()
    types = scanned.types
    iob_only = scheme in ("IOB1", "IOB2")
    clean: list[list[str]] = []  # for detect_scheme: tags it cannot read replaced by O
    parsed_sentences = []
    for sentence in scanned.sentences:
        parsed = []
        for index, tag in enumerate(sentence.tags):
            split = None if tag is None else parse_tag(tag)
            if tag is not None and split is None:
                bad.add(sentence.line + index, tag)
            elif split is not None and iob_only and split.prefix in "ES":
                wrong_scheme.add(sentence.line + index, tag)
                split = None
            if split is not None and split.type is not None:
                seen = types.setdefault(split.type, [0, sentence.line + index])
                seen[0] += 1
            parsed.append(split)
        parsed_sentences.append(parsed)
        clean.append(
            [
                "O" if split is None else tag
                for tag, split in zip(sentence.tags, parsed, strict=True)
            ]
        )
    if bad.count:
        message = (
            f"not a tag: {bad.example!r} ({bad.where()}); expected O or PREFIX-TYPE, e.g. B-PER"
        )
        tag_count = sum(len(sentence.tags) for sentence in scanned.sentences)
        if bad.count * 2 > tag_count:
            message += "; is --tag-column right?"
        scanned.add_tally("error", "bad-tag", message, bad)
    if wrong_scheme.count:
        message = (
            f"{wrong_scheme.example!r} is not valid in {scheme}, which uses O, B- and I-"
            f" ({wrong_scheme.where()})"
        )
        scanned.add_tally("error", "wrong-scheme", message, wrong_scheme)
    if not types:  # no scheme to detect or check
        scanned.scheme = scheme if scheme != "auto" else "IOB2"
        if not (
            bad.count
            or wrong_scheme.count
            or any(None in sentence.tags for sentence in scanned.sentences)
        ):
            scanned.add("warning", "no-entities", "no entity tags: every tag is O")
        return
    detected = detect_scheme(clean)
    scanned.scheme = detected if scheme == "auto" else scheme
    if scanned.scheme == "BIOES":
        _check_bioes(scanned, parsed_sentences, scheme)
    else:
        _check_iob(scanned, parsed_sentences, scheme)


def _check_iob(scanned: _FileScan, parsed_sentences, scheme: str) -> None:
    """IOB1 / IOB2: count the tags that begin an entity with I- and with B- after no same type."""
    i_begins = {kind: _Tally() for kind in _IOB_I_BEGINS}
    b_begins = {kind: _Tally() for kind in _IOB_B_BEGINS}
    for sentence, parsed in zip(scanned.sentences, parsed_sentences, strict=True):
        previous: Tag | tuple[str, None] | None = ("start", None)  # (prefix, type); None: unknown
        for index, split in enumerate(parsed):
            both_read = split is not None and previous is not None
            if both_read and split.prefix in "BI" and previous[1] != split.type:  # begins an entity
                where = previous[0] if previous[0] in ("start", "O") else "other"
                begins = i_begins if split.prefix == "I" else b_begins
                begins[where].add(sentence.line + index)
            previous = split
    i_count = sum(tally.count for tally in i_begins.values())
    b_count = sum(tally.count for tally in b_begins.values())
    how = "as given" if scheme != "auto" else "detected"
    scanned.add("info", "scheme", f"tag scheme {scanned.scheme} ({how})")
    if scheme == "IOB2" or (scheme == "auto" and i_count and i_count <= b_count):
        severity = "error" if scheme == "IOB2" else "warning"
        reason = (
            "in IOB2 an I- tag must continue an entity of its type"
            if scheme == "IOB2"
            else f"legal only in IOB1, but {_plural(b_count, 'entity')} here begin with B- as in"
            " IOB2; read as IOB1, each such I- begins an entity"
        )
        for kind, tally in i_begins.items():
            if tally.count:
                message = f"{_IOB_I_BEGINS[kind]}: {tally.where()}; {reason}"
                scanned.add_tally(severity, "transition", message, tally)
    elif scheme == "IOB1" or (scheme == "auto" and b_count and i_count > b_count):
        reason = "IOB1 uses B- only right after an entity of the same type; read as beginning one"
        if scheme == "auto":
            reason = f"the file is IOB1 ({_plural(i_count, 'entity')} begin with I-); " + reason
        for kind, tally in b_begins.items():
            if tally.count:
                message = f"{_IOB_B_BEGINS[kind]}: {tally.where()}; {reason}"
                scanned.add_tally("warning", "transition", message, tally)


def _check_bioes(scanned: _FileScan, parsed_sentences, scheme: str) -> None:
    """BIOES: I-/E- must continue a B-/I- of their type, and B-/I- must be continued."""
    tallies = {kind: _Tally() for kind in _BIOES_KINDS}
    for sentence, parsed in zip(scanned.sentences, parsed_sentences, strict=True):
        open_type = None  # the type an I-/E- may continue here
        known = True  # the previous tag was readable
        for index, split in enumerate(parsed):
            if split is None:
                open_type, known = None, False
                continue
            prefix, etype = split.prefix, split.type
            continues = prefix in "IE" and etype == open_type
            if known and prefix in "IE" and not continues:
                tallies[f"{prefix}-open"].add(sentence.line + index)
            if known and open_type is not None and not continues:
                tallies[f"{parsed[index - 1].prefix}-close"].add(sentence.line + index - 1)
            open_type = etype if prefix in "BI" else None
            known = True
        if known and open_type is not None:
            tallies[f"{parsed[-1].prefix}-close"].add(sentence.line + len(parsed) - 1)
    how = "as given" if scheme != "auto" else "detected: it has E- or S- tags"
    scanned.add("info", "scheme", f"tag scheme BIOES ({how})")
    for kind, tally in tallies.items():
        if tally.count:
            message = f"{_BIOES_KINDS[kind]}: {tally.where()}; ill-formed in BIOES"
            scanned.add_tally("error", "transition", message, tally)


def _check_lengths(scanned: _FileScan, max_tokens: int) -> None:
    long = _Tally()
    for sentence in scanned.sentences:
        if len(sentence.tokens) > max_tokens:
            long.add(sentence.line, len(sentence.tokens))
    if long.count:
        longest = max(len(sentence.tokens) for sentence in scanned.sentences)
        message = (
            f"sentence longer than {max_tokens} tokens ({long.where()}; the longest has {longest});"
            " a missing blank line?"
        )
        scanned.add_tally("warning", "long-sentence", message, long)


# ---------------------------------------------------------------------------
# Across files: the first is the training data


def _check_mixed_schemes(files: list[_FileScan]) -> None:
    tagged = [scanned for scanned in files if scanned.types]
    if not tagged:
        return
    reference = tagged[0]
    for scanned in tagged[1:]:
        if scanned.scheme != reference.scheme:
            message = (
                f"tag scheme {scanned.scheme} differs from {reference.file}'s {reference.scheme};"
                " scheme auto reads each file right, a fixed data.scheme would misread one"
            )
            scanned.add("warning", "mixed-schemes", message)


def _check_unseen_labels(train: _FileScan, other: _FileScan) -> None:
    for etype, (count, first_line) in sorted(other.types.items()):
        if etype not in train.types:
            message = (
                f"entity type {etype} ({_plural(count, 'token')}) does not occur in {train.file};"
                " a model trained on it cannot predict it"
            )
            finding = Finding(
                "warning", other.file, first_line, "unseen-label", message, count, (first_line,)
            )
            other.findings.append(finding)


def _comparable(tokens: tuple[str, ...]) -> bool:
    """Whether a sentence counts for overlap: > 2 tokens and some letter or digit."""
    return len(tokens) >= MIN_OVERLAP_TOKENS and any(
        character.isalnum() for token in tokens for character in token
    )


def _comparable_sentences(train: _FileScan) -> dict[tuple[str, ...], _Sentence]:
    """The first sentence of ``train`` with each comparable token sequence."""
    seen: dict[tuple[str, ...], _Sentence] = {}
    for sentence in train.sentences:
        if _comparable(sentence.tokens):
            seen.setdefault(sentence.tokens, sentence)
    return seen


def _iob2(sentence: _Sentence, scheme: str | None) -> list[str | None]:
    """The tags in IOB2, to compare files in different schemes; as written if ill-formed."""
    try:
        return to_iob2(sentence.tags, scheme)
    except (TagError, TypeError, ValueError):  # a None tag, no scheme
        return sentence.tags


def _check_overlap(
    train: _FileScan, seen: dict[tuple[str, ...], _Sentence], other: _FileScan
) -> None:
    """Sentences of ``other`` whose tokens are exactly a sentence of ``train`` (``seen``)."""
    checked = 0
    overlap = _Tally()
    tagged_differently = 0
    for sentence in other.sentences:
        if not _comparable(sentence.tokens):
            continue
        checked += 1
        twin = seen.get(sentence.tokens)
        if twin is not None:
            overlap.add(sentence.line, (sentence, twin))
            tagged_differently += _iob2(twin, train.scheme) != _iob2(sentence, other.scheme)
    compared = f"{MIN_OVERLAP_TOKENS}+ tokens with a letter or digit"
    if not overlap.count:
        message = (
            f"no sentence also in {train.file} "
            f"({_plural(checked, 'sentence')} of {compared} compared)"
        )
        other.add("info", "overlap", message)
        return
    rate = overlap.count / checked
    sentence, twin = overlap.example
    text = " ".join(sentence.tokens)
    text = text if len(text) <= 60 else text[:59] + "…"
    message = (
        f"{overlap.count:,} of the {checked:,} sentences of {compared} ({100 * rate:.1f}%)"
        f" also in {train.file}"
        f" ({overlap.line_list()}); e.g. {text!r} = {train.file}:{twin.line}"
    )
    if tagged_differently:
        message += f"; {tagged_differently:,} of them tagged differently"
    severity = "warning" if rate >= OVERLAP_WARNING_RATE else "info"
    other.add_tally(severity, "overlap", message, overlap)


# ---------------------------------------------------------------------------
# Helpers


def _sorted(findings: Iterable[Finding]) -> list[Finding]:
    """Whole-file findings first, then by line; stable, so ties keep the order of the checks."""
    return sorted(findings, key=lambda finding: -1 if finding.line is None else finding.line)


def _plural(count: int, word: str) -> str:
    if count == 1:
        return f"1 {word}"
    plural = word[:-1] + "ies" if word.endswith("y") else word + "s"
    return f"{count:,} {plural}"
