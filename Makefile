# Every target installs first; the install reruns only when setup.cfg or pyproject.toml
# change, so `make sweep` and `make test` work on a fresh clone and are quick after.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 5000

# MLflow's usage telemetry stays off: no calls home, no files in $HOME.
export MLFLOW_DISABLE_TELEMETRY := true

.PHONY: install sweep ui test bench bench-pruning bench-classification clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@# The plugin pins optuna<3, whose storage breaks under SQLAlchemy 2; it runs on the
	@# optuna>=4.5 that setup.cfg installs, so it comes without its dependencies.
	$(PY) -m pip install --quiet --no-deps hydra-optuna-sweeper==1.3.0
	touch $(STAMP)

sweep: install
	$(PY) src/train.py -m preprocess=none,log,detrend,deseasonalize
	@echo
	@echo "One parent run with four nested child runs is in outputs/mlflow.db."
	@echo "  the verdict:    cat outputs/multiruns/*/summary/summary.md | tail"
	@echo "  the dashboard:  make ui   (then open http://$(HOST):$(PORT)/#/experiments/1/runs)"

ui: install
	@echo "Runs: http://$(HOST):$(PORT)/#/experiments/1/runs (MLflow 3 opens on its GenAI view;"
	@echo "the runs are under 'Model training' / 'Training runs', sweeps as expandable parents)"
	$(VENV)/bin/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/outputs/mlflow.db \
		--host $(HOST) --port $(PORT) --workers 1

test: install
	$(PY) -m pytest

bench: install
	$(PY) benchmarks/overhead.py

bench-pruning: install
	$(PY) benchmarks/pruning.py

bench-classification: install
	$(PY) benchmarks/classification.py

clean:
	rm -rf outputs/* $(VENV)
	touch outputs/.gitkeep
