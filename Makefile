# 3D-GAN Studio. Two entry points: `make demo` and `make test` (lint, then the suite). Both install into .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo lint test install clean-venv gpu-check

# Re-installs whenever a requirements file changes.
$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) visualizer.py

# Lint (pyproject.toml configures ruff); `make test` runs it first, so lint errors fail the tests.
lint: $(STAMP)
	$(PY) -m ruff check .

# GUI tests need a display: without one, run the suite under Xvfb with Mesa's software OpenGL.
test: lint
	@if [ -n "$$DISPLAY" ]; then \
		$(PY) -m pytest tests -q; \
	elif command -v xvfb-run >/dev/null 2>&1; then \
		LIBGL_ALWAYS_SOFTWARE=1 xvfb-run -a -s "-screen 0 1600x1000x24" $(PY) -m pytest tests -q; \
	else \
		echo "error: no DISPLAY and no xvfb-run; install Xvfb (apt-get install xvfb) so the GUI tests can run" >&2; \
		exit 1; \
	fi

clean-venv:
	rm -rf $(VENV)

# The GPU acceptance run (tests/gpu_check.py): fixtures on the device against the CPU, every preset renders
# and trains two steps, viewer and app frame times in both precisions, training throughput; gpu-check.json.
gpu-check: $(STAMP)
	$(PY) -m tests.gpu_check --out gpu-check.json
