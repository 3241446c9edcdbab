# Two commands set up a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: demo test test-slow fuzz bench clean clean-cache system-deps

# Two stamps: `make demo` installs tailgate and its dependencies only; `make test` adds the test tools.
$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "tailgate needs Python 3.11 ($(PYTHON) not found)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	@touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[test]'
	@touch $(TEST_STAMP)

# tshark lets the tests check pcap output with an independent reader; optional, installed when apt is there.
system-deps:
	@command -v tshark >/dev/null || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	  (DEBIAN_FRONTEND=noninteractive apt-get install -y -q tshark >/dev/null 2>&1 || \
	   (apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q tshark >/dev/null 2>&1)) || \
	  echo "note: tshark not installed; the tshark cross-check tests will be skipped"; }
# bubblewrap runs `tailgate faas serve --sandbox bwrap`; optional, installed the same way.
	@command -v bwrap >/dev/null || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	  (DEBIAN_FRONTEND=noninteractive apt-get install -y -q bubblewrap >/dev/null 2>&1 || \
	   (apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q bubblewrap >/dev/null 2>&1)) || \
	  echo "note: bubblewrap not installed; the bwrap sandbox tests will be skipped"; }
# docker.io (client and dockerd) runs `tailgate faas serve --sandbox docker`; its tests start dockerd themselves.
	@command -v dockerd >/dev/null || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	  (DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io >/dev/null 2>&1 || \
	   (apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io >/dev/null 2>&1)) || \
	  echo "note: docker.io not installed; the docker sandbox tests will be skipped"; }

demo: $(STAMP)
	$(VENV)/bin/tailgate run examples/pipeline.py seconds=0.2 --clock virtual --out results/demo --plot
	@echo "What ran: examples/pipeline.py, a source split three ways (a router, an expensive NF behind a queue,"
	@echo "  policed bulk traffic) and merged into a Measure, for 0.2 s of virtual time (each module charged its cost)."
	@echo "Look at: the table above (packets, drops, time share per module) and results/demo/plot.png (time share, batch sizes, delay percentiles)."

test: $(TEST_STAMP) system-deps
	$(PY) -m pytest

test-slow: $(TEST_STAMP) system-deps
	$(PY) -m pytest -m slow

# ~10^6 mutated frames (each against an unreadable page) through the parser, compared with a
# reference parser, and through the network functions; ~10^5 mutated pcap/pcapng files through
# the readers (tests/fuzz; a 10^4 version runs in `make test`). FUZZ_SEED=N picks other inputs.
fuzz: $(TEST_STAMP)
	$(PY) -m pytest -m slow tests/fuzz -q -s

bench: $(TEST_STAMP)
	$(VENV)/bin/tailgate bench --markdown

# numba's on-disk cache notices when a function's own file changes, not when a compiled function it
# calls from another file does: after editing a kernel, clear the cache before measuring.
clean-cache:
	find src -name '*.nbi' -delete -o -name '*.nbc' -delete

clean: clean-cache
	rm -rf $(VENV) results .pytest_cache
