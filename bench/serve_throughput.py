#!/usr/bin/env python3
"""Aggregate generation throughput under concurrency: velollm serve vs llama.cpp's llama-server.

For each concurrency C, both servers are started with C parallel slots on the same
GGUF file and C client threads each run REQS completions (greedy, max_tokens=TG,
ignore_eos so every request generates exactly TG tokens). Reported: generated
tokens/s over the wall time of the whole batch, median of --reps runs, and the
ratio to our single-stream rate.

  .venv/bin/python bench/serve_throughput.py [--model PATH] [--concurrency 1 4 8 16]
"""
import argparse
import concurrent.futures as cf
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ["Write a short story about a robot who learns to paint.", "Explain how a bicycle works.",
           "List some facts about the moon.", "Describe the water cycle.", "What makes a good cup of tea?",
           "Tell me about the history of chess.", "How do airplanes fly?", "Give advice for learning to cook.",
           "Describe a walk in a forest.", "What is photosynthesis?", "Explain what a computer does.",
           "Why is the sky blue?", "Write a poem about the sea.", "How do bees make honey?",
           "Describe the city of Paris.", "What is the best way to learn a language?"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_llama_server():
    for p in sorted((ROOT / ".cache" / "llama.cpp").rglob("llama-server")):
        if p.is_file() and os.access(p, os.X_OK):
            return p
    return None


def start(cmd, port, log):
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd[0]} exited: see {log.name}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                # velollm: /health is liveness; wait for readiness too.
                r = requests.get(f"http://127.0.0.1:{port}/ready", timeout=1)
                if r.status_code in (200, 404):
                    return proc
        except requests.RequestException:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{cmd[0]} not ready")


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def one_request(port, i, tg):
    body = {"prompt": PROMPTS[i % len(PROMPTS)], "max_tokens": tg, "temperature": 0, "ignore_eos": True,
            "stream": False}
    r = requests.post(f"http://127.0.0.1:{port}/v1/completions", json=body, timeout=600)
    r.raise_for_status()
    return r.json()["usage"]["completion_tokens"]


def run_load(port, conc, reqs, tg):
    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(conc) as ex:
        futs = [ex.submit(lambda c=c: sum(one_request(port, c * reqs + k, tg) for k in range(reqs))) for c in range(conc)]
        tokens = sum(f.result() for f in futs)
    return tokens / (time.perf_counter() - t0)


def measure(name, cmd_fn, conc, args, logdir):
    port = free_port()
    log = open(logdir / f"{name}-{conc}.log", "w")
    proc = start(cmd_fn(port, conc), port, log)
    try:
        run_load(port, conc, 1, 8)  # warm-up
        rates = [run_load(port, conc, args.reqs, args.tg) for _ in range(args.reps)]
    finally:
        stop(proc)
        log.close()
    return statistics.median(rates), rates


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(Path(os.environ.get("VELO_MODEL_CACHE", Path.home() / ".cache/velollm/models"))
                                          / "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--velollm", default=str(ROOT / "build" / "velollm"))
    ap.add_argument("--llama-server", default=None, help="path to llama-server (default: scripts/build_llamacpp.sh output)")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8, 16])
    ap.add_argument("--tg", type=int, default=64, help="tokens generated per request")
    ap.add_argument("--reqs", type=int, default=2, help="requests per client thread")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--ctx", type=int, default=512, help="context per slot")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    threads = args.threads or os.cpu_count()
    llama = Path(args.llama_server) if args.llama_server else find_llama_server()
    logdir = ROOT / "out" / "serve-bench"
    logdir.mkdir(parents=True, exist_ok=True)

    ours = lambda port, c: [args.velollm, "serve", "-m", args.model, "--port", str(port), "--parallel", str(c),
                            "--ctx-size", str(args.ctx), "--threads", str(threads), "--max-queue", "256"]
    theirs = lambda port, c: [str(llama), "-m", args.model, "--port", str(port), "-np", str(c), "-c",
                              str(args.ctx * c), "-t", str(threads), "--log-disable"]
    results = []
    for c in args.concurrency:
        row = {"concurrency": c}
        row["velollm_tok_s"], row["velollm_runs"] = measure("velollm", ours, c, args, logdir)
        if llama:
            row["llamacpp_tok_s"], row["llamacpp_runs"] = measure("llama-server", theirs, c, args, logdir)
        results.append(row)
        print(json.dumps(row), file=sys.stderr)
    single = results[0]["velollm_tok_s"] if results and results[0]["concurrency"] == 1 else None
    if args.json:
        print(json.dumps({"model": args.model, "threads": threads, "tg": args.tg, "results": results}, indent=2))
        return
    print(f"model {Path(args.model).name}, {threads} threads, {args.tg} tokens per request, median of {args.reps}")
    print(f"{'streams':>7} {'velollm tok/s':>14} {'x single':>9} {'llama-server tok/s':>19} {'ours/theirs':>12}")
    for r in results:
        ratio = f"{r['velollm_tok_s'] / single:.2f}" if single else "-"
        lt = r.get("llamacpp_tok_s")
        print(f"{r['concurrency']:>7} {r['velollm_tok_s']:>14.1f} {ratio:>9} {lt if lt is None else round(lt, 1)!s:>19} "
              f"{(r['velollm_tok_s'] / lt) if lt else float('nan'):>12.2f}")
    if not llama:
        print("llama-server not found: run scripts/build_llamacpp.sh for the side-by-side figures")


if __name__ == "__main__":
    main()
