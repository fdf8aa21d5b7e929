#!/usr/bin/env bash
# Fuzzes every parser odai runs on outside input (fuzz/, src/fuzzing.rs): each target for SECONDS
# (default 60) with libFuzzer, one after another, from seeds made of the repository's own
# fixtures. Prints executions, corpus size and findings per target; exits 1 if any target
# crashed, leaked past the memory limit or hung (the input is kept in fuzz/artifacts/TARGET/ —
# turn it into a `regression_fuzz_*` unit test beside the parser, then fix the parser).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#   FUZZ_JOBS=2 scripts/fuzz.sh 1200          # two targets at a time
#   FUZZ_TARGET_DIR=~/.cache/x scripts/fuzz.sh # build there, not in fuzz/target
#
# Needs a nightly toolchain (libFuzzer's instrumentation); installs cargo-fuzz from crates.io
# when it is missing. The corpus grows under fuzz/corpus/ (ignored by git) across runs.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
all=(gguf toml results protocol probe_tree sse tensor_file)
targets=("${@:-${all[@]}}")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
jobs=${FUZZ_JOBS:-1}

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "fuzz.sh: no nightly toolchain (rustup toolchain install nightly); nothing fuzzed" >&2
  exit 2
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

# Release code with debug assertions (integer overflow panics, as a fuzzer should see it). No
# sanitizer: the parsers are safe Rust, whose faults are panics and unbounded allocations, which
# libFuzzer catches on its own (-rss_limit_mb / -malloc_limit_mb); ASan would only slow it.
build=(--release --debug-assertions --sanitizer none)
# FUZZ_TARGET_DIR: build outside the clone (CI keeps it in a per-machine cache).
if [ -n "${FUZZ_TARGET_DIR:-}" ]; then build+=(--target-dir "$FUZZ_TARGET_DIR"); fi
(cd fuzz && cargo +nightly fuzz build "${build[@]}")

# Seeds: real inputs of each kind, from the repository.
seed() { mkdir -p "fuzz/corpus/$1"; }
for t in "${all[@]}"; do seed "$t"; done
if [[ " ${targets[*]} " == *" gguf "* ]]; then
  out=${CARGO_TARGET_DIR:-target}
  bin=$out/release/odai
  [ -x "$bin" ] || bin=$out/debug/odai
  [ -x "$bin" ] || cargo build --quiet
  [ -x "$bin" ] || bin=$out/debug/odai
  for q in q8_0 q4_0 f16; do
    [ -s "fuzz/corpus/gguf/toy-$q.gguf" ] ||
      "$bin" model synth --preset toy --quant "$q" --output "fuzz/corpus/gguf/toy-$q.gguf" >/dev/null
  done
fi
cp -f matrices/*.toml profiles/device-classes.toml profiles/workloads/*.toml \
  tests/fixtures/results/three-classes/*.toml fuzz/corpus/toml/ 2>/dev/null || true
r=tests/fixtures/results/three-classes
cp -f "$r"/results.jsonl "$r"/manifest.json "$r"/probe-*.json fuzz/corpus/results/ 2>/dev/null || true
printf '%s\n' \
  '{"event":"hello","protocol":4,"odai_version":"0.1.0"}' \
  '{"event":"progress","message":"rep 1/3"}' \
  '{"event":"error","message":"cannot load the model"}' \
  '{"request":"probe","protocol":4,"bandwidth":true}' >fuzz/corpus/protocol/lines
head -c 4000 "$r/results.jsonl" >fuzz/corpus/protocol/record-like
# Tensor models: the small real ones the tests fetch (where fetched), and a .npy array.
models=${ODAI_TEST_MODELS:-target/test-models}
for m in "$models"/micro-hey_jarvis.tflite "$models"/oww-hey_jarvis.tflite \
  "$models"/oww-embedding_model.onnx; do
  if [ -s "$m" ]; then cp -f "$m" fuzz/corpus/tensor_file/; fi
done
python3 -c '
import struct
h = "{\x27descr\x27: \x27<f4\x27, \x27fortran_order\x27: False, \x27shape\x27: (2,), }"
h += " " * ((64 - (10 + len(h) + 1) % 64) % 64) + "\n"
open("fuzz/corpus/tensor_file/two.npy", "wb").write(
    b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode() + struct.pack("<2f", 0.5, -1))
'
# Probe trees: each fixture device's files, in src/fuzzing.rs's PROBE_FILES order, cut by 0xFF.
python3 - <<'EOF'
import os, re
src = open("src/fuzzing.rs").read()
files = re.findall(r'^    "([^"]+)",$', src.split("pub const PROBE_FILES")[1].split("];")[0], re.M)
base = "tests/fixtures"
for dev in sorted(os.listdir(base)):
    d = os.path.join(base, dev)
    if not os.path.isdir(os.path.join(d, "proc")):
        continue
    parts = []
    for f in files:
        p = os.path.join(d, f)
        parts.append(open(p, "rb").read() if os.path.isfile(p) else b"")
    open(f"fuzz/corpus/probe_tree/{dev}", "wb").write(b"\xff".join(parts))
EOF
sse_seed() { printf '%b' "$2" >"fuzz/corpus/sse/$1"; }
sse_seed plain 'HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: {"choices":[{"delta":{"content":"Hi"}}]}\n\ndata: {"choices":[{"delta":{}}],"usage":{"prompt_tokens":12,"completion_tokens":3},"timings":{"prompt_n":12,"prompt_ms":5.5,"predicted_n":3,"predicted_ms":9.1}}\n\ndata: [DONE]\n\n'
sse_seed chunked 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2e\r\ndata: {"choices":[{"delta":{"content":"a"}}]}\n\n\r\n0e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n'
sse_seed error 'HTTP/1.1 429 Too Many Requests\r\nContent-Length: 44\r\n\r\n{"error":{"message":"slow down","code":429}}'

status=0
summary=$(mktemp)
run_one() {
  local t=$1 log
  log=$(mktemp)
  mkdir -p "fuzz/artifacts/$t"
  (cd fuzz && cargo +nightly fuzz run "${build[@]}" "$t" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 \
    -max_len=262144 -print_final_stats=1) >"$log" 2>&1 || true
  local execs corpus crashes
  execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}' | tail -1)
  corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
  crashes=$(find "fuzz/artifacts/$t" -type f | wc -l)
  printf '%-11s %8ss %12s execs %7s corpus %3s findings\n' "$t" "$secs" "${execs:-?}" "$corpus" \
    "$crashes" >>"$summary"
  if [ "$crashes" -gt 0 ] || ! grep -q 'Done [0-9]* runs' "$log"; then
    echo "== $t: a finding (or libFuzzer stopped early); the end of its log:" >&2
    tail -25 "$log" >&2
  fi
  rm -f "$log"
}
running=0
for t in "${targets[@]}"; do
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then wait -n || true; running=$((running - 1)); fi
done
wait
printf '%-11s %9s %18s %14s %12s\n' target time executions corpus findings
sort "$summary"
if awk '$7 > 0 {bad=1} END {exit !bad}' "$summary"; then status=1; fi
rm -f "$summary"
exit $status
