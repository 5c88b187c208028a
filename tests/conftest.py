from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample"
CONLL2003 = REPO.parent / "shared" / "data" / "conll2003"


@pytest.fixture
def sample_dir() -> Path:
    return SAMPLE
