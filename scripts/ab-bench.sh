#!/usr/bin/env bash
# Two odai binaries on the same model, interleaved: A, B, A, B… for ROUNDS rounds, then the
# medians of decode, prefill and load and B's ratio to A. How a change to the engine is checked
# for a slowdown (the anchor is the binary before the change, on the same machine in the same
# minutes: the machine's noise hits both alike).
#
#   scripts/ab-bench.sh OLD_ODAI NEW_ODAI [MODEL|synthetic:PRESET:QUANT] [THREADS] [ROUNDS]
#
# Defaults: synthetic:llama-3.2-1b:q4_0 (a shape that does not fit in a CPU's caches), the
# machine's default threads, 5 rounds; p=64 n=64, one rep per run after one warm-up.
set -euo pipefail
a=${1:?usage: ab-bench.sh OLD_ODAI NEW_ODAI [MODEL] [THREADS] [ROUNDS]}
b=${2:?usage: ab-bench.sh OLD_ODAI NEW_ODAI [MODEL] [THREADS] [ROUNDS]}
model=${3:-synthetic:llama-3.2-1b:q4_0}
threads=${4:-}
rounds=${5:-5}
case "$model" in
  synthetic:*) src=(--synthetic "${model#synthetic:}") ;;
  *) src=(--model "$model") ;;
esac
args=(bench "${src[@]}" -p 64 -n 64 --reps 1 --warmup 1 --format json)
[ -n "$threads" ] && args+=(--threads "$threads")
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for r in $(seq "$rounds"); do
  for side in a b; do
    bin=$a
    [ $side = b ] && bin=$b
    "$bin" "${args[@]}" >"$out/$side-$r.json"
  done
done
python3 - "$out" "$rounds" "$model" "$a" "$b" <<'EOF'
import json, statistics, sys
out, rounds, model, a, b = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
def med(side, key):
    vals = []
    for r in range(1, rounds + 1):
        rep = json.load(open(f"{out}/{side}-{r}.json"))["reps"][0]
        vals.append(rep[key])
    return statistics.median(vals)
print(f"{model}: medians of {rounds} interleaved rounds (A = {a}, B = {b})")
print(f"{'metric':<12} {'A':>10} {'B':>10} {'B/A':>7}")
for key in ["decode_tps", "prefill_tps", "load_ms"]:
    x, y = med("a", key), med("b", key)
    print(f"{key:<12} {x:>10.1f} {y:>10.1f} {y / x:>7.3f}")
EOF
