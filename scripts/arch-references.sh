#!/usr/bin/env bash
# Regenerates tests/data/arch-reference.json: llama.cpp's logits (llama-cpp-python 0.3.36, CPU)
# on every synthetic fidelity case of crates/odai-engine/tests/arch_fidelity.rs and on the real test model. Run it
# after changing the synthetic generator or the cases; the suite itself needs no llama.cpp.
# Also tests/data/reference-leads.json: llama.cpp's lead at each step of the shared greedy
# reference (../shared/reference), under three configurations (scripts/reference_leads.py).
#
#   scripts/arch-references.sh
#
# llama-cpp-python comes from scripts/llamacpp-venv.sh (built once).
set -euo pipefail
cd "$(dirname "$0")/.."
py=$(scripts/llamacpp-venv.sh)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
ODAI_FIDELITY_DIR=$dir cargo test --quiet -p odai-engine --test arch_fidelity -- --ignored write_fidelity_models >&2
"$py" scripts/arch_reference.py "$dir/manifest.json" >tests/data/arch-reference.json.part
mv tests/data/arch-reference.json.part tests/data/arch-reference.json
echo "wrote tests/data/arch-reference.json" >&2
model=$(bash scripts/fetch-test-model.sh smollm2)
"$py" scripts/reference_leads.py "$model" ../shared/reference/smollm2-135m-q4_1-greedy.json \
    >tests/data/reference-leads.json.part
mv tests/data/reference-leads.json.part tests/data/reference-leads.json
echo "wrote tests/data/reference-leads.json" >&2
