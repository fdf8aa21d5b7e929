#!/usr/bin/env bash
# Makes (once per CPU feature level) the scratch venv with llama-cpp-python 0.3.36 that the
# comparison scripts use, and prints its python. pip compiles llama.cpp: several minutes the
# first time. Built with GGML_NATIVE=OFF (pip's default -march=native build segfaults on its first
# eval on AMX machines) and the AMX kernels off, but with every AVX-512 and VNNI extension this CPU
# has switched on, so odai is measured against llama.cpp at its best here; the venv's name carries
# the level, so a machine without AVX-512 never runs a build that needs it (and pip's wheel cache,
# which keys on the version alone, is bypassed).
#
#   py=$(scripts/llamacpp-venv.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
has() { [[ $flags == *" $1 "* ]]; }
level=avx2 isa="-DGGML_AVX512=OFF"
if has avx512f && has avx512bw && has avx512vl; then
  level=avx512 isa="-DGGML_AVX512=ON"
  has avx512_vnni && { level+=-vnni; isa+=" -DGGML_AVX512_VNNI=ON"; }
  has avx512vbmi && isa+=" -DGGML_AVX512_VBMI=ON"
  has avx512_bf16 && isa+=" -DGGML_AVX512_BF16=ON"
fi
has avx_vnni && { level+=-avxvnni; isa+=" -DGGML_AVX_VNNI=ON"; }
venv=target/llamacpp-venv-$level
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import llama_cpp' 2>/dev/null; then
  python3 -m venv "$venv" >&2
  launcher=""
  command -v ccache >/dev/null && launcher="-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache"
  CMAKE_ARGS="$launcher -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON $isa -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" \
    "$venv/bin/pip" install -q --no-cache-dir --no-binary llama-cpp-python llama-cpp-python==0.3.36 numpy >&2
fi
echo "$PWD/$venv/bin/python"
