# The kit's two commands: `make walkthrough` and `make test`. Both install what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MILVUS_LOCAL_DIR ?= data/milvus_server
MILVUS_PORT ?= 19530

.DEFAULT_GOAL := help
.PHONY: help install walkthrough test test-notebooks health lab milvus-local milvus-local-stop milvus-local-status milvus-up milvus-down clean

help:
	@echo "make walkthrough   run every notebook in order (embedded Milvus Lite), writing them back"
	@echo "make test          run the test suite (helpers, notebooks at small scale, nbval)"
	@echo "make test-notebooks  nbval every committed notebook at its committed scale (~15 min)"
	@echo "make lab           open the notebooks in JupyterLab"
	@echo "make health        print the guide's health JSON for both stores"
	@echo "make milvus-local  start a local Milvus server without Docker (make milvus-local-stop)"
	@echo "make milvus-up     start the docker-compose stack: etcd, MinIO, Milvus (make milvus-down)"

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed: run make with PYTHON=python3.11 (or newer).")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (chroma-milvus-kit)" >/dev/null
	@touch $@

walkthrough: $(STAMP)
	$(BIN)/python -m helpers.walkthrough

test: $(STAMP)
	$(BIN)/python -m pytest

test-notebooks: $(STAMP)
	$(BIN)/python -m pytest notebooks --all-notebooks

health: $(STAMP)
	$(BIN)/python -m helpers.health

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

milvus-local: $(STAMP)
	$(BIN)/python -m helpers.server start --base-dir $(MILVUS_LOCAL_DIR) --port $(MILVUS_PORT)

milvus-local-stop: $(STAMP)
	$(BIN)/python -m helpers.server stop --base-dir $(MILVUS_LOCAL_DIR)

milvus-local-status: $(STAMP)
	$(BIN)/python -m helpers.server status --base-dir $(MILVUS_LOCAL_DIR)

milvus-up:
	docker compose up -d
	@echo "Milvus is starting on http://localhost:19530: export MILVUS_URI=http://localhost:19530"

milvus-down:
	docker compose down

clean:
	rm -rf data/cache data/chroma data/milvus_kit.db data/runs
