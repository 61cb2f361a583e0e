# sqlite-sync: `make` builds dist/sync0.so; `make test` runs every test (`make check`: a quick
# tier); `make demo` shows two devices syncing in the sqlite3 shell; `make bench` measures
# against plain SQLite.

# The library's name by platform (only Linux is built and tested; the macOS and Windows names are
# those platforms' usual ones): cargo writes libsqlite_sync.<ext> (sqlite_sync.dll on Windows).
UNAME_S := $(shell uname -s)
ifeq ($(UNAME_S),Darwin)
LIBEXT := dylib
CARGO_LIB := libsqlite_sync.dylib
else ifneq ($(filter MINGW% MSYS% CYGWIN%,$(UNAME_S)),)
LIBEXT := dll
CARGO_LIB := sqlite_sync.dll
else
LIBEXT := so
CARGO_LIB := libsqlite_sync.so
endif

SO := dist/sync0.$(LIBEXT)
CARGO ?= cargo

.PHONY: all build prereqs test test-rust test-shell test-smoke check demo bench bench-quick lint clean dist test-dist

all: build

prereqs:
	@sh scripts/prereqs.sh

build: prereqs
	$(CARGO) build --release
	@mkdir -p dist
	@# a new file, renamed into place: processes that have the old one loaded keep it intact
	cp target/release/$(CARGO_LIB) $(SO).tmp && mv $(SO).tmp $(SO)

test: build test-rust test-shell test-smoke test-dist

# the tests' databases go to memory (/dev/shm) where it has 2 GiB free (a test writes 100 MB
# values into several databases): they commit thousands of times, and a disk's fsyncs made the
# suite take twice as long. A TMPDIR set by you is used as it is (TEST_TMPDIR=/tmp: a disk)
ifdef TMPDIR
TEST_TMPDIR ?= $(TMPDIR)
else
TEST_TMPDIR ?= $(shell [ -d /dev/shm ] && [ -w /dev/shm ] && \
	[ "$$(df -Pk /dev/shm | awk 'NR == 2 { print $$4 }')" -ge 2097152 ] 2>/dev/null && \
	echo /dev/shm || echo /tmp)
endif

# the test programs themselves are built at opt-level 1 (`cargo test --release` builds them with
# the bench profile): they spend their time in SQLite and the library, both built for release,
# and the build of twenty of them at opt-level 3 took as long as running them
TEST_BUILD = CARGO_PROFILE_BENCH_OPT_LEVEL=1

test-rust:
	$(TEST_BUILD) TMPDIR="$(TEST_TMPDIR)" $(CARGO) test --release

test-shell:
	sh tests/shell/run.sh $(SO)

test-smoke:
	sh tests/smoke/run.sh $(SO)

# packages in dist/: the Python wheel, the npm tarball, the library's .tar.gz and its .sha256
# (packaging/; package name sqlite-sync-ext)
dist: build
	sh packaging/build.sh $(SO) dist

# installs each package as a user would and syncs two devices through it (tests/dist/run.sh)
test-dist: dist
	sh tests/dist/run.sh dist

# the quick tier for the edit-test loop: every named case, 150 convergence schedules, five
# seconds of fuzzing, the shell cases (make test runs them all, and more)
check: build
	$(TEST_BUILD) SYNC_SCHEDULES=150 SYNC_FUZZ_SECONDS=5 TMPDIR="$(TEST_TMPDIR)" $(CARGO) test --release -- --skip random_seed_schedules
	sh tests/shell/run.sh $(SO)

demo: build
	@rm -rf target/demo && mkdir -p target/demo
	sqlite3 < sql/demo.sql

bench: build
	$(CARGO) bench --bench bench

bench-quick: build
	$(CARGO) bench --bench bench -- --quick

# clippy in the release profile: it reuses the build scripts' work (bindgen, SQLite's C) of
# `make test` instead of doing them again for the debug profile
lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --release --all-targets -- -D warnings
	sh scripts/modules.sh > /dev/null || sh scripts/modules.sh

clean:
	rm -rf dist target/demo target/dist-build target/dist-test target/dist-cache
	$(CARGO) clean
