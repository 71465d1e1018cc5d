# Two commands: `make demo` (set up + main job) and `make test` (set up + tests).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# pytest-xdist workers; the Ray tests share one worker (xdist_group "ray"), the rest spread out
TEST_WORKERS ?= 2
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
	rm -rf runs/demo-tune runs/demo-model runs/demo-arch.json
	$(VENV)/bin/lpgnas tune --backend differentiable --space tiny --dataset cora --trials 4 --epochs 100 \
		--finetune 20 --retrain-seeds 2 --out runs/demo-tune
	$(VENV)/bin/lpgnas pareto runs/demo-tune --objectives val_acc:max,model_size_bits:min
	$(VENV)/bin/lpgnas export runs/demo-tune --pick knee -o runs/demo-arch.json
	$(VENV)/bin/lpgnas train --arch runs/demo-arch.json --dataset cora --seeds 3 --save runs/demo-model
	$(VENV)/bin/lpgnas infer --model runs/demo-model --dataset cora

test: $(STAMP)
	$(PY) -m pytest -q -x --durations=15 -n $(TEST_WORKERS) --dist loadgroup

bench: $(STAMP)
	$(PY) experiments/bench_train.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
