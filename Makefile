# datamill: `make run` starts the server on the embedded defaults; `make test` runs everything.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml testing/pyproject.toml | sha1sum | cut -c1-12)

.PHONY: run test lint bench bench-quick install bytecode postgres chromium compose dashboard-images clean

# The virtualenv, reinstalled whenever pyproject.toml changes.
$(STAMP): pyproject.toml testing/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,embeddings]' -e ./testing
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP) bytecode

# datamill's own bytecode, compiled ahead: pip does it for installed packages, not for this
# editable checkout, and where PYTHONDONTWRITEBYTECODE is set every `datamill` process would
# otherwise compile its sources again (0.1-0.2 s of each start). Only changed files recompile.
bytecode: $(STAMP)
	@$(BIN)/python -m compileall -q -j 0 datamill testing

run: $(STAMP) bytecode
	$(BIN)/datamill serve

# The suite starts its own throwaway PostgreSQL; it only needs the server binaries.
postgres:
	@command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing PostgreSQL server binaries (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	  else \
	    echo "PostgreSQL server binaries (initdb, pg_ctl) are missing: install PostgreSQL 15+"; \
	  fi; }

# The browser tests (tests/web) drive Debian's Chromium: never a browser that playwright
# downloads (no `playwright install`).
chromium:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Chromium for the browser tests (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "Chromium (/usr/bin/chromium) is missing: install it, or the browser tests are skipped"; \
	  fi; }

# tests/test_deploy.py checks deploy/compose.yaml with Debian's docker-compose (`config` only:
# no image is built or run).
compose:
	@command -v docker-compose >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing docker-compose for the deployment tests (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >/dev/null; \
	  else \
	    echo "docker-compose is missing: install it, or the compose tests are skipped"; \
	  fi; }

# The suite in parallel (pytest-xdist): `-n auto` is sized in tests/conftest.py, and a test
# file stays on one worker (--dist loadfile) so its module fixtures (a server, a browser) start
# once. Then the tests marked `serial` (timing bounds) run alone. Both parts always run.
# TEST_WORKERS=0 runs the first part serially too.
TEST_WORKERS ?= auto

test: $(STAMP) bytecode postgres chromium compose
	@status=0; \
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile -m "not serial" || status=$$?; \
	$(BIN)/pytest -m serial || status=$$?; \
	exit $$status

# Refresh the screenshots docs/dashboard.md shows: the browser tests take them, after the
# module's other tests have filled the server with batches.
dashboard-images: $(STAMP) chromium
	UPDATE_DOC_IMAGES=1 $(BIN)/pytest -q -p no:cacheprovider tests/web/test_dashboard.py

lint: $(STAMP)
	$(BIN)/ruff format --check datamill testing tests bench
	$(BIN)/ruff check datamill testing tests bench
	$(BIN)/mypy

# Every benchmark of docs/benchmarks.md, one line of figures each (about an hour; the
# PostgreSQL cases start their own throwaway server). `make bench-quick` skips the peers'
# install and the long runs.
bench: $(STAMP) bytecode postgres peers
	$(BIN)/python bench/mock_ceiling.py
	$(BIN)/python bench/overhead.py --concurrency 256 --repeats 5
	$(BIN)/python bench/overhead.py --concurrency 64 --repeats 5
	$(BIN)/python bench/latency.py --repeats 3
	$(BIN)/python bench/ratelimit.py
	$(BIN)/python bench/scale.py
	$(BIN)/python bench/crash.py --mode batch-run
	$(BIN)/python bench/crash.py --mode worker
	$(BIN)/python bench/gateway.py
	$(BIN)/python bench/dedup.py
	$(BIN)/python bench/generation.py
	$(BIN)/python bench/events.py
	$(BIN)/python bench/datasets_page.py

bench-quick: $(STAMP) bytecode postgres
	$(BIN)/python bench/mock_ceiling.py
	$(BIN)/python bench/engine_throughput.py --store sqlite
	$(BIN)/python bench/engine_throughput.py --store postgresql
	$(BIN)/python bench/overhead.py --only ceiling,sdk,batch-run-sqlite,batch-run-postgresql,server-sqlite,server-postgresql
	$(BIN)/python bench/gateway.py --seconds 10 --stream-requests 10000
	$(BIN)/python bench/events.py --repeats 1

# The peers that need their own virtualenv (LiteLLM in bench/.venvs/litellm); idempotent.
.PHONY: peers
peers:
	PYTHON=$(PYTHON) bench/peers/setup.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
