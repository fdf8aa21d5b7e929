#!/usr/bin/env python3
"""Re-quantizes a GGUF with llama.cpp's own quantizer (llama_model_quantize, through
llama-cpp-python), so odai and llama.cpp are compared on byte-identical files of each tensor type.
Quantizing an already quantized file (allow_requantize) costs accuracy, not speed: these files are
for speed comparisons only. Used by scripts/engine-vs-llamacpp.sh; not part of the test suite.

  llamacpp_quantize.py IN.gguf OUT.gguf q4_0|q8_0|q4_k_m"""
import ctypes, sys

import llama_cpp

FTYPES = {
    "q4_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0,
    "q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0,
    "q4_k_m": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M,
}
src, dst, kind = sys.argv[1], sys.argv[2], sys.argv[3]
params = llama_cpp.llama_model_quantize_default_params()
params.ftype = FTYPES[kind]
params.allow_requantize = True
params.nthread = 2
rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params))
sys.exit(0 if rc == 0 else f"llama_model_quantize failed ({rc}) for {kind}")
