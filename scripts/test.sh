#!/usr/bin/env bash
# The one command that checks the whole project on a fresh machine: test dependencies,
# formatting, lints, the release binary, every test (unit, simulation, end-to-end with real
# clients), and every fuzz target, built and run for a bounded time.
#
#   scripts/test.sh                      everything
#   BERTH_TEST_THREADS=N scripts/test.sh run N test processes at once (default 4)
#   BERTH_FUZZ_SECONDS=N scripts/test.sh fuzz each target N seconds (default 30; 0: build only)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

started=$SECONDS
step() {
    echo
    echo "==> [$((SECONDS - started))s] $*"
}

step "test dependencies"
if [[ $(id -u) -eq 0 ]]; then
    scripts/install-test-deps.sh
else
    scripts/install-test-deps.sh || {
        echo "test.sh: run scripts/install-test-deps.sh as root first" >&2
        exit 1
    }
fi

step "cargo fmt --all -- --check"
cargo fmt --all -- --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "import circles between files"
python3 scripts/import-cycles.py core/src engine/src client/src server/src benches/src tests/src

step "the README's table of source files"
python3 scripts/layout.py --check

step "cargo build --release -p berth-server"
cargo build --release -p berth-server
export BERTH_BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/berth"

# Tests build in the dev profile (dependencies optimised, see Cargo.toml): far quicker to
# compile than the LTO release profile; the end-to-end tests still drive the release binary.
# End-to-end tests mostly wait on sockets and child processes, so more test processes
# than cores keeps 2 cores busy; each test owns its server, ports and folders.
threads=${BERTH_TEST_THREADS:-4}
summary=$(mktemp)
# Where the browser tests (tests/src/browser.rs) keep their screenshots of the web pages:
# named last on success, and on failure too, when they show what went wrong.
shots="${CARGO_TARGET_DIR:-$PWD/target}/screenshots/"
trap 'rc=$?; rm -f "$summary"; if [[ $rc -ne 0 && -d $shots ]]; then echo "screenshots of the web pages: $shots"; fi' EXIT
if cargo nextest --version >/dev/null 2>&1; then
    # nextest does not run doctests: run them first, so the suite's summary comes last.
    step "cargo test --workspace --doc"
    cargo test --workspace --doc
    step "cargo nextest run --workspace (${threads} at a time)"
    cargo nextest run --workspace --no-fail-fast --test-threads "$threads" 2>&1 | tee "$summary"
else
    step "cargo test --workspace"
    cargo test --workspace --no-fail-fast -- --test-threads "$threads" 2>&1 | tee "$summary"
fi

# The same engine suite with every store's metadata in PostgreSQL (a throwaway server; each
# store its own database).
step "the engine's suite on PostgreSQL"
cargo run -q -p berth-tests --bin with-postgres -- \
    cargo test -p berth-engine --tests --no-fail-fast
# The protocol's conformance, the clients and the access tests again, each registry a
# distributed deployment: three nodes on a database and a bucket of their own (PostgreSQL and
# a three-node Garage cluster) behind a round-robin front, no sticky sessions.
step "the e2e conformance, client and access tests against three nodes on PostgreSQL and Garage"
cargo run -q -p berth-tests --bin with-postgres -- --garage \
    cargo test -p berth-tests --test e2e --no-fail-fast -- --test-threads "$threads" \
        conformance_ skopeo:: podman:: docker:: oras:: auth:: package_cli::

if [[ -d fuzz ]]; then
    if ! cargo fuzz --version >/dev/null 2>&1; then
        step "cargo install cargo-fuzz"
        cargo install cargo-fuzz --locked
    fi
    step "cargo fuzz build -s none"
    (cd fuzz && cargo fuzz build -s none)
    # Each target runs from its corpus (the committed seeds, plus what earlier runs on this
    # machine found) for a bounded time; an input that panics, aborts, takes over 10 s or
    # 2 GiB fails the run and is kept under fuzz/artifacts/TARGET/ to reproduce it with
    # `cargo fuzz run -s none TARGET fuzz/artifacts/TARGET/FILE`.
    fuzz_seconds=${BERTH_FUZZ_SECONDS:-30}
    if (( fuzz_seconds > 0 )); then
        for target in $(cd fuzz && cargo fuzz list); do
            step "cargo fuzz run -s none $target (${fuzz_seconds} s)"
            mkdir -p "fuzz/corpus/$target"
            if ! (cd fuzz && cargo fuzz run -s none "$target" -- \
                -max_total_time="$fuzz_seconds" -timeout=10 -rss_limit_mb=2048 \
                -print_final_stats=1 2>&1 | tail -n 25); then
                echo "test.sh: fuzz target $target failed; the input is under fuzz/artifacts/$target/" >&2
                exit 1
            fi
        done
    fi
fi

step "all checks passed in $((SECONDS - started))s"
echo "screenshots of the web pages: $shots"
# The test runner's own closing line, repeated last so it is what a reader sees.
grep -E '^ *Summary .* tests run|^test result:' "$summary" | tail -n 1
