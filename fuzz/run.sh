#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (default 60 s each):
#   fuzz/run.sh [seconds-per-target] [target...]
# Exits non-zero if any target found a crash (a panic, abort, timeout or out-of-memory);
# the input is written to fuzz/artifacts/<target>/: add each as a regression test.
# cargo-fuzz passes unstable compiler flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain
# accept them. Targets run without a sanitizer (`-s none`): HardLight forbids `unsafe`,
# and panics, aborts and timeouts are what the targets look for.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
shift || true
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi
mkdir -p logs
crashed=()
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  echo "== $target: ${seconds}s"
  status=0
  cargo fuzz run -s none "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
    >"logs/$target.log" 2>&1 || status=$?
  grep -E "^(#[0-9]+ +DONE|Done|==|SUMMARY|INFO: Loaded)|panicked|ERROR|Test unit written" \
    "logs/$target.log" || true
  if [ "$status" -ne 0 ]; then
    echo "!! $target failed (exit $status); full output in fuzz/logs/$target.log"
    crashed+=("$target")
  fi
done
if [ ${#crashed[@]} -gt 0 ]; then
  echo "crashes found by: ${crashed[*]}"
  exit 1
fi
echo "no crashes"
