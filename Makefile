# slsa-dist developer entry points. `make test` and `make demo` work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
# Real users bring their own torch; here the CPU build on disk must be installed first,
# or pip resolves a multi-GB CUDA build. Override with `make TORCH_SPEC=torch==2.x ...`.
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
APT_PACKAGES := swtpm swtpm-tools tpm2-tools shellcheck chromium iproute2 util-linux \
  slurmctld slurmd slurm-client munge softhsm2 opensc docker-registry

.PHONY: install system-deps js-deps lint typecheck test demo demo-cluster bench proto clean fuzz

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev,torch,ray]"
	touch $(STAMP)

install: $(STAMP)

# System packages the tests need (software TPM). Best effort: only as root with apt;
# tests that need a missing component skip on a user's machine and fail under CI=true.
system-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then \
	    echo "installing:$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	      || echo "warning: could not install$$missing"; \
	  fi; \
	else echo "not root or no apt-get: skipping system packages ($(APT_PACKAGES))"; fi

# Independent JavaScript verifiers the interop tests drive (Sigstore's @sigstore/verify),
# pinned by tests/interop/js/package-lock.json.
JS := tests/interop/js
js-deps: $(JS)/node_modules/.installed
$(JS)/node_modules/.installed: $(JS)/package.json $(JS)/package-lock.json
	@if command -v npm >/dev/null; then \
	  npm ci --prefix $(JS) --no-audit --no-fund >/dev/null && touch $@; \
	else echo "npm not found: the JavaScript interop tests skip (and fail under CI=true)"; fi

lint: $(STAMP)
	$(BIN)/ruff check slsa_dist tests bench examples tools
	$(BIN)/mypy

test: $(STAMP) system-deps js-deps lint
	$(BIN)/python -m pytest -q

demo: $(STAMP) system-deps js-deps
	PYTHONPATH=.:tests $(BIN)/python examples/demo/demo.py --out demo-out

# Root only: 3 nodes in network namespaces, each with its own TPM (examples/demo/cluster.py).
demo-cluster: $(STAMP) system-deps
	PYTHONPATH=.:tests $(BIN)/python examples/demo/cluster.py --out demo-cluster-out

bench: $(STAMP)
	@for b in bench/bench_*.py bench/reliability.py; do echo "== $$b"; PYTHONPATH=.:tests $(BIN)/python $$b || exit 1; done

proto: $(STAMP)
	$(BIN)/python tools/protogen.py

clean:
	rm -rf $(VENV) demo-out demo-cluster-out .pytest_cache .mypy_cache .ruff_cache

# The extended fuzz run: 10,000 generated inputs per property, and 10,000 sequences of
# the adversary node against a real coordinator (~35 minutes on 2 cores; outside
# `make test`).
fuzz: $(STAMP)
	SLSA_FUZZ_EXAMPLES=10000 $(BIN)/python -m pytest -q tests/unit/test_fuzz.py \
	  tests/security/test_adversary.py
