# Everything runs in .venv. torch is pinned and installed first: the CPU wheel lies on this machine's disk,
# and an unpinned torch would pull a multi-GB CUDA build.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA ?=
# Reports hold "±" and "³": never let a bare C locale pick ASCII.
export PYTHONUTF8 := 1

.PHONY: install demo test test-slow lint browser benchmark clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/saunet demo $(if $(DATA),--data $(DATA))

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests

# The HTML report's tests open it in Debian's headless Chromium, installed here when missing.
browser:
	@command -v chromium >/dev/null || apt-get install -y -q chromium >/dev/null \
		|| (apt-get update -q && apt-get install -y -q chromium >/dev/null)

test: $(STAMP) lint browser
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

benchmark: $(STAMP)
	$(VENV)/bin/saunet benchmark --json reports/benchmark.json --markdown reports/benchmark.md

clean:
	rm -rf $(VENV) demo-output .pytest_cache
