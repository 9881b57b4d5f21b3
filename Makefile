# shoal — two commands: `make run` (the main job) and `make test` (all tests).
VENV ?= .venv
PY := $(VENV)/bin/python
SHOAL := $(VENV)/bin/shoal
DATA_DIR ?= .shoal
LISTEN ?= 127.0.0.1:7070

.PHONY: install run test test-fast test-cgroup2 lint typecheck bench chaos clean

$(VENV)/.installed: pyproject.toml scripts/install-system-packages.sh
	bash scripts/install-system-packages.sh
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

# The kernel of the cgroup v2 VM test (tests/vm/), a cache outside git: fetched once.
export SHOAL_VM_KERNEL_DIR ?= /var/cache/shoal-vm/kernel

# After the packages (order-only): under make -j the two would otherwise run apt at once and
# one would fail on apt's lock. Not root: through sudo, as install-system-packages.sh does.
$(SHOAL_VM_KERNEL_DIR)/vmlinuz: | $(VENV)/.installed
	@if [ "$$(id -u)" -eq 0 ]; then bash scripts/fetch-test-kernel.sh; \
	elif command -v sudo >/dev/null 2>&1; then \
	  sudo env SHOAL_VM_KERNEL_DIR=$(SHOAL_VM_KERNEL_DIR) bash scripts/fetch-test-kernel.sh; else \
	  echo "shoal: tests/vm needs a kernel in $(SHOAL_VM_KERNEL_DIR): run make install as root" >&2; fi

install: $(VENV)/.installed $(SHOAL_VM_KERNEL_DIR)/vmlinuz

run: install
	$(PY) -m shoal.cli.quickstart --data-dir $(DATA_DIR) --listen $(LISTEN)

test: install
	$(PY) -m pytest -q -p no:cacheprovider

test-fast: install
	$(PY) -m pytest -q -p no:cacheprovider -m "not e2e"

# cgroup v2 limits on a real kernel: a qemu guest with cgroup2 only runs the sandbox tests
# (~65 s under software emulation; `make test` runs it too).
test-cgroup2: install
	$(PY) -m pytest -q -p no:cacheprovider tests/vm

lint: install
	$(VENV)/bin/ruff check src tests bench examples chaos
	$(VENV)/bin/ruff format --check src tests bench examples chaos
	$(VENV)/bin/mypy
	MYPYPATH=src:. $(VENV)/bin/mypy --strict chaos

bench: install
	for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# The reliability suite (docs/reliability.md): every fault scenario, then one summary table.
# `make chaos CHAOS_ARGS=--short` is the CI version (also run by tests/e2e/test_chaos_short.py);
# `CHAOS_ARGS="--only 1,3"` picks scenarios.
chaos: install
	$(PY) -m chaos.run $(CHAOS_ARGS)

clean:
	rm -rf $(VENV) $(DATA_DIR) build src/*.egg-info
