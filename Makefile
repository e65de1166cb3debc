# uhi: the two set-up commands are `make demo` and `make test`; both build .venv themselves.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO   ?= demo-out

.PHONY: demo test bench lint venv clean readme-config

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	@# compile the forecast's numba kernels into numba's cache now (about 4 s; docs/forecast.md),
	@# so the first demo's forecast loads them instead
	$(PY) -c "import uhi.stats.ets"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/uhi demo $(DEMO) --run --force
	$(VENV)/bin/uhi scenario $(DEMO)/config.yaml --changes configs/demo-greening.geojson
	$(VENV)/bin/uhi plan $(DEMO)/config.yaml --budget 250000
	$(VENV)/bin/uhi report $(DEMO)/config.yaml --no-basemap
	@echo
	@echo "demo outputs: $(DEMO)/workspace (open $(DEMO)/workspace/report/report.html in a browser)"

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

bench: $(STAMP)
	$(PY) bench/run.py

lint: $(STAMP)
	$(VENV)/bin/ruff check uhi tests bench
	$(VENV)/bin/mypy uhi

readme-config: $(STAMP)
	$(PY) -c "from pathlib import Path; from uhi.config_reference import update_readme; update_readme(Path('README.md'))"

clean:
	rm -rf $(DEMO) build dist *.egg-info .pytest_cache
