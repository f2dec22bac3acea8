# The two commands of the README. Each installs what it needs into the current Python.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip

.PHONY: demo test install-demo install-test lint docs

install-demo:
	$(PIP) install -q -e ".[demo]"

install-test:
	$(PIP) install -q -e ".[test,demo,docs]"

demo: install-demo
	$(PYTHON) -m rnncore demo

lint:
	$(PYTHON) -m ruff check rnncore tests benchmarks

# The documentation site (mkdocs.yml) into site/, every warning an error: docstrings the API pages
# cannot parse, links to missing pages, files or anchors. Needs the docs extra (install-test has it).
docs:
	NO_MKDOCS_2_WARNING=1 $(PYTHON) -m mkdocs build --strict

# The C core's tests with the default compiler (and ASan/UBSan), again with clang, the integer
# kernels on bare-metal Cortex-M4/M7/M55 images under qemu-system-arm (docs/deploy-cortex-m.md),
# and a short libFuzzer run of the model loader (csrc/Makefile fuzz-smoke; the long campaign:
# docs/fuzzing.md).
test: install-test lint docs
	$(MAKE) -C csrc test test-sanitize test-cortex-m PYTHON=$(PYTHON)
	$(MAKE) -C csrc test-clang fuzz-smoke PYTHON=$(PYTHON)
	$(PYTHON) -m pytest -q
