"""Peak memory of `nerwin predict` against input size: it should not grow with the file.

    python bench/predict_memory.py [--model runs/sample] [--tokens 10000 1000000] [--one-line]

For each size it writes a raw-text file of that many tokens (sentences of
the sample data, repeated), runs `nerwin predict` on it in a child process
and reads the child's peak RSS from ``getrusage``. Prints one row per size
and writes ``bench/results/predict_memory.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from report import REPO

# Run in a fresh interpreter so each measurement's RUSAGE_CHILDREN is its own child alone.
MEASURE = """
import resource, subprocess, sys, time
started = time.perf_counter()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
seconds = time.perf_counter() - started
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, seconds)
"""


def write_text(path: Path, tokens: int, one_line: bool = False) -> int:
    """A file of sample sentences, one a line (or all on one), repeated to ``tokens`` tokens."""
    sentences = []
    for name in ("train.conll", "dev.conll", "test.conll"):
        words: list[str] = []
        for line in (REPO / "data" / "sample" / name).read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.startswith("-DOCSTART-"):
                words.append(line.split()[0])
            elif words:
                sentences.append(" ".join(words))
                words = []
    written = 0
    with path.open("w", encoding="utf-8") as out:
        while written < tokens:
            for sentence in sentences:
                out.write(sentence + (" " if one_line else "\n"))
                written += sentence.count(" ") + 1
                if written >= tokens:
                    break
        out.write("\n")
    return written


def measure(model: str, path: Path) -> tuple[int, float]:
    """(peak RSS in KiB, seconds) of `nerwin predict --model MODEL PATH`."""
    command = [sys.executable, "-m", "nerwin.cli", "predict", "--model", model, str(path)]
    output = subprocess.run(
        [sys.executable, "-c", MEASURE, *command], check=True, capture_output=True, text=True
    ).stdout.split()
    return int(output[0]), float(output[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="runs/sample")
    parser.add_argument("--tokens", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--one-line", action="store_true", help="all the tokens on one line")
    parser.add_argument("--json", default="bench/results/predict_memory.json")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for tokens in args.tokens:
            path = Path(tmp) / f"{tokens}.txt"
            written = write_text(path, tokens, args.one_line)
            peak_kib, seconds = measure(args.model, path)
            rows.append({"tokens": written, "peak_rss_mb": peak_kib / 1024, "seconds": seconds})
            print(
                f"{written:>10} tokens  peak RSS {peak_kib / 1024:7.1f} MiB  "
                f"{seconds:6.1f} s  {written / seconds / 1000:6.1f}k tok/s"
            )
    result = {
        "model": args.model,
        "date": time.strftime("%Y-%m-%d"),
        "one_line": args.one_line,
        "runs": rows,
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
