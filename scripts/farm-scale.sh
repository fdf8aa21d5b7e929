#!/usr/bin/env bash
# The coordinator's own cost at farm scale: a matrix run on N simulated devices (default 200;
# local transport, each its own device) with four tiny cells each (the `toy` preset), reporting the
# coordinator's peak resident memory (VmHWM, sampled from /proc while it runs — its workers are
# separate processes and not counted), its peak thread count, the wall time and the records.
#
#   scripts/farm-scale.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-200}"
cargo build --release --quiet
odai="$(realpath "${CARGO_TARGET_DIR:-target}")/release/odai"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

for i in $(seq 1 "$n"); do
  printf '[[device]]\nname = "sim-%03d"\ntransport = "local"\n\n' "$i"
done >"$work/farm.toml"
cat >"$work/tiny.toml" <<'TOML'
[matrix]
models = ["synthetic:toy:q8_0"]
threads = [1]
prompt_tokens = [8, 16]
gen_tokens = [4, 8]
reps = 1
warmup = 0
TOML
# Make the toy model and the bandwidth figure once, outside the measurement.
"$odai" bench --synthetic toy:q8_0 -p 8 -n 4 --reps 1 --warmup 0 --threads 1 >/dev/null

start=$(date +%s.%N)
"$odai" matrix run "$work/tiny.toml" --farm "$work/farm.toml" --out "$work/out" \
  --sample-interval off >"$work/stdout" 2>"$work/stderr" &
pid=$!
hwm=0
threads=0
while kill -0 "$pid" 2>/dev/null; do
  if s=$(cat "/proc/$pid/status" 2>/dev/null); then
    h=$(awk '/^VmHWM:/ {print $2}' <<<"$s")
    t=$(awk '/^Threads:/ {print $2}' <<<"$s")
    [ -n "$h" ] && [ "$h" -gt "$hwm" ] && hwm=$h
    [ -n "$t" ] && [ "$t" -gt "$threads" ] && threads=$t
  fi
  sleep 0.05
done
rc=0
wait "$pid" || rc=$?
end=$(date +%s.%N)
records=$(wc -l <"$work/out/results.jsonl")
ok=$(grep -c '"status":"ok"' "$work/out/results.jsonl" || true)
awk -v n="$n" -v rc="$rc" -v r="$records" -v ok="$ok" -v s="$start" -v e="$end" \
  'BEGIN { printf "devices %s, exit %s, records %s (ok %s), wall %.1f s\n", n, rc, r, ok, e - s }'
awk -v h="$hwm" -v t="$threads" \
  'BEGIN { printf "coordinator peak RSS %.1f MiB, peak threads %s\n", h / 1024, t }'
tail -n 1 "$work/stdout"
