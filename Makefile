# coolbpf: two entry points for a fresh Debian machine (as root).
#   make demo   installs what is missing, builds, shows the feature report, runs probes
#   make test   installs what is missing, then format, lint, docs and the whole test suite
CARGO ?= cargo
export COOLBPF_REQUIRE_BPF ?= 0

.PHONY: deps demo test lint doc build clean

deps:
	@scripts/install-deps.sh

build: deps
	$(CARGO) build --release -p coolbpf-cli

demo: build
	scripts/demo.sh

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

doc: deps
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --locked

test: lint doc
	$(CARGO) test --workspace --locked

clean:
	$(CARGO) clean
