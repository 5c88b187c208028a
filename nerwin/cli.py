"""The ``nerwin`` command: parse options, call a plain function, print the result.

Errors a user can cause arrive as ``NerwinError`` and leave as one line on
stderr with exit code 2; nothing here computes anything itself.
"""

from __future__ import annotations

import functools
import json
import sys

import click

from nerwin import __version__
from nerwin.config import Config, check_encoding, load_config
from nerwin.data.conll import iter_lines, iter_token_sentences, read_conll
from nerwin.errors import NerwinError
from nerwin.metrics import format_report
from nerwin.model import WindowTagger, gradcheck_small_model
from nerwin.nn.gradcheck import TOLERANCE
from nerwin.predict import FORMATS, evaluate, tag_stream, tag_text_lines
from nerwin.train import resume as resume_training
from nerwin.train import train as train_model

DEFAULT_MODEL = Config().output  # where `nerwin train` on the sample config saves


def user_errors(command):
    """Turn a NerwinError into ``nerwin: <message>`` on stderr and exit code 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except NerwinError as err:
            click.echo(f"nerwin: {err}", err=True)
            sys.exit(2)

    return wrapper


model_option = click.option(
    "--model",
    "model_dir",
    default=DEFAULT_MODEL,
    show_default=True,
    help="Model directory written by `nerwin train`.",
)


@click.group()
@click.version_option(__version__, prog_name="nerwin")
def main():
    """Window-classifier named-entity tagger with hand-derived gradients."""


@main.command()
@click.option("--config", "config_path", type=click.Path(), help="YAML config file.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a key.")
@click.option("--output", help="Output directory (same as --set output=DIR).")
@click.option(
    "--resume", "resume_dir", type=click.Path(), help="Continue the run in this directory."
)
@user_errors
def train(config_path, overrides, output, resume_dir):
    """Train a model; the best one on dev is saved in the output directory."""
    if resume_dir:
        if config_path or overrides or output:
            raise NerwinError("--resume continues a run as it was: no --config, --set or --output")
        run = resume_training(resume_dir, log=click.echo)
    else:
        if output:
            overrides = (*overrides, f"output={output}")
        run = train_model(load_config(config_path, overrides), log=click.echo)
    click.echo(f"best epoch {run.best_epoch}, {run.seconds:.1f} s; model saved in {run.output}")
    for split, scores in run.scores.items():
        click.echo(f"\n== {split} ==\n{format_report(scores)}")


@main.command(name="eval")
@model_option
@click.argument("file", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the scores as JSON.")
@user_errors
def eval_command(model_dir, file, as_json):
    """Score a model on a CoNLL FILE: entities per type, binary detection, confusions."""
    model = WindowTagger.load(model_dir)
    data = model.config.data
    sentences = read_conll(
        file,
        token_column=data.token_column,
        tag_column=data.tag_column,
        scheme=data.scheme,
        encoding=data.encoding,
    )
    scores = evaluate(model, sentences)
    click.echo(json.dumps(scores, indent=1) if as_json else format_report(scores))


@main.command()
@model_option
@click.argument("file", type=click.Path(allow_dash=True))
@click.option(
    "--input-format",
    type=click.Choice(["text", "conll"]),
    default="text",
    show_default=True,
    help="text: a sentence a line; conll: a token a line (first column).",
)
@click.option(
    "--output-format", type=click.Choice(sorted(FORMATS)), default="conll", show_default=True
)
@click.option("--encoding", default="utf-8", show_default=True, help="Text encoding of FILE.")
@user_errors
def predict(model_dir, file, input_format, output_format, encoding):
    """Tag FILE (or - for stdin) and write the tags to stdout as they are found."""
    check_encoding(encoding)
    model = WindowTagger.load(model_dir)
    if input_format == "conll":
        token_column = model.config.data.token_column
        sentences = iter_token_sentences(file, token_column=token_column, encoding=encoding)
        tagged = tag_stream(model, sentences)
    else:
        tagged = tag_text_lines(model, (text for _, text in iter_lines(file, encoding)))
    write = FORMATS[output_format]
    for item in tagged:
        sys.stdout.write(write(item, model.labels))


@main.command()
@click.option("--config", "config_path", type=click.Path(), help="YAML config file.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a key.")
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
