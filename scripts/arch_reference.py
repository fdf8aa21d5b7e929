#!/usr/bin/env python3
"""llama.cpp's figures for crates/odai-engine/tests/arch_fidelity.rs: for each case of a manifest (written by that
test's `write_fidelity_models`), loads the GGUF in llama.cpp (llama-cpp-python, CPU), runs the
prompt, then STEPS greedy tokens one at a time, and records after the prompt and after each
token: every logit (the prompt, when the vocabulary is small) or the 16 largest, the largest |logit| (scale) and
the lead of the best logit over the runner-up (margin). Prints the reference JSON.
Run by scripts/arch-references.sh; not part of the test suite."""
import json, sys

import llama_cpp
import numpy as np
from llama_cpp import Llama

manifest = json.load(open(sys.argv[1]))
steps = manifest["steps"]
out = {"llama_cpp_python": llama_cpp.__version__, "steps": steps, "cases": []}
for case in manifest["cases"]:
    prompt = case["prompt"]
    llm = Llama(model_path=case["path"], n_ctx=64, n_batch=64, n_threads=2, n_threads_batch=2,
                n_gpu_layers=0, verbose=False, logits_all=False)
    vocab = llm.n_vocab()

    def last():
        ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(vocab,)).astype(np.float64).copy()

    def record(logits, everything):
        order = np.argsort(-logits, kind="stable")
        ids = range(vocab) if everything else order[:16]
        return {"scale": float(np.abs(logits).max()),
                "margin": float(logits[order[0]] - logits[order[1]]),
                "logits": [[int(i), round(float(logits[i]), 5)] for i in ids]}

    llm.reset()
    llm.eval(prompt)
    logits = last()
    recs, greedy = [record(logits, vocab <= 1024)], []
    for _ in range(steps):
        tok = int(np.argmax(logits))  # ties to the lowest id, as odai's argmax
        greedy.append(tok)
        llm.eval([tok])
        logits = last()
        recs.append(record(logits, False))
    # The last record has no greedy token after it: the test checks as many steps as tokens.
    recs = recs[:steps]
    entry = {k: case[k] for k in ("name", "fetch", "arch", "quant", "prompt") if k in case}
    if "sha256" in case:
        entry["sha256"] = case["sha256"]
    entry["greedy"] = greedy
    entry["steps"] = recs
    out["cases"].append(entry)
    del llm
# One line per case: diffs of a regenerated file stay readable.
cases = out.pop("cases")
sys.stdout.write(json.dumps(out)[:-1] + ', "cases": [\n')
sys.stdout.write(",\n".join(json.dumps(c, separators=(",", ":")) for c in cases))
sys.stdout.write("\n]}\n")
