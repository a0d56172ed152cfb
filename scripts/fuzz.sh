#!/usr/bin/env bash
# Runs the fuzz targets (fuzz/fuzz_targets/*.rs) with libFuzzer through cargo-fuzz.
#   scripts/fuzz.sh [TARGET|all] [SECONDS per target, default 60]
# cargo-fuzz needs nightly flags; the machine has one stable toolchain, so RUSTC_BOOTSTRAP=1
# lets it pass them. Crashes land in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
target=${1:-all}
secs=${2:-60}
if ! command -v cargo-fuzz >/dev/null; then
  say "installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
if [[ $target == all ]]; then
  mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v lease-appliance-fuzz)
else
  targets=("$target")
fi
for t in "${targets[@]}"; do
  say "fuzzing $t for $secs s"
  RUSTC_BOOTSTRAP=1 cargo fuzz run "$t" -- -max_total_time="$secs" -rss_limit_mb=2048
done
say "no crash in ${#targets[@]} target(s)"
