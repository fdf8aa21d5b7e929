#!/usr/bin/env bash
# Checks odai's perplexity method against llama.cpp's: the test model (SmolLM2-135M Q4_1) on the
# same slice of the corpus, the same windows, scored by `odai quality` (odai's engine; candle too
# with RUNTIMES)
# and by llama-cpp-python 0.3.36 with all logits (scripts/llamacpp_perplexity.py). Passes when odai's
# perplexity is within 0.5 % of llama.cpp's. Prints both figures and the difference.
#
#   scripts/perplexity-vs-llamacpp.sh [BYTES [CTX]]    # default: the first 120000 bytes, ctx 512
#   RUNTIMES="odai candle" scripts/perplexity-vs-llamacpp.sh   # candle too (it scores a token at
#                                                              # a time: ten minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
bytes=${1:-120000} ctx=${2:-512}
model=$(scripts/fetch-test-model.sh)
corpus=$(scripts/fetch-corpus.sh)
py=$(scripts/llamacpp-venv.sh)
cargo build --release --quiet
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# A slice ending on a whole line, so neither tokenizer sees a cut UTF-8 sequence.
head -c "$bytes" "$corpus" | sed '$d' >"$tmp/text.txt"
llama=$("$py" scripts/llamacpp_perplexity.py "$model" "$tmp/text.txt" "$ctx")
echo "llama.cpp:  $llama"
status=0
for rt in ${RUNTIMES:-odai}; do
  odai=$("${CARGO_TARGET_DIR:-target}"/release/odai quality --model "$model" --runtime "$rt" --threads 2 --text "$tmp/text.txt" --ctx "$ctx" --format json)
  python3 - "$rt" "$llama" "$odai" <<'PY' || status=1
import json, sys
rt, l, o = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
p = o["perplexity"]
diff = 100 * (p["ppl"] / l["ppl"] - 1)
print(f"odai ({rt}): ppl {p['ppl']:.4f} over {p['windows']} windows, {p['scored_tokens']} scored, "
      f"{p['text_tokens']} text tokens; llama.cpp {l['ppl']:.4f} over {l['windows']} windows, "
      f"{l['scored_tokens']} scored, {l['text_tokens']} text tokens: {diff:+.3f} %")
sys.exit(0 if abs(diff) <= 0.5 else f"odai ({rt}) differs from llama.cpp by {diff:+.3f} % (limit 0.5 %)")
PY
done
exit $status
