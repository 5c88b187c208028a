import signal
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample"
CONLL2003 = REPO.parent / "shared" / "data" / "conll2003"


@pytest.fixture
def sample_dir() -> Path:
    return SAMPLE


@pytest.fixture(autouse=True)
def ctrl_c_reaches_python():
    """Python's own SIGINT handler for every test, as in a terminal.

    A test runner started in the background (``nohup``, ``&`` without job
    control) inherits SIGINT ignored, and nerwin's training leaves an ignored
    SIGINT ignored, so a test that presses Ctrl-C would press nothing.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)
