#!/usr/bin/env bash
# One model through every runtime that can run it here, interleaved in one run (so machine noise
# hits all of them), ROUNDS rounds, medians, one table:
#   odai         odai's engine, from a binary built WITHOUT llama.cpp (what `cargo install` gives)
#   odai+llama   odai's engine, from the binary built WITH llama.cpp (linking must not slow it)
#   llama.cpp    llama.cpp linked in (--runtime llama.cpp)
#   llama-server the openai runtime against llama.cpp's llama-server on 127.0.0.1 (HTTP, chat
#                template: its prompt tokens are what the server's usage counted)
#   llama-cpp-py llama-cpp-python 0.3.36 on the same file (scripts/llamacpp_bench.py), built with
#                the same CPU flags as the linked llama.cpp (.cargo/config.toml), so the two should
#                agree within noise
#
#   scripts/runtimes-compare.sh [MODEL.gguf] [THREADS] [P] [N] [ROUNDS]
#
# First run: builds two release binaries, llama-server (scripts/build-llama-server.sh) and a venv
# with llama-cpp-python compiled from source (several minutes each).
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-$(scripts/fetch-test-model.sh)}
threads=${2:-2}; p=${3:-64}; n=${4:-64}; rounds=${5:-5}
work=target/runtimes-compare
mkdir -p "$work"
cache=${ODAI_TEST_CACHE:-$HOME/.cache/odai-test}
if command -v ccache >/dev/null; then
  # llama.cpp's objects from the test suite's builds are reused (scripts/test.sh fills the cache).
  export CMAKE_C_COMPILER_LAUNCHER=ccache CMAKE_CXX_COMPILER_LAUNCHER=ccache
  export CCACHE_DIR=$cache/ccache CCACHE_BASEDIR=$PWD CCACHE_NOHASHDIR=1
fi

cargo build --release --quiet
cp "${CARGO_TARGET_DIR:-target}"/release/odai "$work/odai-plain"
cargo build --release --quiet --features llama-cpp
odai=${CARGO_TARGET_DIR:-target}/release/odai
server_bin=$(scripts/build-llama-server.sh)

py=$(scripts/llamacpp-venv.sh)

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$server_bin" -m "$model" --host 127.0.0.1 --port "$port" -t "$threads" -c $(( (p + n) * 4 + 256 )) -np 1 \
  >"$work/llama-server.log" 2>&1 &
server=$!
results=$(mktemp)
trap 'kill $server 2>/dev/null || true; rm -f "$results"' EXIT
for _ in $(seq 300); do
  python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/health')" 2>/dev/null && break
  sleep 0.2
done

row() {  # name, then the bench command
  local name=$1; shift
  "$@" --reps 1 --warmup 1 --sample-interval off --format json \
    | python3 -c 'import json,sys; d=json.load(sys.stdin); r=d["reps"][0]; print(json.dumps({"runtime":sys.argv[1],"load_ms":r["load_ms"],"ttft_ms":r["ttft_ms"],"prefill_tps":r["prefill_tps"],"decode_tps":r["decode_tps"]}))' "$name" >>"$results"
}
for _ in $(seq "$rounds"); do
  row odai "$work/odai-plain" bench --model "$model" --runtime odai -t "$threads" -p "$p" -n "$n"
  row odai+llama "$odai" bench --model "$model" --runtime odai -t "$threads" -p "$p" -n "$n"
  row llama.cpp "$odai" bench --model "$model" --runtime llama.cpp -t "$threads" -p "$p" -n "$n"
  row llama-server "$odai" bench --endpoint "http://127.0.0.1:$port/v1" --model local -p "$p" -n "$n"
  "$py" scripts/llamacpp_bench.py "$model" --threads "$threads" -p "$p" -n "$n" \
    | python3 -c 'import json,sys; d=json.load(sys.stdin); d["runtime"]="llama-cpp-py"; d["ttft_ms"]=1e3*int(sys.argv[1])/d["prefill_tps"]; print(json.dumps(d))' "$p" >>"$results"
done
python3 - "$results" "$model" "$threads" "$p" "$n" "$rounds" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
names = ["odai", "odai+llama", "llama.cpp", "llama-server", "llama-cpp-py"]
med = lambda n, k: statistics.median(r[k] for r in rows if r["runtime"] == n)
print(f"{sys.argv[2]}: {sys.argv[3]} threads, p={sys.argv[4]} n={sys.argv[5]}, medians of {sys.argv[6]} interleaved rounds")
print(f"{'runtime':<14}{'load ms':>10}{'ttft ms':>10}{'prefill t/s':>13}{'decode t/s':>12}{'decode ÷ py':>13}")
ref = med("llama-cpp-py", "decode_tps")
for n in names:
    print(f"{n:<14}{med(n,'load_ms'):>10.1f}{med(n,'ttft_ms'):>10.1f}{med(n,'prefill_tps'):>13.1f}{med(n,'decode_tps'):>12.1f}{med(n,'decode_tps')/ref:>13.2f}")
print("llama-server: load = connection set-up, TTFT over HTTP with the chat template; llama-cpp-py: load = Llama(); ttft = p / prefill")
PY
