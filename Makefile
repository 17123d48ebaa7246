# One entry point for developers and CI (.ci/run calls `make test`).
PY ?= python3
UV := $(PY) -m uv

.PHONY: deps dev dev-release test test-rust test-python lint fmt bench fuzz

# Test dependencies: every optional conversion library is installed, so no io test is skipped
# (torch is the CPU-capable PyPI wheel; moto's server gives the S3 tests a real local endpoint).
IO_DEPS := pyarrow h5py zarr pandas safetensors torch ml_dtypes s3fs fsspec tqdm "moto[server]" boto3 zstandard "ray[data]" fusepy

deps:
	@# strace: the durability test reads the real system calls (tests/test_durability.py).
	@command -v strace >/dev/null 2>&1 || apt-get install -y -q strace >/dev/null 2>&1 \
		|| (apt-get update -q >/dev/null && apt-get install -y -q strace >/dev/null) \
		|| echo "warning: strace could not be installed; tests/test_durability.py will skip"
	@# fusermount and libfuse: tests/test_fuse.py runs a store on a FUSE mount.
	@(command -v fusermount >/dev/null 2>&1 && ldconfig -p | grep -q libfuse.so.2) \
		|| apt-get install -y -q fuse3 libfuse2 >/dev/null 2>&1 \
		|| (apt-get update -q >/dev/null && apt-get install -y -q fuse3 libfuse2 >/dev/null) \
		|| echo "warning: FUSE could not be installed; tests/test_fuse.py will skip"
	$(PY) -m pip install -q uv
	$(UV) pip install --python $(PY) -q maturin numpy pytest pytest-timeout hypothesis "dask[array]" distributed ruff mypy $(IO_DEPS)

# Editable install of the package with a fast (non-LTO) build of the native module.
dev:
	$(PY) -m pip install -q --no-build-isolation --no-deps -e . --config-settings=build-args="--profile=dev"

# Editable install with the optimised (LTO) native module, for benchmarks.
dev-release:
	$(PY) -m pip install -q --no-build-isolation --no-deps -e . --config-settings=build-args="--profile=release"

test: deps dev test-rust test-python lint

test-rust:
	cargo test -p numpack

test-python:
	$(PY) -m pytest -q -p no:cacheprovider

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" cargo doc --no-deps -p numpack
	$(PY) -m ruff check python tests benchmarks
	$(PY) -m ruff format --check python tests benchmarks
	$(PY) -m mypy python/numpack
	$(PY) -m mypy.stubtest numpack._core --allowlist .mypy-stubtest-allowlist

fmt:
	cargo fmt --all
	$(PY) -m ruff format python tests benchmarks

bench:
	$(PY) benchmarks/storage_bench.py

# Fuzzing (nightly toolchain and cargo-fuzz; not part of `make test`, which replays the saved
# corpus as a plain test). FUZZ_SECONDS per target.
FUZZ_SECONDS ?= 240
FUZZ_TARGETS := metadata bitmap lock_and_undo journal package csv index
fuzz:
	rustup toolchain list | grep -q nightly || rustup toolchain install nightly --profile minimal
	command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz
	cd crates/numpack/fuzz && for t in $(FUZZ_TARGETS); do \
		cargo +nightly fuzz run -O $$t corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) \
			-rss_limit_mb=2048 -timeout=10 -max_len=65536 || exit 1; \
	done
