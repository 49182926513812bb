# tickflow front door. `make run` and `make test` install what they need
# (scripts/deps.sh, apt-get, quiet when already installed), build and go.
.PHONY: all build asan fuzz run test test-unit bench deps clean kafka
SHELL := /bin/bash
JOBS ?= $(shell nproc)
PG_URL ?= $(shell scripts/pg-local url)

all: build

deps:
	@scripts/deps.sh build

build: deps
	@cmake -S . -B build -G "Unix Makefiles" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build build -j $(JOBS) -- --no-print-directory

asan:
	@cmake -S . -B build-asan -G "Unix Makefiles" -DCMAKE_BUILD_TYPE=Debug -DTF_SANITIZE=ON >/dev/null
	@cmake --build build-asan -j $(JOBS) -- --no-print-directory

fuzz:
	@CC=clang cmake -S . -B build-fuzz -G "Unix Makefiles" -DCMAKE_BUILD_TYPE=Debug -DTF_FUZZ=ON >/dev/null
	@cmake --build build-fuzz -j $(JOBS) --target fuzzers -- --no-print-directory

# The main job: local PostgreSQL + everything in one process.
run: build
	@scripts/pg-local start >/dev/null
	@echo "tickflow: PostgreSQL at $(PG_URL) (data in var/pg; stop it with scripts/pg-local stop)"
	@build/tickflow run --pg-url "$(PG_URL)"

# Every test, under ASan+UBSan, against real PostgreSQL and Kafka.
test:
	@scripts/deps.sh test
	@$(MAKE) --no-print-directory asan fuzz
	@scripts/kafka-local fetch
	@# a test that fails is run once more before the run fails (the shared 2-core VM makes a few
	@# timing-sensitive tests flaky under load); a broken test fails both times
	@cd build-asan && ctest --output-on-failure -j 2 --timeout 900 --repeat until-pass:2 $(CTEST_ARGS)

bench: build
	@for b in bench/bench-*.sh; do $(MAKE) --no-print-directory bench-$$(basename $$b .sh | sed s/^bench-//) || exit 1; done

bench-%: build
	@scripts/deps.sh bench
	@bench/bench-$*.sh

kafka:
	@scripts/deps.sh kafka
	@scripts/kafka-local start

clean:
	rm -rf build build-asan build-fuzz
