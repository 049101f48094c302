# The course's commands. Each target creates .venv and installs the pinned packages if needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NOTEBOOKS := $(wildcard notebooks/*.ipynb notebooks/solutions/*.ipynb)

# Workshop kit (WORKSHOP.md). `make kit` writes KIT_DIR: the wheels of every pinned package, the
# cold-started tiny model and the repository. PLATFORM (a wheel tag: macosx_14_0_arm64, win_amd64,
# manylinux_2_28_x86_64) and KIT_PYTHON fetch the wheels of other laptops; KIT_PIP_ARGS are more
# `pip download` options. With KIT=DIR, setup (and so demo, test, lab) installs from DIR/wheels
# alone and copies DIR's model into the cache: no network at all.
KIT ?=
KIT_DIR ?= kit
PLATFORM ?=
KIT_PYTHON ?= 3.11
KIT_PIP_ARGS ?=
UV := uv==0.13.8

.PHONY: setup demo test test-fast test-portable test-install test-vllm-profile lint lab kit \
	gpu-check rehearse-shapes seed-spread clean

$(STAMP): pyproject.toml constraints/default.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(if $(KIT),--no-index --find-links $(KIT)/wheels) \
		-e ".[dev]" -c constraints/default.txt
	touch $(STAMP)

setup: $(STAMP)
ifneq ($(KIT),)
	$(BIN)/python -m vlmgrpo.kit install-model $(KIT)
endif

# The default run: tiny Qwen2.5-VL + synthetic colour task, GRPO with LoRA on the CPU.
demo: setup
	$(BIN)/vlmgrpo train --preset tiny --output-dir runs/demo --overwrite

lint: setup
	$(BIN)/ruff check vlmgrpo tests benchmarks
	$(BIN)/ruff format --check vlmgrpo tests benchmarks

# The tests run in TEST_WORKERS pytest processes (pytest-xdist) with one torch thread each: on
# two cores, two workers finish sooner than one process with two threads. A test file runs
# whole on one worker (its module fixtures are built once); a notebook's cells stay together,
# and the notebooks that share a run folder share a worker (notebooks/conftest.py).
# TEST_WORKERS=0: one process, torch's own thread count.
TEST_WORKERS ?= 2
PYTEST := $(if $(filter 0,$(TEST_WORKERS)),$(BIN)/python -m pytest,OMP_NUM_THREADS=1 \
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile)
NBVAL := --nbval --nbval-current-env --nbval-sanitize-with notebooks/nbval_sanitize.cfg

# The course's tests: lint, unit tests, the learning run, the notebooks and their solutions
# under nbval. CI then runs test-install and test-vllm-profile.
test: lint
	VLMGRPO_SLOW=1 $(PYTEST) tests $(NOTEBOOKS) $(NBVAL)

# The install paths: resolver dry runs of every profile on PyPI, and the workshop kit built
# and installed inside `unshare -n`. Network-bound; CI runs it after `make test`.
test-install: setup
	VLMGRPO_INSTALL=1 VLMGRPO_KIT="$(KIT)" $(BIN)/python -m pytest tests/test_install_profiles.py \
		tests/test_kit.py

test-fast: lint
	$(PYTEST) tests

# The notebooks and their solutions under nbval with another CPU's float rounding: oneDNN and
# ATen held to AVX2 kernels, MKL to AVX2, one thread, and an empty model cache, so that the
# cold start is rebuilt under those settings too. Run it before storing outputs.
PORTABLE_CACHE ?= /tmp/vlmgrpo-portable-cache
test-portable: setup
	rm -rf $(PORTABLE_CACHE)
	ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 \
		OMP_NUM_THREADS=1 VLMGRPO_CACHE=$(PORTABLE_CACHE) $(PYTEST) $(NOTEBOOKS) $(NBVAL)
	rm -rf $(PORTABLE_CACHE)

# The fast tests and a 2-step tiny run under the vLLM profile's transformers, laid over .venv
# (vLLM's own torch is a CUDA build; the rest of that profile is checked by a resolver dry run).
test-vllm-profile: setup
	TEST_WORKERS=$(TEST_WORKERS) bash tests/profile_transformers.sh constraints/vllm.txt

lab: setup
	$(BIN)/jupyter lab notebooks/

# On a GPU machine, no hub needed: every GPU preset end to end on random weights of its
# model's shape (4-bit where the preset is), one table.
gpu-check: setup
	$(BIN)/python benchmarks/gpu_check.py

# Before a release, on any machine (no GPU, no hub): one GRPO step of every GPU preset at its
# model's real shape, random weights, 4 bits where the preset is; seconds, peak memory, image
# tokens and trainable parameters per preset. Minutes per preset on a CPU; needs ~16 GB free.
rehearse-shapes: setup
	$(BIN)/python benchmarks/real_shapes.py

# The ranges the course quotes: every run it describes, on seeds 42 to 46, then seed 42 under
# test-portable's AVX2 settings (filed as GROUP-avx2), written to vlmgrpo/seed_spread.json
# with the machine and the date (vlmgrpo.measured). About two hours on 2 CPU cores; run it
# alone, as the run times are recorded too.
SPREAD_VARIANTS := dapo "dapo eps10" "dapo iter4" gspo "gspo eps0.2"
seed-spread: setup
	$(BIN)/python benchmarks/seed_spread.py --json vlmgrpo/seed_spread.json \
		--variants $(SPREAD_VARIANTS)
	ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 \
		OMP_NUM_THREADS=1 VLMGRPO_CACHE=$(PORTABLE_CACHE) $(BIN)/python \
		benchmarks/seed_spread.py --seeds 42 --label avx2 --json vlmgrpo/seed_spread.json \
		--variants $(SPREAD_VARIANTS)

# uv resolves for another platform: pip evaluates environment markers for this machine only.
kit: setup
ifneq ($(PLATFORM),)
	$(BIN)/python -m pip install --quiet $(UV)
endif
	$(BIN)/python -m vlmgrpo.kit build $(KIT_DIR) --pip-args="$(KIT_PIP_ARGS)" \
		$(if $(PLATFORM),--platform $(PLATFORM) --python-version $(KIT_PYTHON))

clean:
	rm -rf runs .pytest_cache .ruff_cache
