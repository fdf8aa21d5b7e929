#!/usr/bin/env bash
# odai's engine against llama.cpp on every tensor type issue 7 tracks — the SmolLM2 test model as
# shipped (Q4_1) and llama.cpp's own re-quantizations of it to Q4_0, Q8_0 and Q4_K_M — and on every
# architecture issue 13 brought onto the engine: synthetic models (odai model synth, Q4_0 and
# Q4_K) of qwen2.5-0.5b, qwen3-0.6b, gemma-3-1b (262k vocabulary) and phi-3-mini, and the 1B llama
# shape, whose weights do not fit in a CPU's caches (the 135M model partly decodes from a large
# L3). Each file is measured by both engines interleaved in one run (scripts/bench-vs-llamacpp.sh:
# ROUNDS rounds, medians), and one side-by-side table is printed: decode, prefill, load, ratios.
#
#   scripts/engine-vs-llamacpp.sh [THREADS] [P] [N] [ROUNDS] [SHAPES] [DEPTHS] [CACHES] [FA]
#   scripts/engine-vs-llamacpp.sh 1,2 64,512,2048 32 3 llama-3.2-1b   # a row per threads × prompt
#   scripts/engine-vs-llamacpp.sh 2 512 32 1 llama-3.2-1b 0,4096 f16,q8_0 1   # depths, caches
#
# THREADS and P take comma lists: each model is measured at every thread count and prompt length
# (prefill of a P-token prompt, then decode after it: the context a chat turn or a document
# has), one row each. DEPTHS (default 0) and CACHES (default f16; K/V for different sides) are
# lists too: tokens already in the context before the prompt (llama-bench's -d) and the KV cache
# type both engines keep; FA (default 1: llama.cpp's own context default, flash attention "auto",
# is on for the CPU — what linked llama.cpp and llama-server run; 0 is llama-cpp-python's default,
# against which odai's long prefill looked far better than against what ships) is llama.cpp's
# flash attention (a quantized V cache needs it).
# SHAPES (default "smollm2 gemma3-270m llama-3.2-1b qwen2.5-0.5b qwen3-0.6b gemma-3-1b
# phi-3-mini") picks which rows run; "smollm2" is the real test model and its re-quantizations,
# "gemma3-270m" the real Gemma 3 270M Q4_K_M (scripts/fetch-test-model.sh), the rest synthetic.
#
# llama-cpp-python 0.3.36 comes from scripts/llamacpp-venv.sh (built once; pip compiles
# llama.cpp: several minutes). Re-quantized files are cached under target/test-models.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}; p=${2:-64}; n=${3:-64}; rounds=${4:-3}
shapes=${5:-smollm2 gemma3-270m llama-3.2-1b qwen2.5-0.5b qwen3-0.6b gemma-3-1b phi-3-mini}
depths=${6:-0}; caches=${7:-f16}; fa=${8:-1}
base=$(scripts/fetch-test-model.sh)
py=$(scripts/llamacpp-venv.sh)
cargo build --release --quiet
models=()
for shape in $shapes; do
  [ "$shape" = smollm2 ] || continue
  models+=("smollm2:Q4_1@$base")
  for q in q4_0 q8_0 q4_k_m; do
    out="target/test-models/SmolLM2-135M-Instruct.${q^^}.gguf"
    if [ ! -s "$out" ]; then
      # llama.cpp logs every tensor on stderr: kept out of the table, shown only on failure.
      log=$(mktemp)
      "$py" scripts/llamacpp_quantize.py "$base" "$out" "$q" >"$log" 2>&1 \
        || { cat "$log" >&2; rm -f "$log" "$out"; exit 1; }
      rm -f "$log"
    fi
    models+=("smollm2:${q^^}@$out")
  done
done
for shape in $shapes; do
  case $shape in smollm2) continue ;; gemma3-270m) models+=("gemma3-270m:Q4_K_M@$(scripts/fetch-test-model.sh gemma3-270m)"); continue ;; esac
  for q in q4_0 q4_k; do
    out="target/test-models/synthetic-$shape-$q.gguf"
    [ -s "$out" ] || "${CARGO_TARGET_DIR:-target}"/release/odai model synth --preset "$shape" --quant "$q" --output "$out" >/dev/null
    models+=("$shape:${q^^}@$out")
  done
done
table=$(mktemp)
trap 'rm -f "$table"' EXIT
for m in "${models[@]}"; do
  kind=${m%%@*}; file=${m#*@}
  for t in ${threads//,/ }; do
    for pp in ${p//,/ }; do
      for d in ${depths//,/ }; do
        for c in ${caches//,/ }; do
          scripts/bench-vs-llamacpp.sh "$file" "$t" "$pp" "$n" "$rounds" "$d" "$c" "$fa" \
            | awk -v k="$kind" -v t="$t" -v pp="$pp" -v d="$d" -v c="$c" \
              '$1 ~ /^(load_ms|prefill_tps|decode_tps)$/ { print k, t, pp, d, c, $1, $2, $3, $4 }' >>"$table"
        done
      done
    done
  done
done
echo "threads $threads, p=$p n=$n, depth $depths, cache $caches, llama.cpp flash attention $fa; medians of $rounds interleaved rounds (odai / llama.cpp)"
awk '
  { r = $1" "$2" "$3" "$4" "$5; v[r" "$6] = sprintf("%8.1f %8.1f %5.2f", $7, $8, $9); order[++n] = r }
  END {
    printf "%-22s %3s %6s %6s %-9s | %-24s | %-24s | %-24s\n", "model:type", "t", "p", "depth", "cache", "decode tok/s (ratio)", "prefill tok/s (ratio)", "load ms (ratio)"
    for (i = 1; i <= n; i++) { r = order[i]; if (seen[r]++) continue
      split(r, f, " ")
      printf "%-22s %3s %6s %6s %-9s | %-24s | %-24s | %-24s\n", f[1], f[2], f[3], f[4], f[5], v[r" decode_tps"], v[r" prefill_tps"], v[r" load_ms"] }
  }' "$table"
