# Two commands for a fresh machine (Python 3.11 and nothing else):
#   make demo   set up .venv if needed, make the demo data, pretrain kNN-MoCo on it
#   make test   set up .venv if needed, run the whole test suite
VENV ?= $(CURDIR)/.venv
PY := $(VENV)/bin/python
DEMO_DATA ?= data/demo
DEMO_WORK_DIR ?= work_dirs/knn_moco_demo
# mmengine imports pkg_resources (setuptools < 81 is pinned for mmcv); silence its notice.
export PYTHONWARNINGS := ignore:pkg_resources is deprecated

.PHONY: env demo demo-data test clean

env:
	@VENV=$(VENV) bash tools/setup_env.sh

demo-data: env
	@if [ ! -f $(DEMO_DATA)/.complete ]; then \
	  $(PY) tools/make_demo_data.py --out $(DEMO_DATA); \
	else echo "[demo] demo data in $(DEMO_DATA)"; fi

demo: demo-data
	$(PY) tools/train.py configs/knn_moco_demo.py --work-dir $(DEMO_WORK_DIR)

test: env
	$(PY) -m pytest tests

clean:
	rm -rf work_dirs $(DEMO_DATA)
