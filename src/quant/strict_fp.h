// Include FIRST and ONLY from this folder's .cpp files (never from a header):
// turns off floating-point contraction for the rest of the translation unit.
// ggml's reference code and gguf-py round every product before the following
// add (d * q - m); a fused multiply-add would change the last bit, and the
// reference quantizers' scale searches would then pick different scales.
#pragma once
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
