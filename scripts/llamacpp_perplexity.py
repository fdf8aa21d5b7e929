#!/usr/bin/env python3
"""Perplexity in llama-perplexity's method, computed from llama-cpp-python's logits (all of them:
logits_all=True), so `odai quality` can be checked against llama.cpp on the same text and windows:
the text tokenized once with BOS when the model adds one, non-overlapping windows of CTX tokens,
each window's first token replaced by BOS, and only its second half scored
(tools/perplexity/perplexity.cpp). Prints one JSON object. Used by scripts/perplexity-vs-llamacpp.sh.

  llamacpp_perplexity.py MODEL.gguf TEXT.txt CTX [CHUNKS]"""
import json, sys

import llama_cpp
import numpy as np

model, text_path, ctx = sys.argv[1], sys.argv[2], int(sys.argv[3])
chunks = int(sys.argv[4]) if len(sys.argv) > 4 else None
llm = llama_cpp.Llama(model_path=model, n_ctx=ctx, n_batch=ctx, n_ubatch=ctx, logits_all=True,
                      n_threads=2, verbose=False)
text = open(text_path, encoding="utf-8").read()
tokens = llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)
bos = llm.token_bos()
add_bos = len(tokens) > 0 and tokens[0] == bos
n = len(tokens) // ctx
if chunks:
    n = min(n, chunks)
first = ctx // 2
nll, count = 0.0, 0
for i in range(n):
    window = list(tokens[i * ctx:(i + 1) * ctx])
    if add_bos:
        window[0] = bos
    llm.reset()
    llm.eval(window)
    logits = np.asarray(llm.scores[:ctx], dtype=np.float64)
    for j in range(first, ctx - 1):
        row = logits[j]
        m = row.max()
        lse = m + np.log(np.exp(row - m).sum())
        nll += lse - row[tokens[i * ctx + j + 1]]
        count += 1
print(json.dumps({"ppl": float(np.exp(nll / count)), "text_tokens": len(tokens), "windows": n,
                  "scored_tokens": count, "add_bos": add_bos,
                  "llama_cpp_python": llama_cpp.__version__}))
