"""`velollm run`, `velollm chat` and `velollm bench` end to end on real models."""
import json
import os
import subprocess

import pytest

from conftest import MODELS, model_path

CODE_PROMPT = "class Stack:\n    def __init__(self):\n"


def velollm(bin_path, *args, stdin=None, env=None, timeout=300):
    return subprocess.run([str(bin_path), *args], input=stdin, capture_output=True, text=True,
                          timeout=timeout, env=env)


def run_code(bin_path, *extra, n=24):
    code = model_path(MODELS["velo-code-40m"])
    r = velollm(bin_path, "run", "-m", str(code), "-p", CODE_PROMPT, "-n", str(n), "-t", "2", *extra)
    assert r.returncode == 0, r.stderr
    return r.stdout


def one_line_error(r, *needles):
    assert r.returncode != 0
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def test_greedy_python_continuation(velollm_bin):
    out = run_code(velollm_bin, "--temperature", "0")
    assert out.startswith("        self.stack = []"), repr(out)
    # Greedy is deterministic.
    assert run_code(velollm_bin, "--temperature", "0") == out


def test_same_seed_same_output(velollm_bin):
    a = run_code(velollm_bin, "--temperature", "0.8", "--seed", "1234")
    b = run_code(velollm_bin, "--temperature", "0.8", "--seed", "1234")
    assert a == b
    assert a.strip() != ""
    # Different seeds at a high temperature give a different 24-token continuation.
    c = run_code(velollm_bin, "--temperature", "1.5", "--top-k", "0", "--top-p", "1", "--min-p", "0", "--seed", "1")
    d = run_code(velollm_bin, "--temperature", "1.5", "--top-k", "0", "--top-p", "1", "--min-p", "0", "--seed", "2")
    assert c != d


def test_stop_strings_never_appear(velollm_bin):
    full = run_code(velollm_bin, "--temperature", "0", n=48)
    for stop in ["self", "[]", "\n\n", "def"]:
        if stop not in full:
            continue
        out = run_code(velollm_bin, "--temperature", "0", "--stop", stop, n=48)
        assert stop not in out
        assert out == full[:full.index(stop)], (stop, out, full)
    # Several stops: the first to appear wins.
    out = run_code(velollm_bin, "--temperature", "0", "--stop", "zzz-never", "--stop", "stack", n=48)
    assert "stack" not in out and out == full[:full.index("stack")]


def test_prompt_from_stdin_and_verbose_stats(velollm_bin):
    code = model_path(MODELS["velo-code-40m"])
    r = velollm(velollm_bin, "run", "-m", str(code), "-n", "8", "--temperature", "0", "-t", "2", "--verbose",
                stdin=CODE_PROMPT)
    assert r.returncode == 0, r.stderr
    assert r.stdout == run_code(velollm_bin, "--temperature", "0", n=8)
    assert "prompt" in r.stderr and "first token" in r.stderr and "tok/s" in r.stderr
    assert "velollm:" not in r.stdout


def test_default_model_is_smollm2(velollm_bin):
    model_path(MODELS["smollm2"])  # installed by scripts/install.sh
    r = velollm(velollm_bin, "run", "-p", "The three primary colors are", "-n", "8", "--temperature", "0", "-t", "2")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.strip()) > 0


def chat(bin_path, lines, *extra):
    smol = model_path(MODELS["smollm2"])
    r = velollm(bin_path, "chat", "-m", str(smol), "--temperature", "0", "-n", "24", "-t", "2", "--verbose",
                *extra, stdin="".join(line + "\n" for line in lines))
    assert r.returncode == 0, r.stderr
    stats = [line for line in r.stderr.splitlines() if line.startswith("velollm: prompt")]
    prompts = [int(s.split("prompt ")[1].split(" ")[0]) for s in stats]
    reused = [int(s.split("(")[1].split(" ")[0]) for s in stats]
    return r.stdout, prompts, reused


SYSTEM = "You are a helpful assistant."


def test_chat_matches_llama_cpp(velollm_bin):
    """The first reply equals llama.cpp's greedy chat completion through the same template."""
    from llama_cpp import Llama
    q = "What is the capital of France?"
    llm = Llama(str(model_path(MODELS["smollm2"])), n_ctx=512, n_threads=2, verbose=False)
    want = llm.create_chat_completion([{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}],
                                      max_tokens=24, temperature=0)["choices"][0]["message"]["content"]
    out, _, _ = chat(velollm_bin, [q], "--system", SYSTEM)
    assert out == want + "\n"
    assert "Paris" in out


def test_chat_through_a_pipe_answers_and_keeps_history(velollm_bin):
    out, prompts, reused = chat(velollm_bin, ["What is the capital of France?", "And what is 2+2?"],
                                "--system", SYSTEM)
    assert len(prompts) == 2
    assert "Paris" in out and "4" in out
    # The second turn re-renders the first one: longer prompt, first turn's K/V reused.
    assert prompts[1] > prompts[0]
    assert reused[1] >= prompts[0] - 1


def test_chat_reset_forgets_history(velollm_bin):
    q = "What is the capital of France?"
    out, prompts, _ = chat(velollm_bin, [q, "/reset", q, "/exit", "never read"], "--system", SYSTEM)
    assert len(prompts) == 2
    assert prompts[0] == prompts[1]  # same conversation after /reset
    half = len(out) // 2
    assert out[:half] == out[half:] and len(out.strip()) > 0  # greedy: the same answer twice


def test_chat_system_prompt(velollm_bin):
    _, with_sys, _ = chat(velollm_bin, ["Hi"], "--system", "You are a pirate.")
    _, without, _ = chat(velollm_bin, ["Hi"])
    assert with_sys[0] != without[0]


@pytest.mark.parametrize("args,needles", [
    (["--temperature", "-1"], ["temperature", "-1"]),
    (["--top-p", "0"], ["top_p", "0"]),
    (["--top-p", "1.5"], ["top_p", "1.5"]),
    (["--min-p", "2"], ["min_p", "2"]),
    (["--top-k", "-3"], ["top_k", "-3"]),
    (["--repeat-penalty", "0"], ["repeat_penalty"]),
    (["-n", "-5"], ["max_tokens", "-5"]),
    (["--seed", "-7"], ["seed", "-7"]),
    (["--stop", ""], ["stop"]),
])
def test_invalid_sampling_values(velollm_bin, args, needles):
    code = model_path(MODELS["velo-code-40m"])
    one_line_error(velollm(velollm_bin, "run", "-m", str(code), "-p", "x", *args), *needles)


def test_missing_model(velollm_bin, tmp_path):
    one_line_error(velollm(velollm_bin, "run", "-m", str(tmp_path / "nope.gguf"), "-p", "x"),
                   "model file not found", "nope.gguf")
    env = dict(os.environ, HOME=str(tmp_path), VELO_MODEL_CACHE=str(tmp_path), XDG_CACHE_HOME=str(tmp_path))
    one_line_error(velollm(velollm_bin, "run", "-p", "x", env=env), "no model given", "install.sh")
    one_line_error(velollm(velollm_bin, "chat", env=env, stdin="hi\n"), "no model given")


def test_not_a_model(velollm_bin, tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf file at all")
    one_line_error(velollm(velollm_bin, "run", "-m", str(bad), "-p", "x"), "bad.gguf")


def test_prompt_too_long(velollm_bin):
    code = model_path(MODELS["velo-code-40m"])
    line = one_line_error(velollm(velollm_bin, "run", "-m", str(code), "-c", "32", "-p", "def f(x): return x\n" * 20),
                          "context is 32", "--ctx-size")
    assert line.startswith("velollm: error: prompt is ")
    # --truncate keeps the newest tokens instead, leaving room for the output.
    r = velollm(velollm_bin, "run", "-m", str(code), "-c", "32", "-n", "8", "--temperature", "0", "--truncate",
                "--verbose", "-p", "def f(x): return x\n" * 20)
    assert r.returncode == 0, r.stderr
    assert "prompt 24 tokens" in r.stderr


def test_bench_json(velollm_bin):
    code = model_path(MODELS["velo-code-40m"])
    r = velollm(velollm_bin, "bench", "-m", str(code), "--pp", "32", "--tg", "8", "--reps", "2", "-t", "2",
                "--json", "--llama-bench", "none")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    m = j["models"][0]
    assert m["weight_bytes_per_token"] > 30e6  # a 40M-parameter Q8_0 model
    for test in ("pp", "tg"):
        s = m["velollm"][test]
        assert len(s["samples"]) == 2 and s["min"] <= s["tokens_per_s"] <= s["max"] and s["min"] > 0
    assert j["bandwidth_gbs"] > 0
    assert m["velollm"]["tg_gbs"] == pytest.approx(m["weight_bytes_per_token"] * m["velollm"]["tg"]["tokens_per_s"] / 1e9)
