# chaosbed: the commands a user types. `make setup` first; it is idempotent.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
PYTHON ?= python3

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: $(VENV)/.installed ## install everything: venv, Docker engine, images (idempotent)
	$(BIN)/ansible-playbook playbooks/setup.yml

# Re-run when the host's Debian packages change too (scripts/bootstrap-host.sh), not only the Python ones.
$(VENV)/.installed: pyproject.toml scripts/bootstrap-host.sh
	./scripts/bootstrap-host.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

up: setup ## provision the pipeline on the local Docker engine
	$(BIN)/ansible-playbook playbooks/site.yml

# The live progress (`tools chaos watch`) runs in the background and waits for the run to appear; the
# playbook stays in the foreground (Ctrl-C reaches the experiment, which restores) and sets the exit code.
chaos: setup ## run the default chaos experiment end to end, showing its live progress
	@$(BIN)/tools chaos watch --wait --pid $$$$ --runs-root $(CURDIR)/runs & watch=$$!; \
	$(BIN)/ansible-playbook playbooks/chaos.yml $(ARGS); rc=$$?; \
	kill $$watch 2>/dev/null; wait $$watch 2>/dev/null; exit $$rc

down: ## remove the pipeline (volumes kept; PURGE=1 removes them)
	$(BIN)/ansible-playbook playbooks/teardown.yml $(if $(PURGE),-e purge=true,)

lint: ## ruff and ansible-lint
	$(BIN)/ruff check tools tests spark_job benchmarks
	$(BIN)/ruff format --check tools tests spark_job benchmarks
	$(BIN)/ansible-lint

bench: ## measure ceilings, max sustained rate, latency, recovery (benchmarks/results/); ARGS=--skip-...; then both Spark deployments (DEPLOY_ARGS=--smoke)
	$(PY) benchmarks/bench.py $(ARGS)
	$(PY) benchmarks/deployments.py $(DEPLOY_ARGS)

test: ## lint, then every test against the real components, then the molecule scenarios
	$(MAKE) lint
	$(BIN)/pytest -p no:cacheprovider --durations=20 tests
	$(MAKE) molecule MOLECULE_SCENARIOS="$(MOLECULE_TEST_SCENARIOS)"

# Molecule scenarios (molecule/<name>): `systemd` installs the pipeline on five systemd "VMs" (the VM
# target, ~9 min on 2 cores), `docker` runs every role of site.yml as a second pipeline on the local
# engine (~2.5 min). `make test` runs the VM target (systemd; the docker scenario repeats tests/pipeline), `make molecule` both.
MOLECULE_SCENARIOS ?= docker systemd
MOLECULE_TEST_SCENARIOS ?= systemd
molecule: ## molecule test for every scenario (MOLECULE_SCENARIOS="systemd" for one)
	set -eo pipefail; for s in $(MOLECULE_SCENARIOS); do log=$$(mktemp); \
	  PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/molecule test -s $$s 2>&1 | tee $$log \
	  || { echo "molecule $$s failed; its failed tasks (the full log is above):"; \
	       grep -E -B4 -A14 'fatal: |failed: |FAILED!' $$log | tail -120; rm -f $$log; exit 1; }; \
	  rm -f $$log; done

.PHONY: help setup up chaos down lint test molecule bench
