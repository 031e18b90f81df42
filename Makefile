# datamill: `make run` starts the server on the embedded defaults; `make test` runs everything.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: run test lint bench install clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/datamill serve

test: $(STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff format --check datamill tests bench
	$(BIN)/ruff check datamill tests bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/mock_ceiling.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
