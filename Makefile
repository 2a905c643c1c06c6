# Two entry points, both doing all setup on a fresh machine:
#   make app    install into .venv, then serve the app on http://localhost:8501
#   make test   install into .venv (and Debian's chromium), then run the whole test suite
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8501

.PHONY: app test install chromium bench

$(VENV)/.installed: requirements.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

install: $(VENV)/.installed

chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

app: install
	$(VENV)/bin/streamlit run app.py --server.address 127.0.0.1 --server.port $(PORT) --server.headless true

test: install chromium
	$(PY) -m pytest
