# The two commands of the README. Each installs what it needs into the current Python.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip

.PHONY: demo test install-demo install-test lint

install-demo:
	$(PIP) install -q -e ".[demo]"

install-test:
	$(PIP) install -q -e ".[test,demo]"

demo: install-demo
	$(PYTHON) -m rnncore demo

lint:
	$(PYTHON) -m ruff check rnncore tests benchmarks

# The C core's tests with the default compiler (and ASan/UBSan), then again with clang.
test: install-test lint
	$(MAKE) -C csrc test test-sanitize PYTHON=$(PYTHON)
	$(MAKE) -C csrc test-clang PYTHON=$(PYTHON)
	$(PYTHON) -m pytest -q
