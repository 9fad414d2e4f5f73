# Two entry points a new user needs:  make quick  (the quick preset)  and  make test.
# TORCH picks the PyTorch build: the default pin resolves to the CPU wheel where pip's find-links hold
# one, and to PyPI's CUDA build elsewhere; e.g. make setup TORCH='torch>=2.6'.
VENV  ?= .venv
PY    := $(VENV)/bin/python
TORCH ?= torch==2.13.0
CORES ?= 2
SHARED ?= $(abspath ../shared)
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup quick test clean
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

quick: setup
	snakemake --cores $(CORES) --configfile presets/quick.yaml
	@echo "leaderboard: reports/leaderboard.html"

test: setup
	GLUESLIM_SHARED=$(SHARED) $(PY) -m pytest -ra

clean:
	rm -rf results reports logs .snakemake
