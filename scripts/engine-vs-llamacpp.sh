#!/usr/bin/env bash
# odai's engine against llama.cpp on every tensor type issue 7 tracks: the SmolLM2 test model as
# shipped (Q4_1) and llama.cpp's own re-quantizations of it to Q4_0, Q8_0 and Q4_K_M. Each file is
# measured by both engines interleaved in one run (scripts/bench-vs-llamacpp.sh: ROUNDS rounds,
# medians), and one side-by-side table is printed: decode, prefill, load and the ratios.
#
#   scripts/engine-vs-llamacpp.sh [THREADS] [P] [N] [ROUNDS]
#
# llama-cpp-python 0.3.36 comes from scripts/llamacpp-venv.sh (built once; pip compiles
# llama.cpp: several minutes). Re-quantized files are cached under target/test-models.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}; p=${2:-64}; n=${3:-64}; rounds=${4:-3}
base=$(scripts/fetch-test-model.sh)
py=$(scripts/llamacpp-venv.sh)
models=("Q4_1:$base")
for q in q4_0 q8_0 q4_k_m; do
  out="target/test-models/SmolLM2-135M-Instruct.${q^^}.gguf"
  if [ ! -s "$out" ]; then
    # llama.cpp logs every tensor on stderr: kept out of the table, shown only on failure.
    log=$(mktemp)
    "$py" scripts/llamacpp_quantize.py "$base" "$out" "$q" >"$log" 2>&1 \
      || { cat "$log" >&2; rm -f "$log" "$out"; exit 1; }
    rm -f "$log"
  fi
  models+=("${q^^}:$out")
done
table=$(mktemp)
trap 'rm -f "$table"' EXIT
for m in "${models[@]}"; do
  kind=${m%%:*}; file=${m#*:}
  scripts/bench-vs-llamacpp.sh "$file" "$threads" "$p" "$n" "$rounds" \
    | awk -v k="$kind" '$1 ~ /^(load_ms|prefill_tps|decode_tps)$/ { print k, $1, $2, $3, $4 }' >>"$table"
done
echo "SmolLM2-135M, $threads threads, p=$p n=$n, medians of $rounds interleaved rounds (odai / llama.cpp)"
awk '
  { v[$1" "$2] = sprintf("%8.1f %8.1f %5.2f", $3, $4, $5); kinds[$1] = 1; order[++n] = $1 }
  END {
    printf "%-8s | %-24s | %-24s | %-24s\n", "type", "decode tok/s (ratio)", "prefill tok/s (ratio)", "load ms (ratio)"
    for (i = 1; i <= n; i++) { k = order[i]; if (seen[k]++) continue
      printf "%-8s | %-24s | %-24s | %-24s\n", k, v[k" decode_tps"], v[k" prefill_tps"], v[k" load_ms"] }
  }' "$table"
