#!/usr/bin/env python3
"""Tokenizer throughput, single-threaded, on the same ~10 MB of mixed text:
velollm (bench_tokenize) vs HF `tokenizers` (SmolLM2, rebuilt from the GGUF) and vs
`sentencepiece` (Llama 2 tokenizer.model). Prints MB/s for each.

  .venv/bin/python scripts/bench_tokenizer.py [--bench build/bench/bench_tokenize] [--mb 10]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "python"))
from conftest import MODELS, model_path  # noqa: E402
from tokenizer_corpus import corpus  # noqa: E402
from test_tokenizer_oracle import _hf_smollm  # noqa: E402

DOC_BYTES = 65536


def mixed_text(mb: float) -> bytes:
    """Valid UTF-8 text: the oracle corpus (prose, code, CJK, emoji, ...) without its
    noise categories, repeated with varying seeds until `mb` megabytes."""
    out, n, seed = [], 0, 1
    keep = {"prose", "code", "space", "digits", "cjk", "script", "emoji", "combining", "special", "fixed"}
    while n < mb * 1e6:
        for name, b in corpus(seed):
            if name in keep:
                out.append(b + b"\n")
                n += len(b) + 1
        seed += 1
    return b"".join(out)


def docs_of(text: bytes):
    docs, pos = [], 0
    while pos < len(text):
        end = text.find(b"\n", min(len(text), pos + DOC_BYTES))
        end = len(text) if end < 0 else end + 1
        docs.append(text[pos:end].decode())
        pos = end
    return docs


def best_of(fn, reps=3):
    best, res = 1e30, None
    for _ in range(reps):
        t = time.perf_counter()
        res = fn()
        best = min(best, time.perf_counter() - t)
    return best, res


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", default=str(ROOT / "build" / "bench" / "bench_tokenize"))
    ap.add_argument("--mb", type=float, default=10.0)
    args = ap.parse_args()
    text = mixed_text(args.mb)
    docs = docs_of(text)
    mb = len(text) / 1e6
    with tempfile.NamedTemporaryFile(suffix=".txt") as f:
        f.write(text)
        f.flush()
        results = {}
        for key in ("smollm2", "velo-code-40m", "gemma3"):
            r = subprocess.run([args.bench, str(model_path(MODELS[key])), f.name, str(DOC_BYTES)],
                               capture_output=True, text=True, check=True)
            results[key] = json.loads(r.stdout)
    print(f"text: {mb:.2f} MB in {len(docs)} documents, single-threaded, best of 3\n")
    hf = _hf_smollm(model_path(MODELS["smollm2"]))
    t_hf, n_hf = best_of(lambda: sum(len(hf.encode(d, add_special_tokens=False).ids) for d in docs))
    v = results["smollm2"]
    print(f"SmolLM2 (byte-level BPE): velollm {v['mb_per_s']:8.2f} MB/s ({v['tokens']} tokens)   "
          f"HF tokenizers {mb / t_hf:8.2f} MB/s ({n_hf} tokens)   ratio {v['mb_per_s'] / (mb / t_hf):.2f}x")
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=str(model_path("llama2-tokenizer.model")))
    t_sp, n_sp = best_of(lambda: sum(len(sp.encode(d)) for d in docs))
    v = results["velo-code-40m"]
    print(f"Llama 2 (SPM):            velollm {v['mb_per_s']:8.2f} MB/s ({v['tokens']} tokens)   "
          f"sentencepiece {mb / t_sp:8.2f} MB/s ({n_sp} tokens)   ratio {v['mb_per_s'] / (mb / t_sp):.2f}x")
    v = results["gemma3"]
    print(f"Gemma 3 (SPM, 262k):      velollm {v['mb_per_s']:8.2f} MB/s ({v['tokens']} tokens)")
    ok = results["smollm2"]["mb_per_s"] >= mb / t_hf
    print("\nvelollm at least as fast as HF tokenizers:", "yes" if ok else "NO")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
