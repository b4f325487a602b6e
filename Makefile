# Two commands set everything up: `make up` runs the service, `make test` passes the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: up test bench clean

$(STAMP): pyproject.toml constraints.txt client/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[local,test]' -e './client[yaml,notebook,npz]'
	touch $(STAMP)

up: $(STAMP)
	$(PY) -m services.up

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(PY) bench/engine_vs_torch.py

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis
