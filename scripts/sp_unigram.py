"""A SentencePiece unigram model as a vocabulary-only GGUF, with SentencePiece's own ids for a set
of texts: the reference odai's unigram tokenizer (tokenizer model `t5`) is tested against.

    python scripts/sp_unigram.py MODEL.model OUT_DIR   # -> OUT_DIR/<name>.gguf, OUT_DIR/<name>.json

The GGUF holds what llama.cpp's converter writes for a unigram vocabulary (conversion/t5.py,
`T5Model.set_vocab`, llama.cpp as vendored by llama-cpp-python 0.3.36): the pieces, their scores
and token types, `add_space_prefix` and `remove_extra_whitespaces` from the normalizer spec, and
the normalizer's precompiled charsmap. Run by scripts/fetch-test-model.sh sp-unigram in a venv
with sentencepiece, gguf, numpy and protobuf from PyPI.
"""

import json
import os
import sys
from pathlib import Path

# sentencepiece_model_pb2 is generated code that the C++ protobuf runtime refuses to load.
os.environ["PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"] = "python"

import gguf  # noqa: E402
from sentencepiece import SentencePieceProcessor  # noqa: E402
from sentencepiece import sentencepiece_model_pb2  # noqa: E402

# llama.cpp's token types (gguf.TokenType).
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6

# Texts beyond llama.cpp's tokenizer test inputs (read from llama-vocabs when given): whitespace
# runs, tabs, newlines, CRLF, full-width and compatibility forms the charsmap rewrites, accents,
# CJK, emoji, characters no piece covers (unknown runs).
TEXTS = [
    "",
    " ",
    "Hello world",
    "  Hello\tworld\n\nnew  line   spaces ",
    "code:\n\tfor i in range(10):\n\t\tprint(i)  # comment\r\n",
    "Ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３ and ﬁ ligature, ① circled, ｶﾀｶﾅ half-width",
    "Grüße aus München! Ça va? Señor niño — ¿qué tal?",
    "日本語のテキストと中文混合，还有한국어도 있습니다。",
    "吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。",
    "Emoji: 😀🚀👍🏽 and 🇫🇷 flags, math ∑∫√ and arrows →⇒",
    "Привет, мир! Ελληνικά. العربية עברית हिन्दी",
    "unknown runs: ☃☃☃ ♞♞ ⌘",
    "It was the best of times, it was the worst of times.",
]


def main() -> None:
    model_path, out_dir = Path(sys.argv[1]), Path(sys.argv[2])
    extra = Path(sys.argv[3]) if len(sys.argv) > 3 else None
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(model_path.read_bytes())
    assert proto.trainer_spec.model_type == 1, f"{model_path}: not a unigram model"
    sp = SentencePieceProcessor()
    sp.LoadFromFile(str(model_path))

    tokens, scores, types = [], [], []
    for i in range(sp.vocab_size()):
        tokens.append(sp.IdToPiece(i).encode("utf-8"))
        scores.append(sp.GetScore(i))
        if sp.IsUnknown(i):
            types.append(UNKNOWN)
        elif sp.IsControl(i):
            types.append(CONTROL)
        elif sp.IsUnused(i):
            types.append(UNUSED)
        elif sp.IsByte(i):
            types.append(BYTE)
        else:
            types.append(NORMAL)

    name = model_path.stem
    w = gguf.GGUFWriter(str(out_dir / f"{name}.gguf"), "t5")
    w.add_name(name)
    # The hyperparameters llama.cpp needs to load a `t5` file even with vocab_only (its own
    # vocabulary-only GGUFs carry their model's): t5-small's config.json, as conversion/t5.py
    # writes it.
    w.add_context_length(512)
    w.add_embedding_length(512)
    w.add_feed_forward_length(2048)
    w.add_block_count(6)
    w.add_decoder_block_count(6)
    w.add_head_count(8)
    w.add_key_length(64)
    w.add_value_length(64)
    w.add_layer_norm_eps(1e-6)
    w.add_relative_attn_buckets_count(32)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_decoder_start_token_id(0)
    w.add_tokenizer_model("t5")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    norm = proto.normalizer_spec
    w.add_add_space_prefix(norm.add_dummy_prefix)
    w.add_remove_extra_whitespaces(norm.remove_extra_whitespaces)
    if norm.precompiled_charsmap:
        w.add_precompiled_charsmap(norm.precompiled_charsmap)
    w.add_unk_token_id(sp.unk_id())
    if sp.bos_id() >= 0:
        w.add_bos_token_id(sp.bos_id())
    if sp.eos_id() >= 0:
        w.add_eos_token_id(sp.eos_id())
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    texts = list(TEXTS)
    if extra is not None:
        texts += extra.read_text(encoding="utf-8").split("\n__ggml_vocab_test__\n")
    ids = [sp.encode(t) for t in texts]
    (out_dir / f"{name}.json").write_text(
        json.dumps({"source": model_path.name, "texts": texts, "ids": ids}, ensure_ascii=False),
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()
