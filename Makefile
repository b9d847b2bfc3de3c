# Two commands: `make run` starts the dashboard, `make test` runs every test.
# Both create .venv and install requirements.txt on first use (about 2 minutes).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# The stamp names a checksum of both requirement files, so editing either reinstalls.
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt requirements-test.txt | cksum | cut -d' ' -f1)
PORT   ?= 8501

.PHONY: run serve test bench load warm chromium nginx clean-cache

$(STAMP): requirements.txt requirements-test.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-test.txt
	rm -f $(VENV)/.installed-* && touch $@

# The browser test drives Debian's Chromium (never `playwright install`: it downloads).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing Debian's chromium for the browser test"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

# The replica test and `make serve` put Debian's nginx in front of several Streamlit processes.
nginx:
	@command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || { \
	  echo "Installing Debian's nginx for the replicas"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq nginx >/dev/null; }

run: $(STAMP)
	$(PY) -m streamlit run app.py --server.port $(PORT)

# A class on several processes: REPLICAS Streamlit processes (default 2) on 127.0.0.1:8601.. behind
# nginx on 127.0.0.1:$(PORT), sticky per browser (scripts/replicas.py). Ctrl-C stops them all.
serve: $(STAMP) nginx
	$(PY) scripts/replicas.py --replicas $(or $(REPLICAS),2) --port $(PORT)

test: $(STAMP) chromium nginx
	$(PY) -m pytest

bench: $(STAMP) chromium
	$(PY) benchmarks/bench.py

# A class on one server: N simulated students (websocket sessions) against the app on loopback.
# STUDENTS=1,10,30,60 for more; ARGS="--url http://127.0.0.1:8501 --pid N" for a running server;
# REPLICAS=1,2,4 runs the same classes through nginx in front of that many replicas, one set after another.
STUDENTS ?= 1,10,30
load: $(STAMP) $(if $(REPLICAS),nginx)
	$(PY) benchmarks/load.py --students $(STUDENTS) $(if $(REPLICAS),--replicas $(REPLICAS)) $(ARGS)

# Before a class: train and save every model the pages and lessons use (the Lessons page's
# "Prepare the class" button does the same), so the first visitor waits for nothing.
warm: $(STAMP)
	$(PY) scripts/warm.py

clean-cache:
	rm -rf $${XDG_CACHE_HOME:-$$HOME/.cache}/compression-lens/models
