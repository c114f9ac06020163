# Two entry points for a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU torch wheel is pinned only here; pyproject.toml declares a range for GPU users.
TORCH_SPEC ?= torch==2.13.0
# These machines keep the CPU wheel on disk; elsewhere it comes from the PyTorch CPU index.
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,--extra-index-url https://download.pytorch.org/whl/cpu)

.PHONY: demo full test venv lint clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(FIND_LINKS) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q $(FIND_LINKS) -e ".[test,onnx]"
	touch $@

venv: $(BIN)/.installed

demo: venv
	$(BIN)/stprivacy benchmark --preset synth-quick --out runs/demo

# Every baseline beside STPrivacy, 2 seeds: about 36 minutes on 2 cores.
full: venv
	$(BIN)/stprivacy benchmark --preset synth-full --out runs/full

test: venv
	$(BIN)/python -m pytest -q -m "not slow"

lint: venv
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) runs
