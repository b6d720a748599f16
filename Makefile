# Two commands for a newcomer: `make demo` (install + train/evaluate/predict on built-in data), `make test`.
VENV  ?= .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@# tcmalloc makes CPU training ~1.4x leaner (optional: installed where apt-get runs as root, else skipped)
	-@[ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && ! ldconfig -p | grep -q libtcmalloc_minimal && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libtcmalloc-minimal4 >/dev/null 2>&1 || true
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/depthforge demo

# One pytest process runs everything (the multi-process training and Mitsuba tests included; see
# inference/openvino.py::core for what once crashed it) and prints the slowest tests: the suite is kept
# under 15 minutes on 2 cores
test: $(STAMP)
	$(PY) -m pytest -q --durations=15

bench: $(STAMP)
	$(VENV)/bin/depthforge bench

clean:
	rm -rf $(VENV) runs outputs

# the quick loop while developing: everything but the tests that train (CI runs them all)
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"
