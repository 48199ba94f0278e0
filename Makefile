# coolbpf: two entry points for a fresh Debian machine (as root).
#   make demo   installs what is missing, builds, shows the feature report, runs probes
#   make test   installs what is missing, then format, lint, docs, a bounded fuzzing run,
#               the whole Rust test suite and the Python module's pytest suite
CARGO ?= cargo
export COOLBPF_REQUIRE_BPF ?= 0

.PHONY: deps nvidia py-spy demo test lint doc fuzz python-test build clean

deps:
	@scripts/install-deps.sh

# The real NVIDIA libraries (libcudart 12 and 13, NCCL, nvcc 13) from PyPI, cached
# outside the repository (COOLBPF_NVIDIA_ROOT, default ~/.cache/coolbpf/nvidia): the GPU
# probes' tests run against them without a GPU.
nvidia: deps
	@scripts/nvidia-libs.sh

# py-spy from PyPI, cached outside the repository: the Python-frame tests compare
# coolbpf's stacks of running interpreters with it.
py-spy: deps
	@scripts/py-spy.sh

build: deps
	$(CARGO) build --release -p coolbpf-cli

demo: build
	scripts/demo.sh

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

doc: deps
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --locked

# Fuzzes the symbolizer's ELF and DWARF parsing for FUZZ_SECONDS, and its CFI compiler
# (coolbpf_symbolize::unwind) for UNWIND_FUZZ_SECONDS: no panic, no hang (10 s an input),
# no more than 2 GiB; a failing input is left in coolbpf-symbolize/fuzz/artifacts.
FUZZ_SECONDS ?= 60
UNWIND_FUZZ_SECONDS ?= 20
fuzz: deps
	CARGO="$(CARGO)" coolbpf-symbolize/fuzz/run.sh $(FUZZ_SECONDS)
	CARGO="$(CARGO)" FUZZ_TARGET=unwind_table coolbpf-symbolize/fuzz/run.sh $(UNWIND_FUZZ_SECONDS)

# Builds the Python module into .venv (maturin develop, reusing the cargo build) and runs
# its pytest suite against the real kernel.
python-test: deps
	CARGO="$(CARGO)" scripts/python-test.sh

# The C library (cdylib) is built first: the C examples' tests link against it, and
# `cargo test` builds only what Rust tests link (the rlib).
test: lint doc fuzz nvidia py-spy
	$(CARGO) build -p coolbpf-c --locked
	$(CARGO) test --workspace --locked
	CARGO="$(CARGO)" scripts/python-test.sh

clean:
	$(CARGO) clean
