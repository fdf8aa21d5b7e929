#!/usr/bin/env bash
# odai vs llama.cpp on the same GGUF, same threads, same prompt and generation lengths, measured
# interleaved in one run (so machine noise hits both), ROUNDS rounds, medians.
#
#   scripts/bench-vs-llamacpp.sh [MODEL.gguf] [THREADS] [P] [N] [ROUNDS] [DEPTH] [CACHE] [FA]
#
# DEPTH (default 0): tokens filled untimed before the prompt (llama-bench's -d): the prefill is
# then `ppP @ dDEPTH` and the decode after it at DEPTH + P. CACHE (default f16): both engines' KV
# cache type, or K/V (q8_0/f16). FA (default 1, llama.cpp's own default on the CPU;
# 0 turns it off): llama.cpp's flash attention (a quantized V cache needs it).
#
# llama-cpp-python 0.3.36 comes from scripts/llamacpp-venv.sh (built once; pip compiles
# llama.cpp: several minutes the first time). Default model: the SmolLM2 test model.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-$(scripts/fetch-test-model.sh)}
threads=${2:-2}; p=${3:-64}; n=${4:-64}; rounds=${5:-3}; depth=${6:-0}; cache=${7:-f16}; fa=${8:-1}
ctk=${cache%%/*}; ctv=${cache#*/}
py=$(scripts/llamacpp-venv.sh)
cargo build --release --quiet
odai=${CARGO_TARGET_DIR:-target}/release/odai
results=$(mktemp)
for r in $(seq "$rounds"); do
  "$odai" bench --model "$model" --runtime odai --threads "$threads" -p "$p" -n "$n" -d "$depth" \
    -ctk "$ctk" -ctv "$ctv" --reps 1 --warmup 1 --format json \
    | python3 -c 'import json,sys; d=json.load(sys.stdin); s=d["summary"]; print(json.dumps({"engine":"odai","load_ms":s["load_ms"]["mean"],"prefill_tps":s["prefill_tps"]["mean"],"decode_tps":s["decode_tps"]["mean"]}))' >>"$results"
  "$py" scripts/llamacpp_bench.py "$model" --threads "$threads" -p "$p" -n "$n" -d "$depth" \
    --ctk "$ctk" --ctv "$ctv" --fa "$fa" \
    | python3 -c 'import json,sys; d=json.load(sys.stdin); d["engine"]="llama.cpp"; print(json.dumps(d))' >>"$results"
done
python3 - "$results" "$model" "$threads" "$p" "$n" "$rounds" "$depth" "$cache" "$fa" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
med = lambda e, k: statistics.median(r[k] for r in rows if r["engine"] == e)
print(f"{sys.argv[2]}: {sys.argv[3]} threads, p={sys.argv[4]} n={sys.argv[5]} d={sys.argv[7]}, "
      f"{sys.argv[8]} cache, llama.cpp flash attention {sys.argv[9]}, median of {sys.argv[6]} interleaved rounds")
print(f"{'metric':<14}{'odai':>12}{'llama.cpp':>12}{'odai/llama.cpp':>16}")
for k in ["load_ms", "prefill_tps", "decode_tps"]:
    o, l = med("odai", k), med("llama.cpp", k)
    print(f"{k:<14}{o:>12.1f}{l:>12.1f}{o / l:>16.2f}")
PY
rm -f "$results"
