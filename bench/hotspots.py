"""Where the time goes: cProfile of training and of prediction, and the two Viterbi decoders.

    python bench/hotspots.py [--data ../shared/data/conll2003] [--windows 60000] [--top 15]

Trains one pass over the first ``--windows`` training windows of
configs/conll2003.yaml and tags eng.testb as `nerwin predict` does (512
sentences a batch), printing the functions that take the most time in
each. Then it times the forward pass through the graph against the frozen
model's per-token tables; those tables with the tanh rows summed (as
before the product), with OpenBLAS's own threads left on
(nerwin/nn/cores.py), in blocks twice as long, or with twice the rows and
twice the frequent training tokens preloaded into them (the default
already preloads 20,480, as Chen & Manning preloaded their top 10k
words); each tables setting a second time with the tables it has then;
the tables' phases; the element-wise kernels that pass spends its time
on; and Viterbi sentence by sentence against the batched decoder, on the
same batches, medians of 5. Falls back to the sample data without
CoNLL-2003.
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
from nerwin.train import frequent_tokens, make_optimizer, prepare, read_split, train_epoch


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
    training = frequent_tokens(read_split(config, "train"), LARGER * inference.PRELOADED)
    compare_forward(model, batches, {**SETTINGS, **preloading(model, training)})
    elementwise_costs()
    compare_viterbi(tagged, model.labels)


def compare_viterbi(tagged: list, labels: list[str], rounds: int = 5) -> None:
    """Viterbi sentence by sentence against the batched decoder on the same probabilities,
    each the median of ``rounds``."""
    chunks = [
        tagged[i : i + SENTENCES_PER_BATCH] for i in range(0, len(tagged), SENTENCES_PER_BATCH)
    ]
    batches = [
        (
            np.concatenate([t.p_tag for t in chunk]),
            np.r_[0, np.cumsum([len(t.tokens) for t in chunk])],
        )
        for chunk in chunks
    ]

    def one_by_one():
        return [viterbi_decode(t.p_tag, labels) for t in tagged]

    def together():
        return [
            tags
            for p_tag, bounds in batches
            for tags in viterbi_decode_batch(p_tag, bounds, labels)
        ]

    seconds, tags = {}, {}
    for decode in (one_by_one, together):
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            tags[decode] = decode()
            times.append(time.perf_counter() - started)
        seconds[decode] = statistics.median(times)
    print(
        f"\nViterbi on the same probabilities, median of {rounds}: sentence by sentence "
        f"{seconds[one_by_one]:.3f} s, batched {seconds[together]:.3f} s, "
        f"same tags: {tags[one_by_one] == tags[together]}"
    )


def tanh_in_place(z: np.ndarray) -> np.ndarray:
    return np.tanh(z, out=z)


def patched(name: str, value):
    """A setting: ``nerwin.inference.<name>`` replaced by ``value`` while it lasts."""
    return functools.partial(mock.patch.object, inference, name, value)


SETTINGS = {
    "graph": contextlib.nullcontext,
    "tables": contextlib.nullcontext,
    # The tanh model's rows as a relu model's are: summed, then np.tanh of the sum.
    "tables, rows summed, then np.tanh": patched(
        "form_of", lambda *_: inference.SumForm(tanh_in_place)
    ),
    # OpenBLAS's workers free to spin on the cores nerwin's threads use.
    "tables, OpenBLAS threads left on": patched("one_blas_thread", contextlib.nullcontext),
    "tables, blocks twice as long": patched("BLOCK", inference.BLOCK * 2),
}
LARGER = 2  # times the rows, and the training tokens preloaded, of the "preloading" setting


def preloading(model: WindowTagger, tokens: list[str]) -> dict:
    """A setting: ``freeze`` keeps LARGER times the rows, five sixths of them ``tokens``."""
    freeze = WindowTagger.freeze

    @contextlib.contextmanager
    def setting():
        with (
            mock.patch.object(model, "frequent_tokens", tokens),
            mock.patch.object(
                WindowTagger, "freeze", lambda self: freeze(self, LARGER * inference.CAPACITY)
            ),
        ):
            yield

    rows = LARGER * inference.CAPACITY
    return {f"tables of {rows:,} rows, {len(tokens):,} training tokens preloaded": setting}


# Projections methods timed inside the "tables" path: projecting new tokens; finding each
# token's row, projecting new ones; all of the tables' scores. Their differences are phases.
PHASES = ("_project_into", "token_rows", "scores")


def timed(spent: dict, name: str, method):
    """``method``, adding its seconds to ``spent[name]``."""

    def run(*args):
        started = time.perf_counter()
        try:
            return method(*args)
        finally:
            spent[name] += time.perf_counter() - started

    return run


def compare_forward(model, batches, settings: dict, rounds: int = 5) -> None:
    """The frozen model's per-token tables against the graph on the same batches, in turns.

    Each tables setting is frozen afresh and timed twice: once as it comes
    (tokens not seen yet are projected) and once more with the tables it
    has then, as in a long text.
    """
    encoded = [model.encoder.sentence_ids(batch) for batch in batches]
    tokens = sum(len(ids) for ids, _ in encoded)
    projections = model.projections
    times = {(path, again): [] for path in settings for again in (False, True)}
    phases = {name: [] for name in PHASES}
    results = {}
    for _ in range(rounds):
        for path, setting in settings.items():
            with setting():
                model.projections = None if path == "graph" else model.freeze().projections
                spent = dict.fromkeys(PHASES, 0.0)
                if path == "tables":
                    for name in PHASES:
                        method = getattr(model.projections, name)
                        setattr(model.projections, name, timed(spent, name, method))
                for again in (False, True) if model.projections else (False,):
                    started = time.perf_counter()
                    results[path] = [model.token_probabilities(*batch) for batch in encoded]
                    times[path, again].append(time.perf_counter() - started)
                    if path == "tables" and not again:
                        for name in PHASES:
                            phases[name].append(spent[name])
    frozen = model.freeze().projections
    preloaded = frozen.row_keys[frozen.held]
    model.projections = projections
    all_ids = np.concatenate([ids for ids, _ in encoded])
    new = np.setdiff1d(projections.keys(all_ids), preloaded)
    read = np.r_[inference.PADDING, projections.held]
    beyond = int(np.count_nonzero(~projections.within_bound[read]))  # each: a batch to the graph
    bounds = [np.r_[0, np.cumsum(lengths)] for _, lengths in encoded]
    same_tags = all(
        decode_batch(g[1], b, model.labels) == decode_batch(t[1], b, model.labels)
        for g, t, b in zip(results["graph"], results["tables"], bounds, strict=True)
    )
    float64 = {n: p.astype(np.float64) for n, p in model.params.items()}
    exact = WindowTagger(model.config, model.vocabs, model.labels, float64)
    exact.temperature = model.temperature
    reference = [exact.token_probabilities(*batch) for batch in encoded]  # the graph in float64

    print(
        f"\nForward pass on the same {len(batches)} batches, {tokens} tokens, median of {rounds}:"
    )
    width = max(map(len, settings))
    for path in settings:
        line = f"  {path:<{width}} {statistics.median(times[path, False]):.3f} s"
        if times[path, True]:
            line += (
                f", again with the tables it has then {statistics.median(times[path, True]):.3f} s"
            )
        print(line)
    spent = {name: statistics.median(seconds) * 1e6 / tokens for name, seconds in phases.items()}
    finding = spent["token_rows"] - spent["_project_into"]
    blocks = spent["scores"] - spent["token_rows"]
    rest = 1e6 * statistics.median(times["tables", False]) / tokens - spent["scores"]
    print(
        f"  the tables' first pass, µs a token: projecting new tokens "
        f"{spent['_project_into']:.2f}, finding the other rows {finding:.2f}, "
        f"the blocks of windows {blocks:.2f}, "
        f"the rest (softmax, sigmoid) {rest:.2f}"
    )
    print(
        f"  largest probability difference, graph against tables "
        f"{largest_difference(results['graph'], results['tables']):.1e}; from the graph in "
        f"float64: the graph's {largest_difference(results['graph'], reference):.1e}, the "
        f"tables' {largest_difference(results['tables'], reference):.1e}; same tags: {same_tags}"
    )
    print(
        f"  {len(new)} distinct tokens of {len(all_ids)} to project beyond the {len(preloaded)} "
        f"preloaded from training; {beyond} rows beyond the tanh product's bound"
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
    product, last = np.exp(z), np.exp(-z)  # P and q, from a window's rows

    def tanh_as_the_tables_take_it():
        np.copyto(out, product)
        inference.TanhProductForm.finish(out, last)

    kernels = {
        "add": lambda: np.add(z, z, out=out),
        "multiply": lambda: np.multiply(z, z, out=out),
        "exp": lambda: np.exp(z, out=out),
        "tanh": lambda: np.tanh(z, out=out),
        "the tables' tanh (copy, sum, division)": tanh_as_the_tables_take_it,
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
