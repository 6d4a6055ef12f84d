"""The official `ollama` client against a real `velollm serve` process (SmolLM2, ChatML template)."""
import json

import ollama
import pytest
import requests

from conftest import model_path
from server_util import serve

MODEL = "SmolLM2-135M-Instruct.Q4_1"


@pytest.fixture(scope="module")
def server(velollm_bin, tmp_path_factory):
    with serve(velollm_bin, model_path(MODEL + ".gguf"), "--parallel", 4, "--ctx-size", 1024,
               tmp_path=tmp_path_factory.mktemp("srv")) as s:
        yield s


@pytest.fixture(scope="module")
def client(server):
    return ollama.Client(host=server.base)


OPTS = {"temperature": 0, "num_predict": 16, "seed": 1}


def test_generate_stream_and_not(client):
    full = client.generate(model=MODEL, prompt="What is the capital of France?", options=OPTS)
    assert full.done and full.done_reason in ("stop", "length")
    assert full.eval_count > 0 and full.prompt_eval_count > 5
    assert full.total_duration > 0 and full.eval_duration > 0
    parts = list(client.generate(model=MODEL, prompt="What is the capital of France?", options=OPTS, stream=True))
    assert parts[-1].done and not any(p.done for p in parts[:-1])
    assert "".join(p.response for p in parts) == full.response
    assert "Paris" in full.response


def test_chat_stream_and_options(client):
    msgs = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Name a color."}]
    r = client.chat(model=MODEL, messages=msgs, options=OPTS)
    assert r.message.role == "assistant" and r.message.content
    parts = list(client.chat(model=MODEL, messages=msgs, options=OPTS, stream=True))
    assert "".join(p.message.content for p in parts) == r.message.content
    stopped = client.chat(model=MODEL, messages=msgs, options={**OPTS, "num_predict": 2})
    assert stopped.done_reason == "length" and stopped.eval_count == 2
    # num_ctx narrows the window: prompt + generated tokens stay within it.
    narrow = client.chat(model=MODEL, messages=msgs, options={**OPTS, "num_predict": 100, "num_ctx": r.prompt_eval_count + 3})
    assert narrow.done_reason == "length" and narrow.eval_count == 3


def test_ndjson_wire_format(server):
    r = requests.post(server.url("/api/chat"), json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}],
                                                     "options": OPTS}, stream=True, timeout=60)
    assert r.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(l) for l in r.iter_lines() if l]
    assert lines[-1]["done"] is True and "done_reason" in lines[-1]
    assert all(isinstance(l["created_at"], str) for l in lines)


def test_listing_endpoints(client, server):
    tags = client.list()
    assert [m.model for m in tags.models] == [MODEL + ":latest"]
    assert tags.models[0].details.family == "llama"
    show = client.show(MODEL)
    assert "im_start" in show.template and show.modelinfo["general.architecture"] == "llama"
    ps = client.ps()
    assert ps.models[0].name == MODEL + ":latest"
    assert requests.get(server.url("/api/version")).json()["version"]


def test_errors(client, server):
    with pytest.raises(ollama.ResponseError) as e:
        client.generate(model="missing", prompt="x")
    assert e.value.status_code == 404
    r = requests.post(server.url("/api/generate"), json={"model": MODEL, "prompt": "x", "options": {"temperature": "hot"}})
    assert r.status_code == 400 and "temperature" in r.json()["error"]
    r = requests.post(server.url("/api/generate"), json={"model": MODEL, "prompt": "word " * 5000, "stream": False})
    assert r.status_code == 400 and "context" in r.json()["error"]
