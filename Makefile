# Likeness developer targets. The two README commands need only python3;
# these are conveniences on top of the same venv.
PY ?= .venv/bin/python
PROTOS := $(wildcard proto/likeness/v1/*.proto)

.PHONY: venv proto proto-check test lint bench serve clean mutation mutation-known

venv:
	python3 -m venv .venv && .venv/bin/pip install -q --upgrade pip && .venv/bin/pip install -q -e '.[dev]'

# Regenerates the committed stubs in likeness/v1 with the pinned grpcio-tools.
proto:
	$(PY) -m likeness.protogen

# Lists breaking changes of proto/likeness/v1 against the last release.
proto-check:
	$(PY) -m likeness.protocompat check

test:
	bash .ci/run

lint:
	$(PY) -m ruff check . && $(PY) -m ruff format --check . && $(PY) -m mypy

bench:
	$(PY) -m bench.run_all

# Mutation testing, outside CI (tens of minutes on 2 cores; docs/TESTING.md):
# cosmic-ray over authorization, validation, matching, selection, the
# quality gates and the stores' write paths, each against its own test
# files, in a copy of the tree (SESSIONS="auth validate" for some only).
mutation:
	PY=$(PY) bash mutation/run_cosmic_ray.sh $(SESSIONS)

# The issue-25 mutations, each put in alone against the tests that catch it.
mutation-known:
	PYTHONPATH=. nice -n 10 $(PY) mutation/known.py

serve:
	.venv/bin/likeness serve all

clean:
	rm -rf .mypy_cache .ruff_cache .pytest_cache build dist *.egg-info
