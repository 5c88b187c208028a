"""Where the time goes: cProfile of training and of prediction, and the two Viterbi decoders.

    python bench/hotspots.py [--data ../shared/data/conll2003] [--windows 60000] [--top 15]

Trains one pass over the first ``--windows`` training windows of
configs/conll2003.yaml and tags eng.testb as `nerwin predict` does (512
sentences a batch), printing the functions that take the most time in
each; then times the forward pass through the graph against the frozen
model's per-token tables, and those tables with OpenBLAS's own threads
left on (nerwin/nn/cores.py) or in blocks twice as long, the element-wise
kernels that pass spends its time on, and Viterbi sentence by sentence
against the batched decoder, on the same batches. Falls back to the sample
data without CoNLL-2003.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import functools
import pstats
import statistics
import time
from unittest import mock

import numpy as np
from report import CONLL2003, conll2003_or_sample

from nerwin import inference
from nerwin.checkpoint import Progress
from nerwin.config import load_config
from nerwin.data.features import Windows
from nerwin.decode import decode_batch, viterbi_decode, viterbi_decode_batch
from nerwin.model import WindowTagger
from nerwin.predict import SENTENCES_PER_BATCH, tag_batch
from nerwin.train import make_optimizer, prepare, read_split, train_epoch


def profiled(title: str, work, top: int):
    """``work()`` under cProfile, its ``top`` functions by own time printed; its result."""
    profile = cProfile.Profile()
    started = time.perf_counter()
    result = profile.runcall(work)
    print(f"\n== {title}: {time.perf_counter() - started:.2f} s under the profiler ==")
    pstats.Stats(profile).sort_stats("tottime").print_stats(top)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(CONLL2003))
    parser.add_argument("--windows", type=int, default=60_000)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    config_path, data = conll2003_or_sample("hotspots", args.data)
    config = load_config(config_path, (f"data.dir={data}", "output=/tmp/nerwin-profile"))
    rng = np.random.default_rng(config.train.seed)
    model, corpus = prepare(config, rng)
    count = min(args.windows, len(corpus.windows))
    corpus.windows = Windows(
        {name: ids[:count] for name, ids in corpus.windows.ids.items()}, np.array([0, count])
    )
    corpus.tags = corpus.tags[:count]
    optimizer = make_optimizer(config.train, model.params)
    profiled(
        f"training, {count} windows",
        lambda: train_epoch(model, optimizer, corpus, rng, Progress(), lambda: None),
        args.top,
    )

    sentences = [s.tokens for s in read_split(config, "test") or corpus.dev]
    batches = [
        sentences[i : i + SENTENCES_PER_BATCH]
        for i in range(0, len(sentences), SENTENCES_PER_BATCH)
    ]
    model.freeze()  # as `nerwin predict` loads it
    tagged = profiled(
        f"prediction, {sum(map(len, sentences))} tokens",
        lambda: [t for batch in batches for t in tag_batch(model, batch)],
        args.top,
    )
    compare_forward(model, batches)
    elementwise_costs()
    started = time.perf_counter()
    one_by_one = [viterbi_decode(t.p_tag, model.labels) for t in tagged]
    per_sentence = time.perf_counter() - started
    started = time.perf_counter()
    together = []
    for i in range(0, len(tagged), SENTENCES_PER_BATCH):
        chunk = tagged[i : i + SENTENCES_PER_BATCH]
        bounds = np.r_[0, np.cumsum([len(t.tokens) for t in chunk])]
        together += viterbi_decode_batch(
            np.concatenate([t.p_tag for t in chunk]), bounds, model.labels
        )
    batched = time.perf_counter() - started
    print(
        f"\nViterbi on the same probabilities: sentence by sentence {per_sentence:.3f} s, "
        f"batched {batched:.3f} s, same tags: {one_by_one == together}"
    )


def compare_forward(model, batches, rounds: int = 5) -> None:
    """The frozen model's per-token tables against the graph on the same batches, in turns."""
    encoded = [
        (model.encoder.ids([t for s in batch for t in s]), np.array([len(s) for s in batch]))
        for batch in batches
    ]
    settings = {
        "graph": contextlib.nullcontext,
        "tables": contextlib.nullcontext,
        # The same tables with OpenBLAS's workers free to spin on the cores nerwin's threads use.
        "tables, OpenBLAS threads left on": functools.partial(
            mock.patch.object, inference, "one_blas_thread", contextlib.nullcontext
        ),
        "tables, blocks twice as long": functools.partial(
            mock.patch.object, inference, "BLOCK", inference.BLOCK * 2
        ),
    }
    projections, times = model.projections, {path: [] for path in settings}
    results = {}
    for _ in range(rounds):
        for path, setting in settings.items():
            model.projections = None if path == "graph" else model.freeze().projections
            with setting():
                started = time.perf_counter()
                results[path] = [model.token_probabilities(*batch) for batch in encoded]
                times[path].append(time.perf_counter() - started)
    preloaded = model.freeze().projections.keys
    model.projections = projections
    all_ids = np.concatenate([ids for ids, _ in encoded])
    new = np.setdiff1d(all_ids.astype(np.int64) @ projections.radix, preloaded)
    read = np.r_[np.arange(inference.RESERVED_ROWS), projections.key_rows]
    beyond = int(
        np.count_nonzero(~projections.within_bound[read])
    )  # each sends a batch to the graph
    bounds = [np.r_[0, np.cumsum(lengths)] for _, lengths in encoded]
    same_tags = all(
        decode_batch(g[1], b, model.labels) == decode_batch(t[1], b, model.labels)
        for g, t, b in zip(results["graph"], results["tables"], bounds, strict=True)
    )
    exact = WindowTagger(
        model.config,
        model.vocabs,
        model.labels,
        {n: p.astype(np.float64) for n, p in model.params.items()},
    )
    exact.temperature = model.temperature
    reference = [exact.token_probabilities(*batch) for batch in encoded]  # the graph in float64
    differences = {
        "tables": largest_difference(results["graph"], results["tables"]),
        "graph from float64": largest_difference(results["graph"], reference),
        "tables from float64": largest_difference(results["tables"], reference),
    }
    medians = {path: statistics.median(seconds) for path, seconds in times.items()}
    print(
        f"\nForward pass on the same batches, median of {rounds}: graph {medians['graph']:.3f} s, "
        f"per-token tables (frozen afresh each time) {medians['tables']:.3f} s, the same tables "
        f"with OpenBLAS's threads left on {medians['tables, OpenBLAS threads left on']:.3f} s, "
        f"in blocks of {inference.BLOCK * 2} windows instead of {inference.BLOCK} "
        f"{medians['tables, blocks twice as long']:.3f} s; "
        f"largest probability difference {differences['tables']:.1e} (from the graph in float64: "
        f"the graph's {differences['graph from float64']:.1e}, "
        f"the tables' {differences['tables from float64']:.1e}), "
        f"same tags: {same_tags}; "
        f"{len(new)} distinct tokens of {len(all_ids)} to project beyond the "
        f"{len(preloaded)} preloaded from training, {beyond} rows beyond the tanh product's bound"
    )


def largest_difference(results, others) -> float:
    """The largest difference between two lists of batches' (p_ent, p_tag)."""
    return max(
        float(np.abs(a - b).max())
        for batch, other in zip(results, others, strict=True)
        for a, b in zip(batch, other, strict=True)
    )


def elementwise_costs(size: int = 65536, repeats: int = 51) -> None:
    """ns per float32 element, one core, of what the frozen forward pass spends its time on."""
    z = (np.random.default_rng(0).standard_normal(size) * 3).astype(np.float32)
    out = np.empty_like(z)

    def tanh_as_the_tables_take_it():  # from e^(-2z), the product of a window's rows
        np.copyto(out, z)
        inference.TanhProductForm.finish(out)

    kernels = {
        "add": lambda: np.add(z, z, out=out),
        "multiply": lambda: np.multiply(z, z, out=out),
        "exp": lambda: np.exp(z, out=out),
        "tanh": lambda: np.tanh(z, out=out),
        "the tables' tanh (copy, + 1, reciprocal)": tanh_as_the_tables_take_it,
    }
    costs = []
    for name, kernel in kernels.items():
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            kernel()
            times.append(time.perf_counter() - started)
        costs.append(f"{name} {1e9 * min(times) / size:.2f}")
    print(f"\nns per float32 element, one core (best of {repeats}): " + ", ".join(costs))


if __name__ == "__main__":
    main()
