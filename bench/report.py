"""What the benchmark scripts share: their data, the machine's description, writing results."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CONLL2003 = REPO.parent / "shared" / "data" / "conll2003"  # the default --data


def conll2003_or_sample(
    script: str, data: str, config: str = "configs/conll2003.yaml"
) -> tuple[Path, str]:
    """(config, data dir): ``config`` (relative to the repository) on ``data``, or, with a
    warning on stderr when ``data`` holds no CoNLL-2003, configs/sample.yaml on the sample data."""
    if (Path(data) / "eng.train").is_file():
        return REPO / config, data
    print(f"{script}: no CoNLL-2003 in {data}; using the sample data", file=sys.stderr)
    return REPO / "configs" / "sample.yaml", str(REPO / "data" / "sample")


def machine() -> str:
    """CPU model, cores, Python and numpy versions, for the results' heading."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [
            line.split(":", 1)[1].strip()
            for line in cpuinfo.read_text().splitlines()
            if line.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    return (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, numpy {np.__version__}"
    )


def replace_section(path: Path, name: str, body: str) -> None:
    """Put ``body`` between this section's markers in ``path``, keeping the other sections."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = path.read_text(encoding="utf-8") if path.exists() else "# nerwin results\n"
    block = f"{begin}\n{body}\n{end}"
    if begin in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def write_results(results: dict, json_path: str, markdown_path: str, section: str, text: str):
    """The numbers as JSON, the tables into their section of the markdown file, and stdout."""
    Path(json_path).parent.mkdir(parents=True, exist_ok=True)
    Path(json_path).write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    replace_section(Path(markdown_path), section, text)
    print(text)
