# Every target installs first; the install reruns only when setup.cfg or pyproject.toml
# change, so `make sweep` and `make test` work on a fresh clone and are quick after.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
STACK_STAMP := $(VENV)/.stack-installed-stamp
HOST ?= 127.0.0.1
PORT ?= 5000
STORE ?= sqlite:///$(CURDIR)/outputs/mlflow.db
# what `make serve` serves: the champion of this registered model, on this port
MODEL ?= tssweep-airline
SERVE_PORT ?= 5001

# MLflow's usage telemetry stays off: no calls home, no files in $HOME.
export MLFLOW_DISABLE_TELEMETRY := true

.PHONY: install install-stack sweep ui serve test test-official stack-up stack-down stack-status stack-shell \
	bench bench-pruning bench-classification bench-scale bench-panel screenshots clean

install: $(STAMP)

install-stack: $(STACK_STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@# The plugin pins optuna<3, whose storage breaks under SQLAlchemy 2; it runs on the
	@# optuna>=4.5 that setup.cfg installs, so it comes without its dependencies.
	$(PY) -m pip install --quiet --no-deps hydra-optuna-sweeper==1.3.0
	touch $(STAMP)

# The optional extras for the local stack, cluster=ray and the bundled panels (the tests
# use all three); Hydra's Ray launcher without its pins (cloudpickle<3 would downgrade
# what joblib wants; boto3 is for its AWS half).
$(STACK_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,ray,postgres,datasets]'
	$(PY) -m pip install --quiet --no-deps hydra-ray-launcher==1.2.2
	touch $(STACK_STAMP)

sweep: install
	$(PY) src/train.py -m preprocess=none,log,detrend,deseasonalize
	@echo
	@echo "This sweep is one parent run with four nested child runs in outputs/mlflow.db."
	@echo "  the verdict:    cat outputs/multiruns/*/summary/summary.md | tail"
	@echo "  the dashboard:  make ui   (then open http://$(HOST):$(PORT)/#/experiments/1/runs)"
	@echo "  the winner:     $(PY) src/predict.py   (12 months after the data), make serve (REST)"

# One server process (uvicorn, one worker) with no job consumers and no line per request.
ui: install
	@echo "Runs: http://$(HOST):$(PORT)/#/experiments/1/runs (MLflow 3 opens on its GenAI view;"
	@echo "the runs are under 'Model training' / 'Training runs', sweeps as expandable parents)"
	exec env MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(VENV)/bin/mlflow ui --backend-store-uri $(STORE) \
		--host $(HOST) --port $(PORT) --workers 1 --uvicorn-opts "--no-access-log"

# The registered champion over REST (POST {"dataframe_records": [{"step": 1}]} to
# /invocations), from the embedded store unless MLFLOW_TRACKING_URI names another; the
# venv's bin on PATH for the uvicorn it starts.
serve: install
	env PATH="$(CURDIR)/$(VENV)/bin:$$PATH" MLFLOW_TRACKING_URI="$${MLFLOW_TRACKING_URI:-$(STORE)}" \
		$(VENV)/bin/mlflow models serve -m "models:/$(MODEL)@champion" --env-manager local \
		--host $(HOST) --port $(SERVE_PORT)

test: install-stack
	$(PY) -m pytest

# The dashboard screenshots under docs/, retaken by the browser test (Debian's chromium
# and playwright-core from npm, as .ci/run installs them)
screenshots: install-stack
	test -d tests/browser/node_modules || npm ci --prefix tests/browser --no-audit --no-fund
	TSSWEEP_SCREENSHOTS=$(CURDIR)/docs $(PY) -m pytest -n 0 -q tests/test_dashboard.py

# hydra-optuna-sweeper's own test file against tssweep's sweeper, from a checkout of
# Hydra's repository: make test-official HYDRA=/path/to/hydra
test-official: install
	benchmarks/official_optuna_tests.sh $(HYDRA)

# PostgreSQL, an MLflow server on it and a Ray head, all on 127.0.0.1 (Ray in a private
# network namespace); data in outputs/stack/. See the README, "Scaling out".
stack-up: install-stack
	$(PY) -m tssweep.stack up

stack-down:
	$(PY) -m tssweep.stack down

stack-status:
	$(PY) -m tssweep.stack status

# a shell inside the stack's namespace, where cluster=ray commands reach the Ray head
stack-shell:
	$(PY) -m tssweep.stack exec

bench-scale: install-stack
	$(PY) benchmarks/scale.py

# tssweep against a bare loop and a hand-written MLflow loop on the same trainings, then
# the per-job overhead and memory over long sweeps of tiny jobs
bench: install
	$(PY) benchmarks/peer.py
	$(PY) benchmarks/overhead.py
	$(PY) benchmarks/startup.py

bench-pruning: install
	$(PY) benchmarks/pruning.py

bench-classification: install
	$(PY) benchmarks/classification.py

# one global job on 145 series against Nixtla's mlforecast, a benchmark-only dependency
# kept in its own virtualenv, out of the project's install
BENCH_VENV := .venv-bench
$(BENCH_VENV)/.installed:
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet mlforecast catboost pandas
	touch $@

bench-panel: install-stack $(BENCH_VENV)/.installed
	$(PY) benchmarks/panel.py --mlforecast-python $(BENCH_VENV)/bin/python

clean:
	rm -rf outputs/* $(VENV) $(BENCH_VENV)
	touch outputs/.gitkeep
