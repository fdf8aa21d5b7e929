#!/usr/bin/env bash
# Makes (once) the scratch venv with llama-cpp-python 0.3.36 that the comparison scripts use,
# and prints its python. pip compiles llama.cpp: several minutes the first time. Built with
# GGML_NATIVE=OFF and AVX2-level flags: pip's default -march=native build segfaults on its first
# eval on AMX machines, and one build then serves every CPU of the x86-64-v3 level.
#
#   py=$(scripts/llamacpp-venv.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/llamacpp-venv-v3
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import llama_cpp' 2>/dev/null; then
  python3 -m venv "$venv" >&2
  launcher=""
  command -v ccache >/dev/null && launcher="-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache"
  CMAKE_ARGS="$launcher -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" \
    "$venv/bin/pip" install -q --no-binary llama-cpp-python llama-cpp-python==0.3.36 numpy >&2
fi
echo "$PWD/$venv/bin/python"
