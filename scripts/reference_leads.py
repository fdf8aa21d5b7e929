#!/usr/bin/env python3
"""llama.cpp's leads on the shared greedy reference (../shared/reference), for the near-tie-aware
gates of tests/it/engine_reference.rs and crates/odai-engine/tests/reference_leads.rs.

For each case: the prompt, then each of the reference's greedy ids fed one at a time (teacher
forcing: one near-tie cannot derail the rest), and after the prompt and after each id the *lead*
of the reference's next id over the best other id — positive where llama.cpp picks that id, small
where two tokens nearly tie. Recorded under llama.cpp's default configuration (f16 KV cache, no
flash attention: llama-cpp-python's defaults, as the reference was made) and under two other
configurations that compute the same thing in another order or precision (an f32 KV cache; flash
attention). How far those move the leads is the noise of equally correct arithmetic: no engine
can be asked to reproduce a pick whose lead is within it.

Run by scripts/arch-references.sh; not part of the test suite.
    python reference_leads.py MODEL.gguf REFERENCE.json > tests/data/reference-leads.json"""
import json, sys

import llama_cpp
import numpy as np
from llama_cpp import Llama

model, ref = sys.argv[1], json.load(open(sys.argv[2]))
configs = {
    "default": {},
    "f32_cache": {"type_k": llama_cpp.GGML_TYPE_F32, "type_v": llama_cpp.GGML_TYPE_F32},
    "flash_attn": {"flash_attn": True},
}
leads = {}
for name, kw in configs.items():
    llm = Llama(model_path=model, n_ctx=256, n_batch=256, n_threads=2, n_threads_batch=2,
                n_gpu_layers=0, verbose=False, **kw)
    vocab = llm.n_vocab()
    per_case = []
    for case in ref["cases"]:
        llm.reset()
        tokens, row = case["prompt_ids"], []
        for want in case["greedy_ids"]:
            llm.eval(tokens)
            ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
            logits = np.ctypeslib.as_array(ptr, shape=(vocab,)).astype(np.float64)
            others = np.delete(logits, want)
            row.append(round(float(logits[want] - others.max()), 4))
            tokens = [want]
        per_case.append(row)
    leads[name] = per_case
    del llm
spread = max(abs(a - b) for name in configs if name != "default"
             for ca, cb in zip(leads["default"], leads[name]) for a, b in zip(ca, cb))
out = {
    "reference": "../shared/reference/smollm2-135m-q4_1-greedy.json",
    "model_sha256": ref["model"]["sha256"],
    "llama_cpp_python": llama_cpp.__version__,
    "note": "lead = logit of the reference's next id minus the best other logit, teacher-forced; "
            "spread = the largest |lead difference| between the default and another configuration",
    "spread": round(spread, 4),
    "leads": leads,
}
# One line per case and configuration: diffs of a regenerated file stay readable.
text = json.dumps(out, indent=1)
for rows in leads.values():
    for row in rows:
        text = text.replace(json.dumps(row, indent=1).replace("\n", "\n   "), json.dumps(row), 1)
sys.stdout.write(text + "\n")
