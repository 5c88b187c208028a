"""CoNLL-2003 end to end (minutes): ``pytest -m slow``; skipped without ../shared/data/conll2003."""

import pytest

from nerwin.config import load_config
from nerwin.train import train

from .conftest import CONLL2003, REPO

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (CONLL2003 / "eng.train").is_file(), reason="CoNLL-2003 data absent"),
]


def test_shipped_config_reaches_the_f1_floors(tmp_path):
    config = load_config(
        REPO / "configs" / "conll2003.yaml", (f"data.dir={CONLL2003}", f"output={tmp_path}")
    )
    run = train(config, log=print)
    assert run.scores["dev"]["entity"]["micro"]["f1"] > 0.80
    assert run.scores["test"]["entity"]["micro"]["f1"] >= 0.77
    assert run.scores["test"]["binary"]["f1"] > 0.85
