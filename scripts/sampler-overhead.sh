#!/usr/bin/env bash
# What the telemetry sampler costs decode throughput: the same bench with the sampler at 1 s,
# 100 ms and off, interleaved ROUNDS times (machine noise hits all three alike), medians.
#
#   scripts/sampler-overhead.sh [ROUNDS] [extra odai bench args]
#
# On a shared 2-core VM the run-to-run noise (~1-2 %) is larger than the 0.5 % budget; the
# per-sample cost from `cargo bench --bench telemetry` bounds the overhead more tightly.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}; shift || true
cargo build --release --quiet
odai=${CARGO_TARGET_DIR:-target}/release/odai
results=$(mktemp)
for r in $(seq "$rounds"); do
  for every in 1s 100ms off; do
    "$odai" bench --synthetic smollm2-135m:q8_0 -p 64 -n 256 --reps 1 --warmup 1 \
      --sample-interval "$every" --format json "$@" \
      | python3 -c 'import json,sys; d=json.load(sys.stdin); print(sys.argv[1], d["summary"]["decode_tps"]["mean"])' "$every" >>"$results"
  done
done
python3 - "$results" "$rounds" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
med = {k: statistics.median(float(v) for e, v in rows if e == k) for k in ("1s", "100ms", "off")}
print(f"decode tok/s, median of {sys.argv[2]} interleaved rounds")
for k in ("off", "1s", "100ms"):
    print(f"  sampler {k:>5}: {med[k]:8.2f} tok/s  overhead {100 * (1 - med[k] / med['off']):+.2f} %")
PY
rm -f "$results"
