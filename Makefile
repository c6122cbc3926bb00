# evreplay: every target creates .venv and installs what it needs itself.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
EXTRAS := test,lint,docs,bench,dask
STAMP  := $(VENV)/.installed-$(shell (cat pyproject.toml; echo $(EXTRAS)) | cksum | cut -d' ' -f1)

.PHONY: all test test-fast lint unit demo bench traces docs clean

all: test

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

lint: $(STAMP)
	$(PY) -m ruff check evloop replay tests examples bench
	$(PY) -m mypy

unit: $(STAMP)
	$(PY) -m pytest -q

test: lint unit

# Quick local runs: everything but the tests marked slow (over about 1 s). CI runs `make test`.
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

demo: $(STAMP)
	$(PY) examples/demo.py

bench: $(STAMP)
	test -d $(VENV)/bench-peers || $(PY) -m pip install --quiet --target $(VENV)/bench-peers 'looptime>=0.2'
	$(PY) -m bench

# The API reference, generated from the docstrings (pdoc) into docs/api/ (not tracked).
API_MODULES := evloop evloop.asyncio replay replay.tools replay.explore replay.hypothesis \
               replay.pytest_plugin replay.host replay.declared
docs: $(STAMP)
	rm -rf docs/api
	$(PY) -m pdoc --docformat restructuredtext -o docs/api $(API_MODULES)
	@echo "open docs/api/index.html"

traces: $(STAMP)
	$(PY) examples/make_traces.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
