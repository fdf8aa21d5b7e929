#!/usr/bin/env bash
# Builds llama.cpp's real `llama-server` (and `llama-bench` and `llama-tokenize` beside it) once
# per machine, for the `openai` runtime's tests (a real OpenAI-compatible server on 127.0.0.1, not
# a stand-in) and the tokenizer tests' reference ids. Prints the server's path.
#
# llama.cpp's engine is compiled once per machine: by llama-cpp-sys-2 (the linked runtime), whose
# build script installs libllama, libggml and their CMake packages into its OUT_DIR. The tools link
# that build: the same llama.cpp sources, compiled with the same flags (.cargo/config.toml's
# GGML_*: GGML_NATIVE off, x86-64-v3, no AVX-512 or AMX, no OpenMP, static), so a figure from
# llama-server and one from the linked runtime come from one engine. Only the tools' own sources
# are compiled here (server, common, mtmd, llama-bench, llama-tokenize, cpp-httplib): llama-cpp-sys-2 leaves
# tools/server and tools/llama-bench out of its crate, so they come from the llama-cpp-python
# sdist on PyPI (the whole of llama.cpp, at a neighbouring commit: its llama.h differs from the
# crate's in two state-file version numbers only, and the crate's engine is a superset of the
# staging API the tools call). The sdist's own engine sources are replaced by the crate's before
# anything is configured, so nothing of them is compiled.
#
#   scripts/build-llama-server.sh     # -> ~/.cache/odai-test/llama-server-<crate>-<sdist>/llama-server
#
# It asks cargo for llama-cpp-sys-2's build by building what test.sh's test stage runs (`cargo test
# --workspace --features odai/llama-cpp --no-run`): the server then links the very build of
# llama.cpp the linked runtime's tests use. (Other cargo arguments can resolve other features for
# the build tools and give llama-cpp-sys-2 another OUT_DIR: llama.cpp compiled again.)
# ODAI_TEST_CACHE moves the cache (default ~/.cache/odai-test); it lives outside the clone so a
# fresh clone on the same machine reuses it.
set -euo pipefail
cd "$(dirname "$0")/.."
sdist=0.3.36
cache=${ODAI_TEST_CACHE:-$HOME/.cache/odai-test}
# The tools' own sources (the server's HTTP and JSON, common's argument parsing, llama-bench's
# loop) at -O1, to spend less of a cold machine's compile on them: they only call into
# llama.cpp's engine, which comes optimised from the linked runtime's build, and their own speed
# is not what the tests measure.
flags=(-DCMAKE_BUILD_TYPE=Release "-DCMAKE_CXX_FLAGS_RELEASE=-O1 -DNDEBUG" "-DCMAKE_C_FLAGS_RELEASE=-O1 -DNDEBUG"
  -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_USE_SYSTEM_GGML=ON
  -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF)
command -v cmake >/dev/null || { echo "build-llama-server.sh: cmake is needed (apt-get install cmake)" >&2; exit 1; }
mkdir -p "$cache"

# llama-cpp-sys-2's sources and its build script's OUT_DIR, from cargo's own messages.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --features odai/llama-cpp --no-run --message-format=json >"$log" 2>"$log.err" || {
  tail -30 "$log.err" >&2
  echo "build-llama-server.sh: cargo could not build llama-cpp-sys-2 (the linked runtime's llama.cpp)" >&2
  exit 1
}
rm -f "$log.err"
read -r crate_src out_dir crate_version < <(python3 - "$log" <<'EOF'
import json, os, sys
src = out = version = None
for line in open(sys.argv[1]):
    m = json.loads(line)
    pkg = m.get("package_id", "")
    if "llama-cpp-sys-2" not in pkg:
        continue
    if m.get("reason") == "build-script-executed":
        out = m["out_dir"]
    elif m.get("reason") == "compiler-artifact":
        src = os.path.join(os.path.dirname(m["manifest_path"]), "llama.cpp")
        version = pkg.rsplit("@", 1)[-1].split("#")[-1]
print(src, out, version)
EOF
)
if [ ! -f "$out_dir/lib/cmake/llama/llama-config.cmake" ] || [ ! -d "$crate_src/src" ]; then
  echo "build-llama-server.sh: no llama.cpp build in llama-cpp-sys-2's OUT_DIR ($out_dir)" >&2
  exit 1
fi

out=$cache/llama-server-$crate_version-$sdist
bin=$out/llama-server
# The engine's flags are .cargo/config.toml's: a change there rebuilds the tools too.
stamp="$crate_version $sdist ${flags[*]} $(sha256sum .cargo/config.toml | cut -c1-16)"
if [ -x "$bin" ] && [ -x "$out/llama-bench" ] && [ -x "$out/llama-tokenize" ] && [ "$(cat "$out/stamp" 2>/dev/null)" = "$stamp" ] &&
  "$bin" --version >/dev/null 2>&1; then
  echo "$bin"
  exit 0
fi

work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work" "$log"' EXIT
python3 -m pip download --quiet --no-deps --no-binary :all: --disable-pip-version-check \
  "llama-cpp-python==$sdist" -d "$work" >&2
tar -xzf "$work"/llama_cpp_python-$sdist.tar.gz -C "$work"
src=$work/llama_cpp_python-$sdist/vendor/llama.cpp
# The engine's headers and sources are the crate's (only its headers are read: libllama and
# libggml are linked from OUT_DIR); libllama comes from its CMake package instead of src/, and
# the install rules for targets built here are dropped.
rm -rf "$src/include" "$src/src" "$src/ggml"
cp -r "$crate_src/include" "$crate_src/src" "$crate_src/ggml" "$src/"
python3 - "$src/CMakeLists.txt" <<'EOF'
import sys
path = sys.argv[1]
text = open(path).read()
assert "\nadd_subdirectory(src)\n" in text and "\n# install\n" in text, "llama.cpp's CMakeLists.txt changed shape"
text = text.replace("\nadd_subdirectory(src)\n", "\nfind_package(llama REQUIRED)\n")
text = text[: text.index("\n#\n# install\n")] + "\n"
open(path, "w").write(text)
EOF
launcher=()
if command -v ccache >/dev/null; then
  # A rebuild (a new cache directory, a wiped build) then costs seconds, not minutes.
  export CCACHE_DIR=${CCACHE_DIR:-$cache/ccache} CCACHE_BASEDIR=$work CCACHE_NOHASHDIR=1
  launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
cmake -S "$src" -B "$work/b" "${launcher[@]}" "${flags[@]}" -DCMAKE_PREFIX_PATH="$out_dir" \
  >"$work/cmake.log" 2>&1 || { tail -30 "$work/cmake.log" >&2; exit 1; }
cmake --build "$work/b" --target llama-server llama-bench llama-tokenize -j "$(nproc)" >"$work/build.log" 2>&1 \
  || { grep -m5 -B2 -A8 'error' "$work/build.log" >&2 || tail -30 "$work/build.log" >&2; exit 1; }
mkdir -p "$out.part"
cp "$work/b/bin/llama-server" "$work/b/bin/llama-bench" "$work/b/bin/llama-tokenize" "$out.part/"
printf '%s\n' "$stamp" >"$out.part/stamp"
rm -rf "$out"
mv "$out.part" "$out"
echo "$bin"
