"""Speed and memory of nerwin against a PyTorch reference of the same network, side by side.

    python bench/speed.py                  # what `make bench` runs: 3 repeats, medians
    python bench/speed.py --repeats 1 --epochs 3

Each repeat runs each side in a child process of its own (so its peak RSS
is its own) on CoNLL-2003 from ../shared/data/conll2003 (the sample data,
with a warning, when that is absent), with configs/conll2003.yaml:

- training: tokens/s over full epochs at the config's batch size (data
  loading excluded; the dev evaluation after each epoch timed apart);
- the dev F1 after each epoch, hence the training time to reach a fixed dev
  F1: the lower of the two sides' best dev F1, minus 0.5;
- prediction on eng.testb with the model in memory: the network alone
  (windows already built), and from raw tokens to tags (windows, network,
  Viterbi), 512 sentences a batch as `nerwin predict` does;
- peak RSS (getrusage) and the threads each side used.

The parent also measures float32 GEMM GFLOP/s at the hidden layer's shapes,
the hardware limit for context. It prints one table and writes
bench/results/speed.json and the speed section of docs/RESULTS.md.
PyTorch runs only when it is installed (`pip install -e '.[bench]'`).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from report import machine, write_results

REPO = Path(__file__).resolve().parents[1]
SENTENCES_PER_BATCH = 512  # as nerwin.predict tags


# -- the child: one side, one repeat --------------------------------------------------


def _threads() -> dict:
    from threadpoolctl import threadpool_info

    return {pool["internal_api"]: pool["num_threads"] for pool in threadpool_info()}


def run_side(side: str, config_path: str, data_dir: str, epochs: int, overrides: list[str]) -> dict:
    """Train ``epochs`` epochs and time prediction; the figures as a dict."""
    from nerwin.checkpoint import Progress
    from nerwin.config import load_config
    from nerwin.data.features import encode_windows
    from nerwin.predict import evaluate, tag_batch
    from nerwin.train import make_optimizer, prepare, read_split, train_epoch

    with tempfile.TemporaryDirectory() as output:
        config = load_config(
            REPO / config_path,
            (f"data.dir={data_dir}", f"output={output}", f"train.epochs={epochs}", *overrides),
        )
    rng = np.random.default_rng(config.train.seed)
    model, data = prepare(config, rng)
    test = read_split(config, "test") or data.dev
    tokens = [s.tokens for s in test]
    if side == "torch":
        import torch
        from torch_reference import TorchTrainer

        torch.set_num_threads(max(_threads().values()))  # as many as numpy's BLAS uses
        trainer = TorchTrainer(model, data, config.train.seed)
        step = trainer.train_epoch
        probabilities = trainer.probabilities

        def dev_f1() -> float:
            from nerwin.metrics import entity_scores

            pred = []
            for start in range(0, len(data.dev), SENTENCES_PER_BATCH):
                chunk = [s.tokens for s in data.dev[start : start + SENTENCES_PER_BATCH]]
                pred += trainer.tag(
                    chunk, model.vocabs, config.features.window, config.model.decode
                )
            return entity_scores([list(s.tags) for s in data.dev], pred)["micro"]["f1"]

        def tag(chunk):
            return trainer.tag(chunk, model.vocabs, config.features.window, config.model.decode)

    else:
        optimizer = make_optimizer(config.train, model.params)

        def step() -> float:
            progress = Progress()
            return train_epoch(model, optimizer, data, rng, progress, lambda: None)

        def probabilities(ids):
            return model.probabilities({f"{name}_ids": a for name, a in ids.items()})

        def dev_f1() -> float:
            return evaluate(model, data.dev)["entity"]["micro"]["f1"]

        def tag(chunk):
            return tag_batch(model, chunk)

    curve = []
    train_seconds = 0.0
    for _ in range(epochs):
        started = time.perf_counter()
        step()
        epoch_seconds = time.perf_counter() - started
        train_seconds += epoch_seconds
        started = time.perf_counter()
        f1 = dev_f1()
        curve.append(
            {
                "train_seconds": train_seconds,
                "epoch_seconds": epoch_seconds,
                "dev_seconds": time.perf_counter() - started,
                "dev_f1": 100 * f1,
            }
        )

    chunks = [
        tokens[i : i + SENTENCES_PER_BATCH] for i in range(0, len(tokens), SENTENCES_PER_BATCH)
    ]
    built = [encode_windows(chunk, model.vocabs, config.features.window) for chunk in chunks]
    names = list(model.vocabs)
    started = time.perf_counter()
    for windows in built:
        probabilities({name: windows.ids[name] for name in names})
    network_seconds = time.perf_counter() - started
    started = time.perf_counter()
    for chunk in chunks:
        tag(chunk)
    tags_seconds = time.perf_counter() - started
    test_tokens = sum(len(t) for t in tokens)
    return {
        "side": side,
        "train_tokens": len(data.windows),
        "batch_size": config.train.batch_size,
        "curve": curve,
        "train_tokens_per_s": len(data.windows)
        / statistics.median(c["epoch_seconds"] for c in curve),
        "dev_eval_seconds": statistics.median(c["dev_seconds"] for c in curve),
        "predict_network_tokens_per_s": test_tokens / network_seconds,
        "predict_tokens_per_s": test_tokens / tags_seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": _threads() | ({"torch": torch.get_num_threads()} if side == "torch" else {}),
    }


# -- the parent: repeats, GEMM, table ------------------------------------------------


def gemm_gflops(batch: int, width: int, hidden: int, repeats: int = 50) -> float:
    """Median float32 GFLOP/s of the hidden layer's three products at these shapes."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, width), dtype=np.float32)
    W = rng.standard_normal((hidden, width), dtype=np.float32)
    delta = rng.standard_normal((batch, hidden), dtype=np.float32)
    products = [lambda: x @ W.T, lambda: delta.T @ x, lambda: delta @ W]
    rates = []
    for product in products:
        product()
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            product()
            times.append(time.perf_counter() - started)
        rates.append(2 * batch * width * hidden / statistics.median(times) / 1e9)
    return statistics.mean(rates)


OWN = "nerwin, own settings"  # nerwin free to choose batch size and rate, for time to F1


def run_child(side: str, args) -> dict:
    child = "torch" if side == "torch" else "nerwin"
    command = [sys.executable, __file__, "--child", child, "--config", args.config,
               "--data", args.data, "--epochs", str(args.epochs)]  # fmt: skip
    for override in args.own if side == OWN else []:
        command += ["--set", override]
    result = subprocess.run(command, check=True, capture_output=True, text=True, cwd=REPO)
    return json.loads(result.stdout.strip().splitlines()[-1])


def time_to_f1(curve: list[dict], target: float) -> float | None:
    return next((c["train_seconds"] for c in curve if c["dev_f1"] >= target), None)


def summarise(runs: list[dict], target: float) -> dict:
    """Medians over the repeats of one side."""

    def median(key):
        return statistics.median(r[key] for r in runs)

    reached = [time_to_f1(r["curve"], target) for r in runs]
    return {
        "train_tokens_per_s": median("train_tokens_per_s"),
        "dev_eval_seconds": median("dev_eval_seconds"),
        "predict_network_tokens_per_s": median("predict_network_tokens_per_s"),
        "predict_tokens_per_s": median("predict_tokens_per_s"),
        "seconds_to_target_f1": statistics.median(reached) if None not in reached else None,
        "best_dev_f1": statistics.median(max(c["dev_f1"] for c in r["curve"]) for r in runs),
        "peak_rss_mb": median("peak_rss_mb"),
        "threads": runs[0]["threads"],
    }


ROWS = [
    ("training, tokens/s", "train_tokens_per_s", "{:,.0f}"),
    ("dev evaluation, s", "dev_eval_seconds", "{:.2f}"),
    ("prediction, network alone, tokens/s", "predict_network_tokens_per_s", "{:,.0f}"),
    ("prediction, tokens to tags, tokens/s", "predict_tokens_per_s", "{:,.0f}"),
    ("best dev F1 in the epochs run", "best_dev_f1", "{:.2f}"),
    ("training s to the target dev F1", "seconds_to_target_f1", "{:.1f}"),
    ("peak RSS, MB", "peak_rss_mb", "{:.0f}"),
]


def table(results: dict) -> str:
    """One row per figure, one column per side, and nerwin / torch.

    The ratio compares nerwin at the config's batch size with torch, except
    for the time to the target F1, where nerwin runs with its own settings.
    """
    sides = results["sides"]
    header = ["", *sides, *(["nerwin / torch"] if "torch" in sides else [])]
    lines = [f"| {' | '.join(header)} |", "|---" * len(header) + "|"]
    for label, key, fmt in ROWS:
        values = [sides[s][key] for s in sides]
        cells = ["—" if v is None else fmt.format(v) for v in values]
        if "torch" in sides:
            mine = sides[OWN if key == "seconds_to_target_f1" else "nerwin"][key]
            theirs = sides["torch"][key]
            ratio = None if None in (mine, theirs) else mine / theirs
            cells.append(
                "—" if ratio is None else f"{ratio:.2f}" + ("×" if "tokens/s" in label else "")
            )
        lines.append(f"| {label} | {' | '.join(cells)} |")
    return "\n".join(lines)


def markdown(results: dict) -> str:
    gemm = results["gemm"]
    return "\n".join(
        [
            "## Speed and memory",
            "",
            f"Measured {results['date']} on {results['machine']} by `make bench`",
            f"(`{results['command']}`): medians of {results['repeats']} runs per side, each in its"
            f" own process, {results['epochs']} epochs each, on {results['data']}.",
            f"Target dev F1 for the time comparison: {results['target_f1']:.2f}, the lower best"
            f" dev F1 of torch and of nerwin with its own settings ({', '.join(results['own'])}),"
            " minus 0.5.",
            "",
            table(results),
            "",
            f"float32 GEMM at the hidden layer's shapes ({gemm['shape']}): "
            f"{gemm['gflops']:.1f} GFLOP/s; nerwin's training reaches "
            f"{100 * gemm['nerwin_fraction']:.0f}% of it.",
            f"Threads: {json.dumps({s: v['threads'] for s, v in results['sides'].items()})}.",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "conll2003"))
    parser.add_argument("--config", default="configs/conll2003.yaml")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--own", action="append", default=None, metavar="KEY=VALUE",
                        help="nerwin's own settings for the time to the target F1"
                        " (default: train.batch_size=512, train.lr=0.003)")  # fmt: skip
    parser.add_argument("--child", choices=["nerwin", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--json", default="bench/results/speed.json")
    parser.add_argument("--markdown", default="docs/RESULTS.md")
    parser.add_argument(
        "--set", dest="child_set", action="append", default=[], help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    args.own = args.own or ["train.batch_size=512", "train.lr=0.003"]
    if args.child:
        print(json.dumps(run_side(args.child, args.config, args.data, args.epochs, args.child_set)))
        return
    if not (Path(args.data) / "eng.train").is_file():
        print(
            f"speed: no CoNLL-2003 in {args.data}; timing the sample data instead", file=sys.stderr
        )
        args.data, args.config = str(REPO / "data" / "sample"), "configs/sample.yaml"
    sides = ["nerwin", OWN] + (["torch"] if importlib.util.find_spec("torch") else [])
    runs: dict[str, list[dict]] = {side: [] for side in sides}
    for repeat in range(args.repeats):
        for side in sides:
            print(f"repeat {repeat + 1}/{args.repeats}: {side}", file=sys.stderr)
            runs[side].append(run_child(side, args))
    best = {side: max(max(c["dev_f1"] for c in r["curve"]) for r in runs[side]) for side in sides}
    target = min(best[side] for side in sides if side != "nerwin") - 0.5
    summaries = {side: summarise(runs[side], target) for side in sides}
    first = runs["nerwin"][0]
    from nerwin.config import load_config
    from nerwin.model import feature_dims

    config = load_config(REPO / args.config)
    width = (2 * config.features.window + 1) * sum(feature_dims(config).values())
    gflops = gemm_gflops(first["batch_size"], width, config.model.hidden)
    flops_per_token = 3 * 2 * width * config.model.hidden  # forward, grad_W, dx
    results = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "command": "python bench/speed.py " + " ".join(sys.argv[1:]),
        "data": args.data,
        "config": args.config,
        "repeats": args.repeats,
        "own": args.own,
        "epochs": args.epochs,
        "target_f1": target,
        "sides": summaries,
        "runs": runs,
        "gemm": {
            "shape": f"batch {first['batch_size']}, {width} -> {config.model.hidden}",
            "gflops": gflops,
            "nerwin_fraction": flops_per_token
            * summaries["nerwin"]["train_tokens_per_s"]
            / 1e9
            / gflops,
        },
    }
    write_results(results, args.json, args.markdown, "speed", markdown(results))


if __name__ == "__main__":
    main()
