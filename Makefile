# make install | train | sweep | test | lint | format | tensorboard | mlflow | bench | demo | clean
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# DATA_DIR from the environment wins; on a fresh clone here, fall back to ../shared/data.
DATA_DIR ?= $(if $(wildcard ../shared/data/MNIST/raw),../shared/data,data)
export DATA_DIR

.PHONY: install train sweep test lint format tensorboard mlflow bench demo clean

install: $(BIN)/activate
$(BIN)/activate: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, pinned to the release this project is tested with.
	$(BIN)/pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
	$(BIN)/pip install --quiet -e ".[dev,sweeps,loggers,serve]"
	touch $(BIN)/activate

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
