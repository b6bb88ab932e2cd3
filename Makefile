# make install | lock | train | sweep | test | lint | format | tensorboard | dashboard | mlflow | bench | demo | clean
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# DATA_DIR from the environment wins; on a fresh clone here, fall back to ../shared/data.
DATA_DIR ?= $(if $(wildcard ../shared/data/MNIST/raw),../shared/data,data)
export DATA_DIR

.PHONY: install lock train sweep test lint format tensorboard dashboard mlflow bench demo clean

# Every extra of pyproject.toml (dev, sweeps, and whatever a branch adds).
EXTRAS = $(shell $(PYTHON) -c "import tomllib; print(','.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']))")
TORCH := "torch==2.14.1" "torchvision==0.29.1"
LOCK := requirements.lock

# Exactly the versions in requirements.lock, which the tests passed with.
install: $(BIN)/activate
$(BIN)/activate: pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, pinned to the release this project is tested with.
	$(BIN)/pip install --quiet -c $(LOCK) $(TORCH)
	$(BIN)/pip install --quiet -c $(LOCK) -e ".[$(EXTRAS)]"
	touch $(BIN)/activate

# requirements.lock afresh: pyproject's dependencies and every extra resolved to their newest
# releases in a throwaway venv (torch as pinned above), each installed version written down.
# After a dependency changes in pyproject.toml: make lock, make install, make test, commit both.
LOCK_VENV := $(or $(TMPDIR),/tmp)/mnist-convnets-lock
lock:
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install --quiet $(TORCH)
	$(LOCK_VENV)/bin/pip install --quiet -e ".[$(EXTRAS)]"
	echo "# make lock: every version installed by make install, for Python $$($(LOCK_VENV)/bin/python -c 'import platform; print(platform.python_version())')" > $(LOCK)
	$(LOCK_VENV)/bin/pip freeze --exclude-editable >> $(LOCK)
	rm -rf $(LOCK_VENV)

train: install
	$(BIN)/python -m src.train $(ARGS)

# An example sweep, a few minutes on 2 cores: 2 models x 2 optimizers x 2 seeds, a tenth of an
# epoch each; the summary table ends it (and lies in the sweep folder as summary.md).
sweep: install
	$(BIN)/python -m src.train -m model=convnet_single,convnet16 optimizer=sgd,adam seed=1,2 \
		trainer.max_epochs=1 trainer.limit_train_batches=0.1 callbacks.progress_bar_refresh=0 $(ARGS)

lint: install
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

format: install
	$(BIN)/ruff check --fix src tests
	$(BIN)/ruff format src tests

# Most tests wait on the processes they start (a Lightning import each): a worker per core,
# at most 4. PYTEST_ARGS="-k <name>" runs one test in this process.
PYTEST_ARGS ?= --numprocesses=auto --maxprocesses=4
test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# A B C alternating (plain loop, project fp32, project bf16), then whole processes end to end,
# then where the project's training step spends its time.
bench: install
	$(BIN)/python -m src.bench $(ARGS)
	$(BIN)/python -m src.bench --end-to-end $(ARGS)
	$(BIN)/python -m src.bench profile --images 16000 $(ARGS)

tensorboard: install
	$(BIN)/tensorboard --logdir outputs

# Optuna's dashboard on the search's study (hparams_search=optuna), on this machine only:
# http://127.0.0.1:8080. Another study: make dashboard STORAGE=sqlite:///outputs/other.db
STORAGE ?= sqlite:///outputs/optuna.db
DASHBOARD_PORT ?= 8080
dashboard: install
	$(BIN)/optuna-dashboard --host 127.0.0.1 --port $(DASHBOARD_PORT) $(STORAGE)

# MLflow's UI on the store of logger=mlflow (conf/logger/mlflow.yaml), on this machine only.
mlflow: install
	$(BIN)/mlflow ui --backend-store-uri sqlite:///outputs/mlflow.db --host 127.0.0.1 --port 5000

# The page of src.serve for the newest run's best checkpoint (a run's or a sweep job's) under
# outputs/; ARGS="port=8001" for another port. Another run: python -m src.serve ckpt_path=<run>.
NEWEST_RUN = $(shell ls -t outputs/runs/*/*/checkpoints/best.ckpt \
	outputs/multiruns/*/*/*/checkpoints/best.ckpt 2>/dev/null | head -n 1)
demo: install
	@test -n "$(NEWEST_RUN)" || { echo "error: no trained run under outputs/: train one first \
	(make train, or python -m src.train experiment=fast)" >&2; exit 2; }
	$(BIN)/python -m src.serve ckpt_path=$(NEWEST_RUN) $(ARGS)

clean:
	rm -rf outputs/runs outputs/multiruns .pytest_cache .ruff_cache
