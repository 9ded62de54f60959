# The README's two commands: `make demo` (main job) and `make test` (test suite).
# Both create the virtual environment on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
FRAMES ?= 200

.PHONY: demo test venv clean

$(BIN)/qcflow: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# CPU build of torch first, so the project's extras never pull a CUDA build
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[all]'
	touch $(BIN)/qcflow

venv: $(BIN)/qcflow

demo: venv
	$(BIN)/qcflow demo --frames $(FRAMES)

test: venv
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) qcflow-data
