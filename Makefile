# Two commands for a newcomer: `make demo` (install + train/evaluate/predict on built-in data), `make test`.
VENV  ?= .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/depthforge demo

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(VENV)/bin/depthforge bench

clean:
	rm -rf $(VENV) runs outputs

# the quick loop while developing: everything but the tests that train (CI runs them all)
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"
