#!/usr/bin/env bash
# Builds llama.cpp's real `llama-server` (and `llama-bench` beside it) once per machine, for the
# `openai` runtime's tests (a real OpenAI-compatible server on 127.0.0.1, not a stand-in). Prints
# the server's path.
#
# It is not packaged anywhere odai can reach, and llama-cpp-sys-2 (the linked runtime) leaves
# tools/server and tools/llama-bench out of its crate; the llama-cpp-python 0.3.36 sdist on PyPI
# vendors the whole of llama.cpp (the same llama.cpp that wrote ../shared/reference's ids). Built
# with the flags .cargo/config.toml gives the linked runtime: GGML_NATIVE=OFF and x86-64-v3
# (AVX, AVX2, FMA, F16C, BMI2), no AVX-512 or AMX, no OpenMP, static: the binary must run on every
# x86-64 machine the cache is reused on (a `-march=native` llama.cpp segfaults on its first eval
# on some AMX machines here). About 20 CPU-minutes the first time; a change of flags rebuilds it.
#
#   scripts/build-llama-server.sh     # -> ~/.cache/odai-test/llama-server-0.3.36/llama-server
#
# ODAI_TEST_CACHE moves the cache (default ~/.cache/odai-test); it lives outside the clone so a
# fresh clone on the same machine reuses it.
set -euo pipefail
version=0.3.36
cache=${ODAI_TEST_CACHE:-$HOME/.cache/odai-test}
out=$cache/llama-server-$version
bin=$out/llama-server
flags=(-DCMAKE_BUILD_TYPE=Release -DLLAMA_USE_PREBUILT_UI=OFF
  -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
  -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
  -DGGML_OPENMP=OFF -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF)
if [ -x "$bin" ] && [ -x "$out/llama-bench" ] && [ "$(cat "$out/flags" 2>/dev/null)" = "${flags[*]}" ] &&
  "$bin" --version >/dev/null 2>&1; then
  echo "$bin"
  exit 0
fi
command -v cmake >/dev/null || { echo "build-llama-server.sh: cmake is needed (apt-get install cmake)" >&2; exit 1; }
mkdir -p "$cache"
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --no-deps --no-binary :all: --disable-pip-version-check \
  "llama-cpp-python==$version" -d "$work" >&2
tar -xzf "$work"/llama_cpp_python-$version.tar.gz -C "$work"
src=$work/llama_cpp_python-$version/vendor/llama.cpp
launcher=()
if command -v ccache >/dev/null; then
  # A rebuild (a new cache directory, a wiped build) then costs seconds, not 20 CPU-minutes.
  export CCACHE_DIR=${CCACHE_DIR:-$cache/ccache} CCACHE_BASEDIR=$work CCACHE_NOHASHDIR=1
  launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
cmake -S "$src" -B "$work/b" "${launcher[@]}" "${flags[@]}" >"$work/cmake.log" 2>&1 \
  || { tail -30 "$work/cmake.log" >&2; exit 1; }
cmake --build "$work/b" --target llama-server llama-bench -j "$(nproc)" >"$work/build.log" 2>&1 \
  || { tail -30 "$work/build.log" >&2; exit 1; }
mkdir -p "$out.part"
cp "$work/b/bin/llama-server" "$work/b/bin/llama-bench" "$out.part/"
printf '%s\n' "${flags[*]}" >"$out.part/flags"
rm -rf "$out"
mv "$out.part" "$out"
echo "$bin"
