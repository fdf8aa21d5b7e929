#!/usr/bin/env bash
# odai for Windows, built with Debian's mingw-w64 and run under wine64 (scripts/test.sh, issue 17):
# the platform and native-probe unit tests, then `odai probe` itself, whose JSON must say it is
# Windows and carry memory and CPU figures read from the OS (Windows has no /proc: a zero or a
# Linux path here would be a probe that did not read Windows).
#
# Debian's wine 8 lacks bcryptprimitives.dll, where Rust's std takes random bytes (ProcessPrng);
# scripts/wine/bcryptprimitives.c stands in for it, placed beside the executables (the first place
# Windows looks for a DLL). Env: CARGO_TARGET_DIR (default target), ODAI_TEST_CACHE (the wine
# prefix's home, default ~/.cache/odai-test).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/cross-env.sh
. scripts/cross-env.sh
runner=${CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER:?wine64 is not installed}
cache=${ODAI_TEST_CACHE:-$HOME/.cache/odai-test}
export WINEDEBUG=-all WINEPREFIX=$cache/wine
t=x86_64-pc-windows-gnu
out=${CARGO_TARGET_DIR:-target}/$t/debug
mkdir -p "$out/deps"
x86_64-w64-mingw32-gcc -shared -O2 -o "$out/deps/bcryptprimitives.dll" scripts/wine/bcryptprimitives.c -ladvapi32
cp "$out/deps/bcryptprimitives.dll" "$out/"

cargo test --target "$t" --lib -- platform:: probe::native
cargo build --target "$t" --bin odai
probe=$("$runner" "$out/odai.exe" probe --no-gpu --format json)
python3 - "$probe" <<'PY'
import json, sys
d = json.loads(sys.argv[1])
dev, cpu, mem = d["device"], d["cpu"], d["memory"]
assert dev["os_family"] == "windows", dev
assert d["captured"] is False
assert mem["total_bytes"] > 0 and mem["available_bytes"] > 0, mem
assert mem["headroom_source"] == "os", mem
assert cpu["logical_cores"] > 0 and cpu["isa"] in ("x86", "arm"), cpu
assert mem["psi_some_avg10"] is None and mem["psi_some_avg10_unavailable"].startswith("not on windows"), mem
assert not any("/proc" in str(v) or "/sys" in str(v) for v in (dev, cpu, mem)), "a Linux path on Windows"
print(f"windows-under-wine.sh: ok: odai.exe probe: {dev['os']}, {cpu['logical_cores']} CPUs, "
      f"{mem['total_bytes'] / 2**30:.1f} GiB", file=sys.stderr)
PY
