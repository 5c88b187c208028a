"""Memory and time of training's dev evaluation, by windows per pass of the graph.

    python bench/eval_memory.py [--data ../shared/data/conll2003] [--rounds 5]

Prepares configs/conll2003.yaml (GloVe; falls back to the sample data
without CoNLL-2003) and trains one epoch, printing the process's RSS after
each step; then evaluates on dev, as training does after each epoch, with
the graph in passes of GRAPH_CHUNK windows and in passes of a whole batch,
in turns: the peak of Python's allocations during one evaluation
(tracemalloc, once each) and the median seconds of ``--rounds`` untraced
evaluations.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
import tracemalloc

import numpy as np
from report import CONLL2003, conll2003_or_sample

import nerwin.model
from nerwin.checkpoint import Progress
from nerwin.config import load_config
from nerwin.predict import evaluate
from nerwin.train import make_optimizer, prepare, train_epoch

WHOLE = 1 << 30  # windows per pass: a whole batch at once


def rss(step: str) -> None:
    """The process's RSS now and at its peak so far, in MiB."""
    with open("/proc/self/status") as status:
        now = next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{step:<32} RSS {now / 1024:6.1f} MiB, peak {peak / 1024:6.1f} MiB", flush=True)


def evaluate_in_passes(model, dev, chunk: int) -> None:
    """One dev evaluation, as training's, with the graph in passes of ``chunk`` windows."""
    nerwin.model.GRAPH_CHUNK = chunk
    evaluate(model, dev)


def allocated_peak(model, dev, chunk: int) -> float:
    """Peak MB of Python's allocations during ``evaluate_in_passes``."""
    tracemalloc.start()
    evaluate_in_passes(model, dev, chunk)
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    return peak


def seconds(model, dev, chunk: int) -> float:
    """Seconds of ``evaluate_in_passes`` (no tracing: it slows numpy calls)."""
    started = time.perf_counter()
    evaluate_in_passes(model, dev, chunk)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(CONLL2003))
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    config_path, data = conll2003_or_sample("eval_memory", args.data)
    config = load_config(config_path, (f"data.dir={data}",))
    rng = np.random.default_rng(config.train.seed)
    model, corpus = prepare(config, rng)
    rss("data, vectors and model ready")
    optimizer = make_optimizer(config.train, model.params)
    train_epoch(model, optimizer, corpus, rng, Progress(), lambda: None)
    rss("one epoch trained")
    chunks = {f"passes of {nerwin.model.GRAPH_CHUNK} windows": nerwin.model.GRAPH_CHUNK}
    chunks["a whole batch a pass"] = WHOLE
    peaks = {name: allocated_peak(model, corpus.dev, chunk) for name, chunk in chunks.items()}
    times: dict[str, list[float]] = {name: [] for name in chunks}
    for _ in range(args.rounds):
        for name, chunk in chunks.items():
            times[name].append(seconds(model, corpus.dev, chunk))
    for name in chunks:
        print(
            f"dev evaluation, {name:<26} peak {peaks[name]:5.1f} MB allocated, "
            f"median {statistics.median(times[name]):.2f} s"
        )
    rss("after the evaluations")


if __name__ == "__main__":
    main()
