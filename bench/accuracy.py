"""CoNLL-2003 accuracy report: each config trained with several seeds, scored on dev and test.

    python bench/accuracy.py                      # what `make bench-accuracy` runs
    python bench/accuracy.py --seeds 1 --configs random=configs/conll2003-random.yaml

For every config and seed it trains a model (dev for early stopping only),
then scores dev and test once with the best model; it also scores the
ensemble that averages the seeds' probabilities. It writes the numbers to
``bench/results/accuracy.json`` and the tables to the accuracy section of
``docs/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from report import CONLL2003, REPO, machine, write_results

from nerwin.config import load_config
from nerwin.data.features import encode_windows
from nerwin.decode import decode_batch
from nerwin.metrics import evaluate_tags
from nerwin.model import WindowTagger
from nerwin.train import read_split, train

DEFAULT_CONFIGS = ["glove=configs/conll2003.yaml", "random=configs/conll2003-random.yaml"]
TYPES = ("PER", "LOC", "ORG", "MISC")


def summarise(scores: dict) -> dict:
    """The figures the report keeps from one ``evaluate`` result, in percent."""
    entity, binary = scores["entity"], scores["binary"]
    return {
        "f1": 100 * entity["micro"]["f1"],
        "precision": 100 * entity["micro"]["precision"],
        "recall": 100 * entity["micro"]["recall"],
        "per_type_f1": {t: 100 * entity["per_type"][t]["f1"] for t in TYPES},
        "binary": {k: 100 * binary[k] for k in ("precision", "recall", "f1")},
    }


def run_seed(config_path: str, data_dir: str, seed: int, output: Path) -> dict:
    """Train one seed; its dev and test figures and wall times."""
    overrides = (f"data.dir={data_dir}", f"train.seed={seed}", f"output={output}")
    config = load_config(REPO / config_path, overrides)
    started = time.perf_counter()
    run = train(config, log=lambda line: print(f"  {line}", file=sys.stderr))
    return {
        "seed": seed,
        "best_epoch": run.best_epoch,
        "epochs": len(run.history),
        "train_seconds": run.seconds,
        "wall_seconds": time.perf_counter() - started,
        "dev": summarise(run.scores["dev"]),
        "test": summarise(run.scores["test"]),
    }


def ensemble_scores(model_dirs: list[Path], sentences) -> dict:
    """Scores of the models' averaged P(tag) and P(entity), decoded as each model would."""
    models = [WindowTagger.load(d) for d in model_dirs]
    p_ent_sum, p_tag_sum = 0.0, 0.0
    for model in models:
        windows = encode_windows(
            [s.tokens for s in sentences], model.vocabs, model.config.features.window
        )
        p_ent, p_tag = model.probabilities(model.feeds(windows, np.arange(len(windows))))
        p_ent_sum, p_tag_sum = p_ent_sum + p_ent, p_tag_sum + p_tag
    p_tag_mean = p_tag_sum / len(models)
    method = models[0].config.model.decode
    pred = decode_batch(p_tag_mean, windows.sentence_starts, models[0].labels, method)
    gold = [list(s.tags) for s in sentences]
    return summarise(evaluate_tags(gold, pred, p_entity=p_ent_sum / len(models)))


COLUMNS = [  # (header, keys into one seed's record)
    ("dev F1", ("dev", "f1")),
    ("test F1", ("test", "f1")),
    ("test P", ("test", "precision")),
    ("test R", ("test", "recall")),
    *[(t, ("test", "per_type_f1", t)) for t in TYPES],
    ("binary P", ("test", "binary", "precision")),
    ("binary R", ("test", "binary", "recall")),
    ("binary F1", ("test", "binary", "f1")),
]


def pick(record: dict, keys: tuple[str, ...]) -> float:
    for key in keys:
        record = record[key]
    return record


def mean_std(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} ± {spread:.2f}"


def table(config: dict) -> list[str]:
    """One row per seed, the mean ± standard deviation, and the ensemble if there is one."""
    seeds = config["seeds"]
    header = ["seed", *(name for name, _ in COLUMNS), "epochs (best)", "train s"]
    rows = [
        [str(s["seed"]), *(f"{pick(s, keys):.2f}" for _, keys in COLUMNS)]
        + [f"{s['epochs']} ({s['best_epoch']})", f"{s['train_seconds']:.0f}"]
        for s in seeds
    ]
    rows.append(
        ["**mean ± sd**", *(mean_std([pick(s, keys) for s in seeds]) for _, keys in COLUMNS)]
        + ["", mean_std([s["train_seconds"] for s in seeds])]
    )
    if "ensemble" in config:
        ensemble = config["ensemble"]
        rows.append(
            [f"ensemble of {len(seeds)}", *(f"{pick(ensemble, k):.2f}" for _, k in COLUMNS), "", ""]
        )
    return [f"| {' | '.join(row)} |" for row in [header, ["---"] * len(header), *rows]]


def markdown(results: dict) -> str:
    """The accuracy section of docs/RESULTS.md."""
    lines = [
        "## CoNLL-2003 accuracy",
        "",
        f"Measured {results['date']} on {results['machine']} by `make bench-accuracy`",
        f"(`{results['command']}`). Entity-level micro F1 (seqeval, conlleval-compatible);",
        "binary = token-level entity detection from P(entity) > 0.5 on test. Dev (eng.testa)",
        "chose the epoch; test (eng.testb) was read once per seed.",
        "",
    ]
    for name, config in results["configs"].items():
        lines += [f"### {name}: `{config['path']}`", "", *table(config), ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=str(CONLL2003))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS, metavar="NAME=PATH")
    parser.add_argument("--runs", default="runs/bench", help="where the models go")
    parser.add_argument("--json", default="bench/results/accuracy.json")
    parser.add_argument("--markdown", default="docs/RESULTS.md")
    args = parser.parse_args()
    if not (Path(args.data) / "eng.train").is_file():
        sys.exit(f"accuracy: no CoNLL-2003 in {args.data} (see README, 'CoNLL-2003')")

    results = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "command": "python bench/accuracy.py " + " ".join(sys.argv[1:]),
        "configs": {},
    }
    for spec in args.configs:
        name, _, path = spec.partition("=")
        seeds = []
        for seed in args.seeds:
            print(f"{name} seed {seed}", file=sys.stderr)
            seeds.append(run_seed(path, args.data, seed, Path(args.runs) / f"{name}-seed{seed}"))
            print(
                f"  -> dev {seeds[-1]['dev']['f1']:.2f} test {seeds[-1]['test']['f1']:.2f}",
                file=sys.stderr,
            )
        config = {"path": path, "seeds": seeds}
        if len(args.seeds) > 1:
            dirs = [Path(args.runs) / f"{name}-seed{seed}" for seed in args.seeds]
            data_config = load_config(REPO / path, (f"data.dir={args.data}",))
            config["ensemble"] = {
                split: ensemble_scores(dirs, read_split(data_config, split))
                for split in ("dev", "test")
            }
        results["configs"][name] = config

    write_results(results, args.json, args.markdown, "accuracy", markdown(results))


if __name__ == "__main__":
    main()
