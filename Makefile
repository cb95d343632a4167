# Two commands do all set-up on a fresh machine (see README.md):
#   make demo   installs into .venv and runs `slotline demo`
#   make test   installs into .venv and runs lint, types and the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: install demo serve test lint clean

$(BIN)/slotline: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,silero]'
	# Silero's onnx model ships in this wheel; its torch dependency is not needed (onnxruntime runs it).
	$(BIN)/pip install --quiet --no-deps silero-vad
	touch $@

install: $(BIN)/slotline

demo: install
	$(BIN)/slotline demo

serve: install
	$(BIN)/slotline serve

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
