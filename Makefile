# sqlite-sync: `make` builds dist/sync0.so; `make test` runs every test (`make check`: a quick
# tier); `make demo` shows two devices syncing in the sqlite3 shell; `make bench` measures
# against plain SQLite.

SO := dist/sync0.so
CARGO ?= cargo

.PHONY: all build prereqs test test-rust test-shell test-smoke check demo bench bench-quick lint clean

all: build

prereqs:
	@sh scripts/prereqs.sh

build: prereqs
	$(CARGO) build --release
	@mkdir -p dist
	@# a new file, renamed into place: processes that have the old one loaded keep it intact
	cp target/release/libsqlite_sync.so $(SO).tmp && mv $(SO).tmp $(SO)

test: build test-rust test-shell test-smoke

test-rust:
	$(CARGO) test --release

test-shell:
	sh tests/shell/run.sh $(SO)

test-smoke:
	sh tests/smoke/run.sh $(SO)

# the quick tier for the edit-test loop: every named case, 150 convergence schedules, five
# seconds of fuzzing, the shell cases (make test runs them all, and more)
check: build
	SYNC_SCHEDULES=150 SYNC_FUZZ_SECONDS=5 $(CARGO) test --release -- --skip random_seed_schedules
	sh tests/shell/run.sh $(SO)

demo: build
	@rm -rf target/demo && mkdir -p target/demo
	sqlite3 < sql/demo.sql

bench: build
	$(CARGO) bench --bench bench

bench-quick: build
	$(CARGO) bench --bench bench -- --quick

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	sh scripts/modules.sh > /dev/null || sh scripts/modules.sh

clean:
	rm -rf dist target/demo
	$(CARGO) clean
