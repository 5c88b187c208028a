"""Prediction's network alone, this checkout's nerwin against another commit's, in turns.

    python bench/against.py 19ecd0b --model runs/conll2003 [--rounds 15]

Each side runs in a child process of its own that imports its own copy of
the nerwin package (the commit's is extracted with `git archive`), loads
the same model and times the same passes as bench/speed.py's "on warm
cores, network alone": eng.testb in batches of 512 sentences, token ids to
probabilities, the model frozen afresh before each pass, a pause of IDLE
seconds, then WARM seconds of busy cores. The sides take turns, a pass
each, the first side alternating, so a noisy neighbour slows both alike.
Prints each side's median tokens/s, the ratio of the medians, every
round's ratio and the largest difference between the two sides'
probabilities. Falls back to the sample data without CoNLL-2003.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from report import CONLL2003, REPO, conll2003_or_sample
from speed import blas_threads, nerwin_network, prediction_batches, tokens_per_s


def child(package_root: str, model_dir: str, config_path: str, data_dir: str) -> None:
    """Serve passes over stdin and stdout with the nerwin package under ``package_root``."""
    sys.path.insert(0, package_root)
    import nerwin
    from nerwin.model import WindowTagger

    model = WindowTagger.load(model_dir)
    batches = prediction_batches(config_path, data_dir)
    if not batches:
        sys.exit(f"against.py: {config_path} names no test or dev data")
    calls = [nerwin_network(model, batch) for batch in batches]
    tokens = sum(len(tokens) for batch in batches for tokens in batch)
    threads = blas_threads()
    imported = Path(nerwin.__file__).resolve().parent.parent
    print("ready" if imported == Path(package_root).resolve() else imported, flush=True)
    for command in sys.stdin:
        rate = tokens_per_s(model.freeze, calls, tokens, threads, warm=True)
        if command.startswith("save "):  # every token's p_tag, for the parent to compare
            path = command.split(maxsplit=1)[1].strip()
            np.save(path, np.concatenate([call()[1] for call in calls]))
        print(rate, flush=True)


def start(package_root: Path, args) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, __file__, "--child", str(package_root), "--model", args.model,
         "--config", str(args.config), "--data", args.data],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    answer = _answer(process)
    if answer != "ready":
        sys.exit(f"against.py: the child for {package_root} imported nerwin from {answer}")
    return process


def one_pass(process: subprocess.Popen, command: str = "pass") -> float:
    process.stdin.write(command + "\n")
    process.stdin.flush()
    return float(_answer(process))


def _answer(process: subprocess.Popen) -> str:
    """The child's next line; exits with its exit code if it stopped instead."""
    line = process.stdout.readline()
    if not line:
        sys.exit(f"against.py: a child stopped with exit code {process.wait()}")
    return line.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev", nargs="?", help="the commit to time against")
    parser.add_argument("--model", default=str(REPO / "runs" / "conll2003"))
    parser.add_argument("--data", default=str(CONLL2003))
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.model, args.config, args.data)
        return
    if not args.rev or not (Path(args.model) / "weights.npz").is_file():
        sys.exit("against.py: give a commit and --model, a saved model's directory")
    args.config, args.data = conll2003_or_sample("against", args.data)
    with tempfile.TemporaryDirectory() as other_root:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", args.rev, "nerwin"],
            capture_output=True, check=True,
        ).stdout  # fmt: skip
        subprocess.run(["tar", "-x", "-C", other_root], input=archive, check=True)
        sides = {"this checkout": start(REPO, args), args.rev: start(Path(other_root), args)}
        rates = {side: [] for side in sides}
        saved = {side: f"{other_root}/{i}.npy" for i, side in enumerate(sides)}
        for round_ in range(args.rounds):
            order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
            for side in order:
                command = f"save {saved[side]}" if round_ == 0 else "pass"
                rates[side].append(one_pass(sides[side], command))
        for process in sides.values():
            process.stdin.close()
            process.wait()
        difference = np.abs(np.load(saved["this checkout"]) - np.load(saved[args.rev])).max()
    ours, theirs = (rates[side] for side in sides)
    for side, rate in rates.items():
        print(f"{side:>14}: {statistics.median(rate):,.0f} tokens/s, median of {args.rounds}")
    print(
        f"ratio of the medians {statistics.median(ours) / statistics.median(theirs):.3f}; "
        f"each round: {' '.join(f'{a / b:.2f}' for a, b in zip(ours, theirs, strict=True))}"
    )
    print(f"largest difference between the sides' probabilities: {difference:.1e}")


if __name__ == "__main__":
    main()
