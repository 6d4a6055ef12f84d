"""Chat templates: our interpreter against Python jinja2 configured as HF transformers does.

Each template (SmolLM2's and the Gemma built-in read through the GGUF models,
plus the public Llama 3.1, Qwen2.5, Mistral v0.3, DeepSeek R1 and Gemma 3
templates in tests/data/templates) is rendered over a set of conversations by
tool_render_template and by jinja2; outputs must be byte-identical, and where
jinja2 raises, we must raise too. 100% is the bar.
"""
import datetime
import json
import subprocess
from pathlib import Path

import jinja2
import jinja2.ext
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from conftest import ROOT, model_path

TEMPLATES = ROOT / "tests" / "data" / "templates"


# ---- the oracle: jinja2 set up like transformers' _compile_jinja_template ----

class _Generation(jinja2.ext.Extension):
    """HF's AssistantTracker: {% generation %}...{% endgeneration %} renders its body."""
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def hf_environment():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[_Generation, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


_compiled = {}


def oracle(env, template, context):
    try:
        key = (id(env), template)
        if key not in _compiled:
            _compiled[key] = env.from_string(template)
        return True, _compiled[key].render(**context)
    except Exception as e:  # noqa: BLE001 - any jinja2 error must be an error on our side too
        return False, f"{type(e).__name__}: {e}"


# ---- conversations ----------------------------------------------------------

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. Paris"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}
SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search the web",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}, "n": {"type": "integer", "default": 3}},
                       "required": ["q"]},
    },
}


def tool_call(name, args, as_string, call_id="call12345"):
    return {"id": call_id, "type": "function",
            "function": {"name": name, "arguments": json.dumps(args) if as_string else args}}


def conversations():
    """(name, messages, tools) triples; each is rendered with and without a generation prompt."""
    sys = {"role": "system", "content": "You are a concise assistant."}
    u1 = {"role": "user", "content": "What is the capital of France?"}
    a1 = {"role": "assistant", "content": "Paris."}
    u2 = {"role": "user", "content": "And of Japan?"}
    yield "single", [u1], None
    yield "system", [sys, u1], None
    yield "multi_turn", [sys, u1, a1, u2], None
    yield "no_system_multi", [u1, a1, u2], None
    yield "unicode", [{"role": "user", "content": "Ünïcödé ✓ 日本語 — emoji 😀\ttab \"quotes\" 'single' \\ back"},
                      {"role": "assistant", "content": "Très bien — 好的 😀"},
                      {"role": "user", "content": "  padded  \n"}], None
    yield "empty_content", [sys, {"role": "user", "content": ""}], None
    yield "whitespace", [{"role": "system", "content": "\n sys \n"}, {"role": "user", "content": "\n\nhi\n\n"},
                         {"role": "assistant", "content": " ok "}, {"role": "user", "content": "x"}], None
    yield "think", [u1, {"role": "assistant", "content": "<think>reasoning</think>\n\nParis."}, u2], None
    yield "tools_defined", [sys, u1], [WEATHER_TOOL, SEARCH_TOOL]
    yield "tools_no_system", [u1], [WEATHER_TOOL]
    yield "tool_call_obj", [sys, {"role": "user", "content": "Weather in Paris?"},
                            {"role": "assistant", "content": None,
                             "tool_calls": [tool_call("get_weather", {"city": "Paris", "unit": "celsius"}, False)]},
                            {"role": "tool", "tool_call_id": "call12345", "name": "get_weather",
                             "content": "{\"temp\": 21, \"sky\": \"clear\"}"},
                            {"role": "assistant", "content": "It is 21 °C and clear."},
                            {"role": "user", "content": "Thanks"}], [WEATHER_TOOL]
    yield "tool_call_str", [{"role": "user", "content": "Weather in Oslo?"},
                            {"role": "assistant", "content": "",
                             "tool_calls": [tool_call("get_weather", {"city": "Oslo"}, True)]},
                            {"role": "tool", "tool_call_id": "call12345", "content": "-3 C"}], [WEATHER_TOOL]
    yield "multi_tool_calls", [{"role": "user", "content": "Paris and Rome?"},
                               {"role": "assistant", "content": "Checking both.",
                                "tool_calls": [tool_call("get_weather", {"city": "Paris"}, True, "callAAAAA"),
                                               tool_call("get_weather", {"city": "Rome"}, True, "callBBBBB")]},
                               {"role": "tool", "tool_call_id": "callAAAAA", "content": "20"},
                               {"role": "tool", "tool_call_id": "callBBBBB", "content": "25"}], [WEATHER_TOOL]
    yield "bad_alternation", [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], None
    yield "starts_with_assistant", [{"role": "assistant", "content": "Hello, how can I help?"}, u1], None


def contexts(bos, eos):
    out = []
    for name, messages, tools in conversations():
        for gen in (True, False):
            ctx = {"messages": messages, "tools": tools, "add_generation_prompt": gen,
                   "bos_token": bos, "eos_token": eos}
            out.append((f"{name}/gen={gen}", ctx))
    return out


def gguf_template(path):
    from gguf import GGUFReader
    r = GGUFReader(str(path))
    f = r.fields.get("tokenizer.chat_template")
    return None if f is None else bytes(f.parts[f.data[0]]).decode("utf-8")


def template_cases():
    cases = []
    smol = gguf_template(model_path("SmolLM2-135M-Instruct.Q4_1.gguf"))
    assert smol, "SmolLM2 GGUF must carry tokenizer.chat_template"
    cases.append(("smollm2(gguf)", smol, "<|im_start|>", "<|im_end|>"))
    files = {
        "llama3.1.jinja": ("<|begin_of_text|>", "<|eot_id|>"),
        "qwen2.5.jinja": ("", "<|im_end|>"),
        "mistral-7b-instruct-v0.3.jinja": ("<s>", "</s>"),
        "deepseek-r1.jinja": ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
        "gemma3.jinja": ("<bos>", "<eos>"),
    }
    for fname, (bos, eos) in files.items():
        cases.append((fname, (TEMPLATES / fname).read_text(encoding="utf-8"), bos, eos))
    return cases


def run_tool(tools_dir, cases, tmp_path):
    inp = tmp_path / "cases.json"
    inp.write_text(json.dumps([{"template": t, "context": c} for t, c in cases], ensure_ascii=False),
                   encoding="utf-8")
    exe = tools_dir / "tool_render_template"
    if not exe.exists():
        pytest.fail(f"{exe} not built")
    proc = subprocess.run([str(exe), str(inp)], capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return json.loads(proc.stdout.decode("utf-8"))


def compare(env, labelled, results):
    """Returns (matches, total, mismatch descriptions)."""
    bad = []
    for (label, template, ctx), ours in zip(labelled, results):
        ok, text = oracle(env, template, ctx)
        if ok != ours["ok"] or (ok and text != ours["output"]):
            bad.append(f"{label}: jinja2={(ok, text)!r:.400} ours={ours!r:.400}")
    return len(labelled) - len(bad), len(labelled), bad


def test_real_templates_match_jinja2(tools_dir, tmp_path):
    env = hf_environment()
    labelled = []
    for tname, template, bos, eos in template_cases():
        for cname, ctx in contexts(bos, eos):
            labelled.append((f"{tname} {cname}", template, ctx))
    results = run_tool(tools_dir, [(t, c) for _, t, c in labelled], tmp_path)
    matched, total, bad = compare(env, labelled, results)
    for tname, _, _, _ in template_cases():
        n = sum(1 for label, _, _ in labelled if label.startswith(tname + " "))
        nbad = sum(1 for b in bad if b.startswith(tname + " "))
        nerr = sum(1 for (label, _, _), r in zip(labelled, results) if label.startswith(tname + " ") and not r["ok"])
        print(f"\n  {tname}: {n - nbad}/{n} match ({nerr} of them errors on both sides)", end="")
    print(f"\nchat templates vs jinja2: {matched}/{total} contexts byte-identical "
          f"({100.0 * matched / total:.1f}%) over {len(template_cases())} templates")
    assert not bad, "\n".join(bad[:20])
    assert total >= 10 * len(template_cases())


def test_builtin_fallbacks_match_jinja2(velollm_bin, tools_dir, tmp_path):
    """The Gemma fallback (the Gemma 3 GGUF ships no template) and ChatML/Llama 3, rendered by jinja2."""
    env = hf_environment()
    labelled = []
    for name in ("chatml", "llama3", "gemma"):
        proc = subprocess.run([str(velollm_bin), "template", "--builtin", name, "--show-template"],
                              capture_output=True, timeout=60)
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")
        source = proc.stdout.decode("utf-8")
        for cname, ctx in contexts("<bos>", "<eos>"):
            labelled.append((f"{name} {cname}", source, ctx))
    results = run_tool(tools_dir, [(t, c) for _, t, c in labelled], tmp_path)
    matched, total, bad = compare(env, labelled, results)
    print(f"\nbuilt-in templates vs jinja2: {matched}/{total} byte-identical")
    assert not bad, "\n".join(bad[:20])


@pytest.mark.parametrize("model,name", [("SmolLM2-135M-Instruct.Q4_1.gguf", "model"),
                                        ("gemma-3-270m-q4_k_m.gguf", "gemma")])
def test_velollm_template_command(velollm_bin, tmp_path, model, name):
    """`velollm template -m MODEL --messages FILE` equals jinja2 on the model's (or fallback) template."""
    path = model_path(model)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi ✓"},
                {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Bye"}]
    mfile = tmp_path / "m.json"
    mfile.write_text(json.dumps({"messages": messages}), encoding="utf-8")
    for gen in (True, False):
        args = [str(velollm_bin), "template", "-m", str(path), "--messages", str(mfile)]
        if not gen:
            args.append("--no-generation-prompt")
        proc = subprocess.run(args, capture_output=True, timeout=120)
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")
        src = subprocess.run([str(velollm_bin), "template", "-m", str(path), "--show-template"],
                             capture_output=True, timeout=120)
        assert src.returncode == 0
        info = subprocess.run([str(velollm_bin), "template", "-m", str(path), "--show-tokens"],
                              capture_output=True, timeout=120)
        assert info.returncode == 0
        tokens = json.loads(info.stdout)
        assert tokens["name"] == name
        ok, expected = oracle(hf_environment(), src.stdout.decode("utf-8"),
                              {"messages": messages, "tools": None, "add_generation_prompt": gen,
                               "bos_token": tokens["bos_token"], "eos_token": tokens["eos_token"]})
        assert ok, expected
        assert proc.stdout.decode("utf-8") == expected


def test_expression_corpus_matches_jinja2(tools_dir, tmp_path):
    """Operators, filters, tests, methods, loops, macros, whitespace control and error cases."""
    data = json.loads((TEMPLATES / "expressions.json").read_text(encoding="utf-8"))
    env = hf_environment()
    labelled = [(f"case{i}", t, data["context"]) for i, t in enumerate(data["templates"])]
    results = run_tool(tools_dir, [(t, c) for _, t, c in labelled], tmp_path)
    matched, total, bad = compare(env, labelled, results)
    errors = sum(1 for r in results if not r["ok"])
    print(f"\nexpression corpus vs jinja2: {matched}/{total} identical ({errors} errors on both sides)")
    assert not bad, "\n".join(bad[:20])
