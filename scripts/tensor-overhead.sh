#!/usr/bin/env bash
# odai's per-inference overhead over ONNX Runtime's own: a burst of silero-vad through
# `odai bench` against the same loop in onnxruntime's Python API (the same wheel's library, the
# same inputs' shapes, one intra-op thread, graph optimisations on), interleaved for ROUNDS
# rounds; medians of each round's mean latency. A measurement, not a test: run it on a quiet
# machine and read the spread.
#
#   scripts/tensor-overhead.sh [ROUNDS] [ITERATIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
iters=${2:-5000}
venv=${ODAI_ORT_VENV:-$HOME/.cache/odai-test/ort-venv}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check onnxruntime==1.32.0 numpy
fi
lib=$("$venv/bin/python" -c 'import onnxruntime,glob,os; print(glob.glob(os.path.dirname(onnxruntime.__file__)+"/capi/libonnxruntime.so*")[0])')
model=$(scripts/fetch-test-model.sh silero-vad)
cargo build --release --quiet
odai=${CARGO_TARGET_DIR:-target}/release/odai
py() {
  "$venv/bin/python" - "$model" "$iters" <<'PY'
import sys, time, numpy as np, onnxruntime as ort
model, iters = sys.argv[1], int(sys.argv[2])
o = ort.SessionOptions()
o.intra_op_num_threads = 1
o.inter_op_num_threads = 1
o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
s = ort.InferenceSession(model, o, providers=["CPUExecutionProvider"])
rng = np.random.default_rng(42)
feed = {"input": rng.uniform(-1, 1, (1, 512)).astype(np.float32),
        "state": rng.uniform(-1, 1, (2, 1, 128)).astype(np.float32),
        "sr": np.array(16000, dtype=np.int64)}
for _ in range(10):
    s.run(None, feed)
lat = []
for _ in range(iters):
    t = time.perf_counter()
    s.run(None, feed)
    lat.append(time.perf_counter() - t)
print(1e3 * sum(lat) / len(lat))
PY
}
od() {
  ORT_DYLIB_PATH=$lib "$odai" bench --model "$model" --shape input=1x512 --shape state=2x1x128 \
    --input sr=16000 --threads 1 --iterations "$iters" --sample-interval off --format json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["latency_ms_mean"])'
}
o=() p=()
for r in $(seq "$rounds"); do
  o+=("$(od)") p+=("$(py)")
  echo "round $r: odai ${o[-1]} ms, python ${p[-1]} ms" >&2
done
python3 - "${o[*]}" "${p[*]}" <<'PY'
import statistics, sys
o = [float(x) for x in sys.argv[1].split()]
p = [float(x) for x in sys.argv[2].split()]
mo, mp = statistics.median(o), statistics.median(p)
print(f"silero-vad burst, 1 thread, {len(o)} interleaved rounds (median of per-round means)")
print(f"  odai (ort, load-dynamic)   {mo*1e3:8.1f} us/inference  (range {min(o)*1e3:.1f}-{max(o)*1e3:.1f})")
print(f"  onnxruntime Python API     {mp*1e3:8.1f} us/inference  (range {min(p)*1e3:.1f}-{max(p)*1e3:.1f})")
print(f"  odai / python              {mo/mp:8.3f}  (target <= 1.05)")
PY
