# sessionkit: `make demo` and `make test` are the two commands of the README.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: test demo lint typecheck docs dist bench servers clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e ".[all,test,docs,bench]"
	@touch $(STAMP)

servers:
	@./.ci/ensure-servers

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# The sdist and the wheel a release would upload, checked; tests/packaging installs this wheel
# with each extra alone into fresh venvs (SESSIONKIT_DIST tells it where the build is).
dist: $(STAMP)
	rm -rf dist
	$(PY) -m build --outdir dist .
	$(PY) -m twine check --strict dist/*

test: $(STAMP) servers lint dist
	SESSIONKIT_DIST=dist $(PY) -m pytest -n auto
	$(PY) benchmarks/report.py --check
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet -d site

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict -d site

demo: $(STAMP)
	$(PY) -m example_projects.run $(if $(STORE),--store '$(STORE)')

# Every benchmarks/bench_*.py (QUICK=1: smoke runs), then the docs' charts and tables from
# benchmarks/results/*.json. A failing script does not stop the others; make fails at the end.
bench: $(STAMP) servers
	@failed=""; for script in benchmarks/bench_*.py; do \
	  echo "== $$script"; \
	  $(PY) $$script $(if $(filter 1,$(QUICK)),--quick) || failed="$$failed $$script"; \
	done; \
	$(PY) benchmarks/report.py || failed="$$failed benchmarks/report.py"; \
	if [ -n "$$failed" ]; then echo "failed:$$failed" >&2; exit 1; fi

clean:
	rm -rf $(VENV) site dist .mypy_cache .ruff_cache .hypothesis
