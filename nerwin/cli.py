"""The ``nerwin`` command: parse options, call a plain function, print the result.

Errors a user can cause arrive as ``NerwinError`` and leave as one line on
stderr with exit code 2; nothing here computes anything itself.
"""

from __future__ import annotations

import errno
import functools
import json
import sys
from typing import NoReturn

import click

from nerwin import __version__
from nerwin.analysis import format_explanation
from nerwin.config import Config, check_encoding, load_config, validate
from nerwin.data import validate as validation
from nerwin.data.conll import iter_lines, iter_token_sentences, read_conll
from nerwin.errors import NerwinError
from nerwin.metrics import format_conlleval, format_report
from nerwin.model import WindowTagger, gradcheck_small_model
from nerwin.nn.gradcheck import TOLERANCE
from nerwin.predict import (
    FORMATS,
    explain_model,
    tag_stream,
    tag_text_lines,
    write_prediction_file,
)
from nerwin.train import resume as resume_training
from nerwin.train import train as train_model

DEFAULT_MODEL = Config().output  # where `nerwin train` saves unless told otherwise
INTERRUPTED = 130  # the shell's code for a command stopped by Ctrl-C (128 + SIGINT)


def user_errors(command):
    """Turn a NerwinError into ``nerwin: <message>`` on stderr and exit code 2.

    A MemoryError too: what nerwin allocates follows from what the user
    asks (a config's sizes, a file's longest sentence).
    """

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except NerwinError as err:
            click.echo(f"nerwin: {err}", err=True)
            sys.exit(2)
        except MemoryError as err:
            click.echo(f"nerwin: out of memory ({err})", err=True)
            sys.exit(2)

    return wrapper


model_option = click.option(
    "--model",
    "model_dir",
    metavar="DIR",
    default=DEFAULT_MODEL,
    show_default=True,
    help="Model directory written by `nerwin train`.",
)
config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(),
    metavar="FILE",
    help="YAML config file; without one, the built-in defaults (README, Configuration).",
)
set_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config key, the value read as YAML (train.lr=0.01); repeatable.",
)


class Nerwin(click.Group):
    """The ``nerwin`` group: a failed write to stdout, or to a file, ends as one line."""

    def main(self, *args, **kwargs):
        try:
            try:
                return super().main(*args, **kwargs)
            finally:
                sys.stdout.flush()  # so buffered output fails here, not at interpreter exit
        except OSError as err:
            # Files nerwin reads or writes raise NerwinErrors naming them, so an OSError
            # without a filename is stdout failing. One with a filename is a file nerwin
            # forgot to check; it still names the file, in one line as DESIGN asks.
            if err.filename is not None:
                file_failed(err)
            output_failed(err)


def file_failed(err: OSError) -> NoReturn:
    """Say which file failed and why, like a user error."""
    click.echo(f"nerwin: {err.filename}: {err.strerror or err}", err=True)
    sys.exit(2)


def output_failed(err: OSError) -> NoReturn:
    """Exit quietly when the reader has gone (``| head``), else say why the output failed."""
    if err.errno == errno.EPIPE:
        sys.exit(1)
    click.echo(f"nerwin: cannot write output: {err.strerror}", err=True)
    sys.exit(2)


@click.group(cls=Nerwin)
@click.version_option(__version__, prog_name="nerwin")
def main():
    """Window-classifier named-entity tagger with hand-derived gradients."""


@main.command()
@config_option
@set_option
@click.option(
    "--output",
    type=click.Path(),
    metavar="DIR",
    help=f"Output directory, taken as typed; wins over the config's `output` ({DEFAULT_MODEL}).",
)
@click.option(
    "--resume",
    "resume_dir",
    type=click.Path(),
    metavar="RUN_DIR",
    help="Continue the run in this directory; alone, without the options above.",
)
@user_errors
def train(config_path, overrides, output, resume_dir):
    """Train a model; the best one on dev is saved in the output directory."""
    if resume_dir:
        if config_path or overrides or output is not None:
            raise NerwinError("--resume continues a run as it was: no --config, --set or --output")
        run = resume_training(resume_dir, log=click.echo)
    else:
        config = load_config(config_path, overrides)
        if output is not None:
            config.output = output  # a path, not YAML: 2024, null and "a #1" stay as typed
            validate(config)
        run = train_model(config, log=click.echo)
    click.echo(f"best epoch {run.best_epoch}, {run.seconds:.1f} s; model saved in {run.output}")
    for split, scores in run.scores.items():
        click.echo(f"\n== {split} ==\n{format_report(scores)}")
    if run.interrupted:
        sys.exit(INTERRUPTED)


@main.command(name="eval")
@model_option
@click.argument("file", type=click.Path())
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "conlleval", "json"]),
    help="table (the default): every view of the errors; conlleval: conlleval.pl's report; "
    "json: all numbers.",
)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option(
    "--errors",
    "worst",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    metavar="K",
    help="List the K most confident false positives and least probable false negatives.",
)
@click.option(
    "--write-predictions",
    type=click.Path(),
    metavar="OUT",
    help="Write token, gold and predicted tag per line, as conlleval.pl reads them.",
)
@user_errors
def eval_command(model_dir, file, output_format, as_json, worst, write_predictions):
    """Score a model on a CoNLL FILE: entities per type, binary detection, errors, calibration."""
    if as_json and output_format not in (None, "json"):
        raise NerwinError(f"--json and --format {output_format}: choose one")
    model = WindowTagger.load(model_dir)
    data = model.config.data
    sentences = read_conll(
        file,
        token_column=data.token_column,
        tag_column=data.tag_column,
        scheme=data.scheme,
        encoding=data.encoding,
    )
    result, pred = explain_model(model, sentences, errors=worst)
    if write_predictions:
        write_prediction_file(write_predictions, sentences, pred)
    if as_json or output_format == "json":
        click.echo(json.dumps(result, indent=1))
    elif output_format == "conlleval":
        click.echo(format_conlleval(result["conlleval"]), nl=False)
    else:
        click.echo(format_explanation(result))


@main.command()
@model_option
@click.argument("file", type=click.Path(allow_dash=True))
@click.option(
    "--input-format",
    type=click.Choice(["text", "conll"]),
    default="text",
    show_default=True,
    help="text: a sentence a line; conll: a token a line, in the model's token column.",
)
@click.option(
    "--output-format",
    type=click.Choice(sorted(FORMATS)),
    default="conll",
    show_default=True,
    help="conll: token, tag, P(tag), P(entity); jsonl: an object a sentence; inline: brackets.",
)
@click.option(
    "--encoding", metavar="ENC", default="utf-8", show_default=True, help="Text encoding of FILE."
)
@click.option(
    "--scheme",
    type=click.Choice(["IOB1", "IOB2", "BIOES"]),
    default="IOB2",
    show_default=True,
    help="Tag scheme of the conll and jsonl output.",
)
@click.option(
    "--min-confidence",
    type=click.FloatRange(0.0, 1.0),
    default=0.0,
    show_default=True,
    metavar="P",
    help="Drop entity spans whose confidence is below P.",
)
@user_errors
def predict(model_dir, file, input_format, output_format, encoding, scheme, min_confidence):
    """Tag FILE (or - for stdin) and write the tags to stdout as they are found."""
    check_encoding(encoding, "--encoding: ")
    model = WindowTagger.load(model_dir)
    if input_format == "conll":
        token_column = model.config.data.token_column
        sentences = iter_token_sentences(file, token_column=token_column, encoding=encoding)
        tagged = tag_stream(model, sentences)
    else:
        tagged = tag_text_lines(model, (text for _, text in iter_lines(file, encoding)))
    write = FORMATS[output_format]
    if output_format != "inline":  # brackets need no scheme
        write = functools.partial(write, scheme=scheme)
    for item in tagged:
        if min_confidence:
            item.drop_unsure(model.labels, min_confidence)
        sys.stdout.write(write(item, model.labels))


@main.group()
def data():
    """Check and describe CoNLL files."""


def data_options(command):
    """The reading options and FILE arguments that ``data validate`` and ``data stats`` share."""
    for option in reversed(
        [
            click.argument("files", nargs=-1, required=True, type=click.Path()),
            click.option("--json", "as_json", is_flag=True, help="Print JSON."),
            click.option(
                "--encoding",
                metavar="ENC",
                default="auto",
                show_default=True,
                help="Text encoding of FILES; auto: UTF-8, else latin-1.",
            ),
            click.option(
                "--scheme",
                type=click.Choice(["auto", "IOB1", "IOB2", "BIOES"]),
                default="auto",
                show_default=True,
                help="Tag scheme of FILES; auto: detected from the tags.",
            ),
            click.option(
                "--token-column",
                type=int,
                metavar="N",
                default=0,
                show_default=True,
                help="Column of the token.",
            ),
            click.option(
                "--tag-column",
                type=int,
                metavar="N",
                default=-1,
                show_default=True,
                help="Column of the tag; negative counts from the end.",
            ),
        ]
    ):
        command = option(command)
    return command


@data.command(name="validate")
@data_options
@click.option(
    "--max-sentence-tokens",
    type=click.IntRange(1),
    metavar="N",
    default=250,
    show_default=True,
    help="Warn about sentences longer than this.",
)
@user_errors
def data_validate(files, as_json, max_sentence_tokens, **reading):
    """Check FILES (training data first, then dev/test) and list every problem.

    Exit code 0 when clean, 1 with warnings, 2 with errors.
    """
    report = validation.validate(files, max_sentence_tokens=max_sentence_tokens, **reading)
    click.echo(
        json.dumps(report.to_dict(), indent=1) if as_json else validation.format_report(report)
    )
    sys.exit(report.exit_code)


@data.command(name="stats")
@data_options
@click.option(
    "--vocab-from",
    type=click.Path(),
    metavar="CONLL",
    help="A CoNLL file whose words are the vocabulary, for OOV rates.",
)
@click.option(
    "--vectors",
    metavar="VECTORS",
    help="Vectors whose words are the vocabulary, for OOV rates (glove-6b-50d or a file).",
)
@user_errors
def data_stats(files, as_json, vocab_from, vectors, **reading):
    """Sentences, tokens, entities per type and OOV rates of FILES."""
    vocabulary = None
    if vocab_from:
        vocabulary = validation.vocabulary_from(
            vocab_from,
            kind="conll",
            token_column=reading["token_column"],
            encoding=reading["encoding"],
        )
    if vectors:
        vocabulary = (vocabulary or set()) | validation.vocabulary_from(vectors, kind="vectors")
    counts = validation.stats(files, vocabulary=vocabulary, **reading)
    click.echo(json.dumps(counts, indent=1) if as_json else validation.format_stats(counts))


@main.command()
@config_option
@set_option
@user_errors
def gradcheck(config_path, overrides):
    """Check every hand-derived gradient of a small float64 model by central differences."""
    config = load_config(config_path, overrides)
    checks = gradcheck_small_model(config)
    click.echo(f"{'parameter':<14} {'shape':<10} {'max rel error':>14}  ok")
    for check in checks:
        shape = "x".join(map(str, check.shape))
        click.echo(
            f"{check.name:<14} {shape:<10} {check.error:>14.2e}  {'yes' if check.ok else 'NO'}"
        )
    failed = [c.name for c in checks if not c.ok]
    if failed:
        click.echo(f"FAILED (tolerance {TOLERANCE:g}): {', '.join(failed)}", err=True)
        sys.exit(1)
    click.echo(f"all {len(checks)} gradients agree (tolerance {TOLERANCE:g})")


if __name__ == "__main__":
    main()
