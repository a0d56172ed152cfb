#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit/property/namespace tests and the QEMU
# end-to-end tests. Installs what it needs first. Run as root (network namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
start=$(date +%s)

scripts/setup.sh

say "cargo fmt --check"
cargo fmt --all -- --check

say "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --all-features -- -D warnings

say "cargo check of the fuzz targets (scripts/fuzz.sh runs them)"
cargo check --manifest-path fuzz/Cargo.toml --bins

scripts/lab-prepare.sh

say "cargo test: unit, property, namespace and QEMU end-to-end tests"
log=target/test-output.log
set +e
LAB_ARTIFACTS="$PWD/target/lab" cargo test --workspace --no-fail-fast --features lab/e2e -- --test-threads=2 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
passed=$(grep -Eo '^test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed;' "$log" | awk '{s+=$1} END {print s+0}')
say "cargo test finished in $(( $(date +%s) - start )) s"
echo "$passed passed, $failed failed"
exit "$rc"
