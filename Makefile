# Two commands do all set-up on a fresh machine (see README.md):
#   make demo   installs into .venv and runs `slotline demo`
#   make test   installs into .venv and runs lint, types and the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: install demo serve test lint tools clean

# Every extra (dev pulls in all of them: the tests cover every adapter and emulator), at the
# versions in constraints.txt, the same ones the Dockerfile installs.
$(BIN)/slotline: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	# Silero's onnx model ships in this wheel; its torch dependency is not needed (onnxruntime runs it).
	$(BIN)/pip install --quiet -c constraints.txt --no-deps silero-vad
	# Smart Turn v3's onnx file ships in pipecat-ai; only the file is used (turn.smart_turn).
	$(BIN)/pip install --quiet -c constraints.txt --no-deps pipecat-ai
	touch $@

install: $(BIN)/slotline

demo: install
	$(BIN)/slotline demo

serve: install
	$(BIN)/slotline serve

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

# The VAD tests speak with flite, the console test drives Chromium (Debian's packages): installed
# here when missing and we are root.
tools:
	@command -v flite >/dev/null || { [ "$$(id -u)" = 0 ] && { apt-get install -y -qq flite \
		|| { apt-get update -qq && apt-get install -y -qq flite; }; } >/dev/null; } \
		|| { echo "flite is needed by the tests: apt-get install flite" >&2; exit 1; }
	@# the console's browser test drives a headless Chromium
	@command -v chromedriver >/dev/null || { [ "$$(id -u)" = 0 ] && { apt-get install -y -qq \
		chromium chromium-driver || { apt-get update -qq && apt-get install -y -qq chromium \
		chromium-driver; }; } >/dev/null; } \
		|| { echo "the console test needs: apt-get install chromium chromium-driver" >&2; exit 1; }

test: lint tools
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
