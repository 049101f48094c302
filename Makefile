# The course's commands. Each target creates .venv and installs the pinned packages if needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NOTEBOOKS := $(wildcard notebooks/*.ipynb)

.PHONY: setup demo test test-fast test-vllm-profile lint lab clean

$(STAMP): pyproject.toml constraints/default.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e ".[dev]" -c constraints/default.txt
	touch $(STAMP)

setup: $(STAMP)

# The default run: tiny Qwen2.5-VL + synthetic colour task, GRPO with LoRA on the CPU.
demo: setup
	$(BIN)/vlmgrpo train --preset tiny --output-dir runs/demo --overwrite

lint: setup
	$(BIN)/ruff check vlmgrpo tests benchmarks
	$(BIN)/ruff format --check vlmgrpo tests benchmarks

# Everything CI runs: lint, unit tests, the learning run, and the notebooks under nbval.
test: lint
	VLMGRPO_SLOW=1 $(BIN)/python -m pytest tests $(NOTEBOOKS) --nbval --nbval-current-env \
		--nbval-sanitize-with notebooks/nbval_sanitize.cfg

test-fast: lint
	$(BIN)/python -m pytest tests

# The fast tests and a 2-step tiny run under the vLLM profile's transformers, laid over .venv
# (vLLM's own torch is a CUDA build; the rest of that profile is checked by a resolver dry run).
test-vllm-profile: setup
	bash tests/profile_transformers.sh constraints/vllm.txt

lab: setup
	$(BIN)/jupyter lab notebooks/

clean:
	rm -rf runs .pytest_cache .ruff_cache
