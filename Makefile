# Two commands: `make demo` (set up + main job) and `make test` (set up + tests).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SHARED_DATA := $(abspath ../shared/datasets)
ifeq ($(origin LPGNAS_DATA), undefined)
  ifneq ($(wildcard $(SHARED_DATA)),)
    export LPGNAS_DATA := $(SHARED_DATA)
  endif
endif

.PHONY: setup demo test bench clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/lpgnas train --dataset cora --model gcn --seeds 3
	rm -rf runs/demo-search runs/demo-model
	$(VENV)/bin/lpgnas search --space tiny --dataset cora --lambda 0.1 --epochs 100 --out runs/demo-search
	$(VENV)/bin/lpgnas train --arch runs/demo-search/arch.json --dataset cora --seeds 3 --save runs/demo-model
	$(VENV)/bin/lpgnas infer --model runs/demo-model --dataset cora

test: $(STAMP)
	$(PY) -m pytest -q -x --durations=15

bench: $(STAMP)
	$(PY) experiments/bench_train.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
