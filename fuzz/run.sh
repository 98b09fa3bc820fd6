#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 60) from its committed seeds, one
# after another; exits non-zero on the first crash. Needs the nightly toolchain;
# installs cargo-fuzz if it is missing. Prints each target's final libFuzzer stats.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(sigv4_verify gateway_mqtt gateway_mqtt5 sts_query jwt_verify grant_expansion rule_sql)

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz

cargo +nightly fuzz build
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  log=$(mktemp)
  if ! cargo +nightly fuzz run "$target" "corpus/$target" "seeds/$target" -- \
      -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz/run.sh: $target crashed (see above; the input is under fuzz/artifacts/$target)" >&2
    exit 1
  fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  speed=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | grep -o '[0-9]*' || echo 0)
  echo "fuzz: $target: ${seconds}s, $execs executions, $speed exec/s, coverage $cov edges, 0 crashes"
  rm -f "$log"
done
