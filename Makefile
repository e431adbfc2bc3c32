# emovae: one command reproduces the study, one runs the tests. Each sets up .venv itself.
#   make reproduce   # paper preset: every notebook, figures into figures/
#   make test        # unit tests, the package's examples (doctest) + notebooks on the smoke preset (nbval)
#   make smoke       # the notebooks on the smoke preset, into runs/smoke/
#   make benchmark   # preprocessing, training and mel-inversion benchmarks

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Data: $EMOVAE_DATA_DIR if set, else ../shared/ravdess if present, else data/ravdess (downloaded).
SHARED := $(abspath ../shared/ravdess)
EMOVAE_DATA_DIR ?= $(if $(wildcard $(SHARED)),$(SHARED),$(abspath data/ravdess))
export EMOVAE_DATA_DIR

.PHONY: setup data reproduce smoke test benchmark clean

# Pinned in requirements.txt but installed without their declared dependencies (all they import is pinned
# there; resemblyzer's would add webrtcvad, whose module replaces webrtcvad-wheels' and no longer imports).
NO_DEPS := resemblyzer

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	grep -v -i -E '^($(NO_DEPS))==' requirements.txt > $(VENV)/requirements-deps.txt
	$(BIN)/pip install --quiet -r $(VENV)/requirements-deps.txt
	$(BIN)/pip install --quiet --no-deps $$(grep -i -E '^($(NO_DEPS))==' requirements.txt)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

setup: $(VENV)/.installed

data: setup
	@test -d "$(EMOVAE_DATA_DIR)" || $(BIN)/emovae download "$(EMOVAE_DATA_DIR)"

reproduce: data
	$(BIN)/emovae run --preset paper
	cp runs/paper/run_log.csv figures/run_log.csv
	$(BIN)/emovae readme

smoke: setup
	$(BIN)/emovae run --preset smoke

test: setup
	$(BIN)/python -m emovae_utils.pipeline --preset smoke --prepare-only --output-dir runs/nbval
	$(BIN)/python -m pytest tests runs/nbval emovae_utils --nbval-lax --nbval-current-env --doctest-modules

benchmark: setup
	$(BIN)/python benchmarks/preprocess.py
	$(BIN)/python benchmarks/train.py
	$(BIN)/python benchmarks/inversion.py

clean:
	rm -rf runs .pytest_cache
