"""Speed and memory of nerwin against a PyTorch reference of the same network, side by side.

    python bench/speed.py                  # what `make bench` runs: 3 repeats, medians
    python bench/speed.py --repeats 1 --epochs 3

Each repeat runs each side's training in a child process of its own (so
its peak RSS is its own) on CoNLL-2003 from ../shared/data/conll2003 (the
sample data, with a warning, when that is absent), with
configs/conll2003.yaml:

- training: tokens/s over full epochs at the config's batch size (data
  loading excluded; the dev evaluation after each epoch timed apart);
- the dev F1 after each epoch, hence the training time to reach a fixed dev
  F1: the lower of the two sides' best dev F1, minus 0.5;
- peak RSS (getrusage) at the end of training, and the threads each side used.

Then a prediction child loads the model nerwin just trained and builds the
PyTorch network from the same weights, and times both on eng.testb in
turns, 5 rounds, medians, so a noisy neighbour slows both alike:

- the network alone, each side's input already built from the tokens
  (windows of ids for torch's nn.Embedding, token ids for nerwin's per-token
  tables);
- raw tokens to tags (features, network, Viterbi), 512 sentences a batch as
  `nerwin predict` does, both sides with nerwin's token encoder and decoder.

nerwin is frozen afresh before each pass, as a model just loaded: its tables
hold the frequent training tokens and meet the rest of eng.testb for the
first time.

Each pass follows a pause of IDLE seconds, so that the other side's
threads stop spinning, and then WARM seconds of both cores busy in
neither side's code (``warm_cores``), so that the pass starts on busy
cores, as in a running `nerwin predict`. Every round also times each side straight
after the pause, and the table shows those medians as well.

The parent also measures float32 GEMM GFLOP/s at the hidden layer's shapes,
the hardware limit for context. It prints one table and writes
bench/results/speed.json and the speed section of docs/RESULTS.md.
PyTorch runs only when it is installed (`pip install -e '.[bench]'`).
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
from report import CONLL2003, REPO, conll2003_or_sample, machine, write_results

SENTENCES_PER_BATCH = 512  # as nerwin.predict tags
# Each prediction figure: what its passes call, and whether they start on warm cores (else
# straight after IDLE, as before warm_cores).
PREDICTION = {
    "predict_network_warm_tokens_per_s": ("network", True),
    "predict_warm_tokens_per_s": ("tags", True),
    "predict_network_tokens_per_s": ("network", False),
    "predict_tokens_per_s": ("tags", False),
}
IDLE = 0.5  # s before each timed prediction pass: the other side's idle threads stop spinning
WARM = 0.2  # s of busy cores after the pause, before a pass timed on warm cores


# -- the child: one side, one repeat --------------------------------------------------


def _threads() -> dict:
    from threadpoolctl import threadpool_info

    return {pool["internal_api"]: pool["num_threads"] for pool in threadpool_info()}


def blas_threads() -> int:
    """The threads numpy's BLAS uses, read before torch loads its own pools: torch gets as many."""
    return max(_threads().values())


def run_side(
    side: str,
    config_path: str,
    data_dir: str,
    epochs: int,
    overrides: list[str],
    save: str | None = None,
) -> dict:
    """Train ``epochs`` epochs, timing each and the dev F1 after it; the figures as a dict.

    nerwin's model is saved to ``save`` when given, for the prediction child.
    """
    from nerwin.checkpoint import Progress
    from nerwin.config import load_config
    from nerwin.predict import evaluate
    from nerwin.train import make_optimizer, prepare, train_epoch

    with tempfile.TemporaryDirectory() as output:
        config = load_config(
            REPO / config_path,
            (f"data.dir={data_dir}", f"output={output}", f"train.epochs={epochs}", *overrides),
        )
    rng = np.random.default_rng(config.train.seed)
    model, data = prepare(config, rng)
    if side == "torch":
        threads = blas_threads()
        import torch
        from torch_reference import TorchTrainer

        torch.set_num_threads(threads)
        trainer = TorchTrainer(model, data, config.train.seed)
        step = trainer.train_epoch

        def dev_f1() -> float:
            from nerwin.metrics import entity_scores

            pred = []
            for start in range(0, len(data.dev), SENTENCES_PER_BATCH):
                chunk = [s.tokens for s in data.dev[start : start + SENTENCES_PER_BATCH]]
                pred += trainer.tag(
                    chunk, model.encoder, config.features.window, config.model.decode
                )
            return entity_scores([list(s.tags) for s in data.dev], pred)["micro"]["f1"]

    else:
        optimizer = make_optimizer(config.train, model.params)

        def step() -> float:
            return train_epoch(model, optimizer, data, rng, Progress(), lambda: None)

        def dev_f1() -> float:
            return evaluate(model, data.dev)["entity"]["micro"]["f1"]

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
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB to MiB
    if save and side != "torch":
        model.save(save)
    return {
        "side": side,
        "train_tokens": len(data.windows),
        "batch_size": config.train.batch_size,
        "curve": curve,
        "train_tokens_per_s": len(data.windows)
        / statistics.median(c["epoch_seconds"] for c in curve),
        "dev_eval_seconds": statistics.median(c["dev_seconds"] for c in curve),
        "peak_rss_mb": peak_rss_mb,
        "threads": _threads() | ({"torch": torch.get_num_threads()} if side == "torch" else {}),
    }


def warm_cores(threads: int, seconds: float = WARM) -> None:
    """Keep ``threads`` cores busy for ``seconds`` with numpy's exp, code of neither side.

    On the 2-core virtual machine of docs/RESULTS.md, nerwin's passes
    straight after a pause ran slower than on busy cores, and its second
    thread, woken for each phase of a batch, was seen starting on the core
    its first thread was using; PyTorch's passes lost much less. The table's
    rows "straight after the pause" show both.
    """
    busy = np.ones(1 << 16, dtype=np.float32)
    until = time.perf_counter() + seconds

    def spin() -> None:
        while time.perf_counter() < until:
            np.exp(busy)

    others = [threading.Thread(target=spin) for _ in range(threads - 1)]
    for other in others:
        other.start()
    spin()
    for other in others:
        other.join()


def prediction_batches(config_path: str, data_dir: str) -> list[list[list[str]]]:
    """eng.testb's token lists (eng.testa's where the config has no test set; none without
    either), SENTENCES_PER_BATCH sentences a batch."""
    from nerwin.config import load_config
    from nerwin.train import read_split

    config = load_config(REPO / config_path, (f"data.dir={data_dir}",))
    sentences = [s.tokens for s in read_split(config, "test") or read_split(config, "dev") or []]
    return [
        sentences[i : i + SENTENCES_PER_BATCH]
        for i in range(0, len(sentences), SENTENCES_PER_BATCH)
    ]


def nerwin_network(model, batch: list[list[str]]):
    """The call that runs ``model``'s network alone on ``batch``: its input, token ids and
    sentence lengths (what the tables read), built now, outside any timing."""
    # encoder.ids, not sentence_ids: bench/against.py runs this with older commits' nerwin
    ids = model.encoder.ids([token for tokens in batch for token in tokens])
    lengths = np.array([len(tokens) for tokens in batch])
    return lambda: model.token_probabilities(ids, lengths)


def tokens_per_s(fresh, calls, tokens: int, threads: int, warm: bool) -> float:
    """tokens/s of making every call, from a fresh state (``fresh()``) after a pause of
    IDLE seconds, then ``threads`` warm cores (``warm_cores``) or not."""
    fresh()
    time.sleep(IDLE)
    if warm:
        warm_cores(threads)
    started = time.perf_counter()
    for call in calls:
        call()
    return tokens / (time.perf_counter() - started)


def run_prediction(model_dir: str, config_path: str, data_dir: str, rounds: int) -> dict:
    """Prediction tokens/s of nerwin and of torch on the same weights, in turns; medians."""
    from nerwin.model import WindowTagger
    from nerwin.predict import tag_batch

    model = WindowTagger.load(model_dir)
    chunks = prediction_batches(config_path, data_dir)
    k, decode = model.config.features.window, model.config.model.decode
    threads = blas_threads()
    sides = {
        "nerwin": (
            model.freeze,
            functools.partial(nerwin_network, model),
            lambda chunk: tag_batch(model, chunk),
        )
    }
    if importlib.util.find_spec("torch"):
        import torch
        from torch_reference import TorchTagger, TorchWindowTagger

        torch.set_num_threads(threads)
        reference = TorchTagger(TorchWindowTagger(model), model.labels)

        def torch_network(chunk):  # windows of ids, what nn.Embedding reads
            windows = model.encoder.windows(chunk, k)
            ids = {name: windows.ids[name] for name in reference.model.names}
            return lambda: reference.probabilities(ids)

        def torch_tags(chunk):
            return reference.tag(chunk, model.encoder, k, decode)

        sides["torch"] = (lambda: None, torch_network, torch_tags)
    test_tokens = sum(len(tokens) for chunk in chunks for tokens in chunk)
    calls = {
        side: {
            "network": [network(chunk) for chunk in chunks],  # inputs built outside the timing
            "tags": [functools.partial(tags, chunk) for chunk in chunks],
        }
        for side, (_, network, tags) in sides.items()
    }
    rates = {side: {figure: [] for figure in PREDICTION} for side in sides}
    for round_ in range(rounds):
        for side in list(sides) if round_ % 2 == 0 else list(reversed(sides)):
            fresh = sides[side][0]
            for figure, (kind, warm) in PREDICTION.items():
                rate = tokens_per_s(fresh, calls[side][kind], test_tokens, threads, warm)
                rates[side][figure].append(rate)
    return {
        side: {figure: statistics.median(r[figure]) for figure in PREDICTION} | {"rounds": r}
        for side, r in rates.items()
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


def run_child(side: str, args, save: str | None = None) -> dict:
    child = "torch" if side == "torch" else "nerwin"
    command = [sys.executable, __file__, "--child", child, "--config", args.config,
               "--data", args.data, "--epochs", str(args.epochs)]  # fmt: skip
    for override in args.own if side == OWN else []:
        command += ["--set", override]
    return _last_json(command + (["--save", save] if save else []))


def run_prediction_child(model_dir: str, args) -> dict:
    command = [sys.executable, __file__, "--child", "predict", "--model", model_dir,
               "--config", args.config, "--data", args.data]  # fmt: skip
    return _last_json(command + ["--rounds", str(args.rounds)])


def _last_json(command: list[str]) -> dict:
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
        "seconds_to_target_f1": statistics.median(reached) if None not in reached else None,
        "best_dev_f1": statistics.median(max(c["dev_f1"] for c in r["curve"]) for r in runs),
        "peak_rss_mb": median("peak_rss_mb"),
        "threads": runs[0]["threads"],
    }


def summarise_prediction(runs: list[dict], side: str) -> dict:
    """Medians over the repeats of each prediction child's medians; None if a side is absent."""
    if side not in runs[0]:
        return dict.fromkeys(PREDICTION)
    return {key: statistics.median(run[side][key] for run in runs) for key in PREDICTION}


ROWS = [
    ("training, tokens/s", "train_tokens_per_s", "{:,.0f}"),
    ("dev evaluation, s", "dev_eval_seconds", "{:.2f}"),
    (
        "prediction on warm cores, network alone, tokens/s",
        "predict_network_warm_tokens_per_s",
        "{:,.0f}",
    ),
    ("prediction on warm cores, tokens to tags, tokens/s", "predict_warm_tokens_per_s", "{:,.0f}"),
    (
        "prediction straight after the pause, network alone, tokens/s",
        "predict_network_tokens_per_s",
        "{:,.0f}",
    ),
    (
        "prediction straight after the pause, tokens to tags, tokens/s",
        "predict_tokens_per_s",
        "{:,.0f}",
    ),
    ("best dev F1 in the epochs run", "best_dev_f1", "{:.2f}"),
    ("training s to the target dev F1", "seconds_to_target_f1", "{:.1f}"),
    ("peak RSS while training, MiB", "peak_rss_mb", "{:.0f}"),
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
            f" own process, {results['epochs']} epochs each, on {results['data']}. Prediction:"
            f" after each repeat, nerwin's model and a PyTorch network with its weights timed"
            f" in turns in one process, the median of {results['rounds']} rounds, each pass"
            f" after a {IDLE} s pause and {WARM} s of busy cores (`warm_cores`), and again"
            " straight after the pause; the column of nerwin's own settings would run the same"
            " prediction code.",
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
    parser.add_argument("--data", default=str(CONLL2003))
    parser.add_argument("--config", default="configs/conll2003.yaml")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--own", action="append", default=None, metavar="KEY=VALUE",
                        help="nerwin's own settings for the time to the target F1"
                        " (default: train.batch_size=512, train.lr=0.004)")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=5, help="prediction rounds per repeat")
    parser.add_argument("--child", choices=["nerwin", "torch", "predict"], help=argparse.SUPPRESS)
    parser.add_argument("--save", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--json", default="bench/results/speed.json")
    parser.add_argument("--markdown", default="docs/RESULTS.md")
    parser.add_argument(
        "--set", dest="child_set", action="append", default=[], help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    args.own = args.own or ["train.batch_size=512", "train.lr=0.004"]
    if args.child == "predict":
        print(json.dumps(run_prediction(args.model, args.config, args.data, args.rounds)))
        return
    if args.child:
        figures = run_side(
            args.child, args.config, args.data, args.epochs, args.child_set, args.save
        )
        print(json.dumps(figures))
        return
    config_path, args.data = conll2003_or_sample("speed", args.data, args.config)
    args.config = str(config_path.relative_to(REPO))  # as speed.json records it
    sides = ["nerwin", OWN] + (["torch"] if importlib.util.find_spec("torch") else [])
    runs: dict[str, list[dict]] = {side: [] for side in sides}
    predictions: list[dict] = []
    with tempfile.TemporaryDirectory() as models:
        for repeat in range(args.repeats):
            for side in sides:
                print(f"repeat {repeat + 1}/{args.repeats}: {side}", file=sys.stderr)
                save = f"{models}/{repeat}" if side == "nerwin" else None
                runs[side].append(run_child(side, args, save))
            print(f"repeat {repeat + 1}/{args.repeats}: prediction", file=sys.stderr)
            predictions.append(run_prediction_child(f"{models}/{repeat}", args))
    best = {side: max(max(c["dev_f1"] for c in r["curve"]) for r in runs[side]) for side in sides}
    target = min(best[side] for side in sides if side != "nerwin") - 0.5
    summaries = {
        side: summarise(runs[side], target) | summarise_prediction(predictions, side)
        for side in sides
    }
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
        "rounds": args.rounds,
        "sides": summaries,
        "runs": runs,
        "predictions": predictions,
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
