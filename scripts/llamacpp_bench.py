#!/usr/bin/env python3
"""Measures llama.cpp (through llama-cpp-python) the way `odai bench` measures odai: load time,
prefill of P random token ids (BOS first) and decode of N tokens one at a time, greedy. With
-d D, D random ids (BOS first) fill the context untimed first, as llama-bench's -d and odai's;
--ctk/--ctv pick the KV cache types, --fa llama.cpp's flash attention (default 1: llama.cpp's own
context default turns it on for the CPU; llama-cpp-python's is off; a quantized V cache needs it). Prints one JSON object. Used by scripts/bench-vs-llamacpp.sh; not part of the suite."""
import argparse, json, random, time

import llama_cpp
import numpy as np
from llama_cpp import Llama

ap = argparse.ArgumentParser()
ap.add_argument("model")
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("-p", type=int, default=64)
ap.add_argument("-n", type=int, default=64)
ap.add_argument("-d", type=int, default=0)
ap.add_argument("--ctk", default="f16")
ap.add_argument("--ctv", default="f16")
ap.add_argument("--fa", type=int, default=1)
ap.add_argument("--seed", type=int, default=42)
a = ap.parse_args()
# ggml's type ids (ggml.h's enum ggml_type).
TYPES = {"f32": 0, "f16": 1, "q4_0": 2, "q8_0": 8}

t = time.perf_counter()
llm = Llama(model_path=a.model, n_ctx=a.d + a.p + a.n + 8, n_threads=a.threads,
            n_threads_batch=a.threads, n_batch=max(a.p, a.d, 8), verbose=False, logits_all=False,
            type_k=TYPES[a.ctk], type_v=TYPES[a.ctv], flash_attn=bool(a.fa))
load_ms = (time.perf_counter() - t) * 1e3
vocab = llm.n_vocab()
rng = random.Random(a.seed)
depth = [llm.token_bos()] + [rng.randrange(vocab) for _ in range(a.d - 1)] if a.d else []
# At a depth the prompt continues the sequence: no BOS of its own.
prompt = ([] if a.d else [llm.token_bos()]) + [rng.randrange(vocab) for _ in range(a.p - (0 if a.d else 1))]

def last_argmax():
    # The last evaluated position's logits, straight from llama.cpp (no Python-side copy of all).
    ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
    return int(np.ctypeslib.as_array(ptr, shape=(vocab,)).argmax())

def run():
    llm.reset()
    if depth:
        llm.eval(depth)
    t = time.perf_counter()
    llm.eval(prompt)
    prefill_s = time.perf_counter() - t
    tok = last_argmax()
    t = time.perf_counter()
    for _ in range(a.n):
        llm.eval([tok])
        tok = last_argmax()
    return prefill_s, time.perf_counter() - t

run()  # warm-up, as odai's first prefill
prefill_s, decode_s = run()
print(json.dumps({"load_ms": load_ms, "prefill_tps": a.p / prefill_s, "decode_tps": a.n / decode_s}))
