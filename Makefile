# Task runner. `make demo` and `make test` each install everything first (idempotent).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: install install-browser demo test test-fast benchmark strip-notebooks clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# torch first: the pinned local CPU wheel; a loose requirement could pull a multi-GB CUDA build.
install: $(PY)
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[all]'

# Debian's chromium for the JupyterLab browser test (Playwright's own browser download cannot work offline).
install-browser:
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

# The real demo: train_clm.ipynb headless on the bundled Wikipedia sample with the "tiny CPU" preset.
demo: install
	mkdir -p runs
	$(PY) -m papermill notebooks/train_clm.ipynb runs/train_clm.ipynb
	@echo "executed notebook: runs/train_clm.ipynb, run directory: the newest one in runs/clm/"

# Notebooks are committed without outputs (tests/workbench/test_notebooks_clean.py checks it): run this before
# committing a notebook that JupyterLab has saved with outputs.
strip-notebooks:
	$(PY) -m nbstripout --keep-id notebooks/*.ipynb

# One pytest worker per CPU core (pytest-xdist), each test file on one worker (its module fixtures run once).
test: install install-browser
	$(PY) -m pytest -q -n auto --dist loadfile

test-fast: install
	$(PY) -m pytest -q -n auto --dist loadfile -m "not slow and not notebook and not browser"

# the fp32 table of docs/performance.md (~20 min); e.g. BENCH_ARGS="--cases gen --precisions fp32,bf16-mixed"
BENCH_ARGS ?= --precisions fp32 --rounds 2
benchmark: install
	bash benchmarks/setup_perceiver_io.sh
	$(PY) benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
