"""The official `openai` client against a real `velollm serve` process."""
import concurrent.futures as cf
import json
import socket
import time

import openai
import pytest
import requests

from conftest import model_path
from server_util import metric, serve

CODE_MODEL = "velo-code-40m.Q8_0.gguf"
PROMPTS = [
    "def fibonacci(n):\n", "class Stack:\n    def __init__(self):\n", "import os\n\ndef list_files(path):\n",
    "def is_prime(n):\n", "# sort a list\ndef bubble_sort(items):\n", "def read_json(path):\n",
    "class Node:\n    def __init__(self, value):\n", "def factorial(n):\n", "def merge(a, b):\n",
    "for i in range(10):\n", "def main():\n    args = ", "with open('data.txt') as f:\n",
    "def binary_search(arr, target):\n", "class Queue:\n", "def flatten(lst):\n", "try:\n    import numpy as np\n",
]


@pytest.fixture(scope="module")
def code_server(velollm_bin, tmp_path_factory):
    with serve(velollm_bin, model_path(CODE_MODEL), "--parallel", 8, "--ctx-size", 512,
               tmp_path=tmp_path_factory.mktemp("srv")) as s:
        yield s


@pytest.fixture(scope="module")
def client(code_server):
    return openai.OpenAI(base_url=code_server.url("/v1"), api_key="unused", max_retries=0, timeout=120)


def complete(client, prompt, **kw):
    r = client.completions.create(model="velo-code-40m.Q8_0", prompt=prompt, temperature=0, max_tokens=24, **kw)
    return r.choices[0].text, r


def test_models_and_health(code_server, client):
    ids = [m.id for m in client.models.list().data]
    assert ids == ["velo-code-40m.Q8_0"]
    assert requests.get(code_server.url("/health")).json()["status"] == "ok"
    assert requests.get(code_server.url("/ready")).status_code == 200


def test_completion_greedy_continues_code(client):
    text, r = complete(client, "class Stack:\n    def __init__(self):\n")
    assert "self." in text
    assert r.usage.completion_tokens > 0 and r.usage.prompt_tokens > 5
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.object == "text_completion"


def test_chat_completion_and_stream(client):
    msgs = [{"role": "user", "content": "def add(a, b):"}]
    r = client.chat.completions.create(model="velo-code-40m.Q8_0", messages=msgs, max_tokens=16, temperature=0)
    assert r.choices[0].message.role == "assistant"
    full = r.choices[0].message.content
    chunks = list(client.chat.completions.create(model="velo-code-40m.Q8_0", messages=msgs, max_tokens=16,
                                                 temperature=0, stream=True,
                                                 stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == full
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1 and finals[0].choices[0].finish_reason in ("stop", "length")
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == r.usage.completion_tokens


def test_stream_ends_with_done(code_server):
    body = {"prompt": "def f(x):\n", "max_tokens": 8, "temperature": 0, "stream": True}
    r = requests.post(code_server.url("/v1/completions"), json=body, stream=True, timeout=60)
    assert r.headers["content-type"].startswith("text/event-stream")
    lines = [l for l in r.iter_lines(decode_unicode=True) if l]
    assert lines[-1] == "data: [DONE]"
    assert all(l.startswith("data: ") for l in lines)


def test_concurrent_greedy_equals_sequential(client):
    sequential = [complete(client, p)[0] for p in PROMPTS]
    with cf.ThreadPoolExecutor(len(PROMPTS)) as ex:
        concurrent = list(ex.map(lambda p: complete(client, p)[0], PROMPTS))
    assert concurrent == sequential


def test_n_choices_logprobs_seed(client):
    r = client.completions.create(model="velo-code-40m.Q8_0", prompt="def main():\n", max_tokens=8, n=3,
                                  temperature=1.0, seed=7, logprobs=2)
    assert sorted(c.index for c in r.choices) == [0, 1, 2]
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) and all(v <= 0 for v in lp.token_logprobs)
    assert all(len(t) <= 2 for t in lp.top_logprobs)
    again = client.completions.create(model="velo-code-40m.Q8_0", prompt="def main():\n", max_tokens=8, n=3,
                                      temperature=1.0, seed=7, logprobs=2)
    assert [c.text for c in again.choices] == [c.text for c in r.choices]
    chat = client.chat.completions.create(model="velo-code-40m.Q8_0", messages=[{"role": "user", "content": "x = "}],
                                          max_tokens=4, temperature=0, logprobs=True, top_logprobs=3)
    content = chat.choices[0].logprobs.content
    assert content and all(len(c.top_logprobs) == 3 for c in content)
    assert content[0].top_logprobs[0].logprob >= content[0].top_logprobs[1].logprob


def test_stop_and_logit_bias(client):
    text, _ = complete(client, "class Stack:\n    def __init__(self):\n", stop=["stack"])
    assert "stack" not in text
    # Token 13 is the newline byte token of the Llama 2 vocabulary; +100 makes it win every step.
    r = client.completions.create(model="velo-code-40m.Q8_0", prompt="def f(x):\n", temperature=0, max_tokens=3,
                                  logit_bias={"13": 100})
    assert r.choices[0].text == "\n\n\n"


def test_cached_tokens_for_shared_system_prompt(client):
    system = "You are a careful Python assistant. " * 12
    usage = []
    for q in ("def a():", "def b():"):
        r = client.chat.completions.create(model="velo-code-40m.Q8_0", max_tokens=4, temperature=0,
                                           messages=[{"role": "system", "content": system}, {"role": "user", "content": q}])
        usage.append(r.usage)
    assert usage[1].prompt_tokens_details.cached_tokens >= 32
    assert usage[1].prompt_tokens_details.cached_tokens < usage[1].prompt_tokens


def test_errors_have_openai_shape(code_server, client):
    with pytest.raises(openai.NotFoundError) as e:
        client.completions.create(model="no-such-model", prompt="x", max_tokens=1)
    assert e.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model="velo-code-40m.Q8_0", prompt="x" * 20000, max_tokens=1)
    assert e.value.body["code"] == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="velo-code-40m.Q8_0", prompt="x", temperature=-1)
    r = requests.post(code_server.url("/v1/chat/completions"), data=b"{not json", timeout=10)
    assert r.status_code == 400 and "error" in r.json()
    r = requests.post(code_server.url("/v1/completions"), data=b"x" * (9 << 20), timeout=30)
    assert r.status_code == 413


def test_disconnect_mid_stream_frees_blocks(code_server, client):
    body = json.dumps({"prompt": "def long_function():\n", "max_tokens": 400, "temperature": 0, "stream": True,
                       "ignore_eos": True}).encode()
    s = socket.create_connection(("127.0.0.1", code_server.port))
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    got = b""
    while got.count(b"data: ") < 3:
        got += s.recv(4096)
    s.close()
    deadline = time.time() + 10
    while time.time() < deadline and (metric(code_server, "vllm:num_requests_running") > 0
                                      or metric(code_server, "vllm:kv_cache_usage_perc") > 0):
        time.sleep(0.1)
    assert metric(code_server, "vllm:num_requests_running") == 0
    assert metric(code_server, "vllm:kv_cache_usage_perc") == 0
    assert complete(client, "def ok():\n")[0]  # still healthy


def test_metrics_have_vllm_names(code_server):
    text = requests.get(code_server.url("/metrics")).text
    for name in ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc",
                 "vllm:prompt_tokens_total", "vllm:generation_tokens_total", "vllm:time_to_first_token_seconds_bucket",
                 "vllm:inter_token_latency_seconds_bucket", "vllm:e2e_request_latency_seconds_count",
                 "vllm:prefix_cache_queries_total", "vllm:prefix_cache_hits_total", "vllm:num_preemptions_total"):
        assert name in text, name
    assert metric(code_server, "vllm:generation_tokens_total") > 0


def test_full_queue_answers_429_with_retry_after(velollm_bin, tmp_path):
    with serve(velollm_bin, model_path("velo-code-draft-12m.Q8_0.gguf"), "--parallel", 1, "--max-queue", 1,
               "--ctx-size", 512, tmp_path=tmp_path) as s:
        body = {"prompt": "def f():\n", "max_tokens": 400, "temperature": 0, "ignore_eos": True}
        post = lambda: requests.post(s.url("/v1/completions"), json=body, timeout=120)
        with cf.ThreadPoolExecutor(2) as ex:
            running = ex.submit(post)
            while metric(s, "vllm:num_requests_running") < 1:
                time.sleep(0.01)
            waiting = ex.submit(post)
            while metric(s, "vllm:num_requests_waiting") < 1:
                time.sleep(0.01)
            busy = post()  # one running, one waiting: the queue is full
            assert busy.status_code == 429, busy.text
            assert int(busy.headers["Retry-After"]) >= 1 and busy.json()["error"]["message"]
            assert running.result().status_code == 200 and waiting.result().status_code == 200


def test_api_key_and_cors(velollm_bin, tmp_path):
    with serve(velollm_bin, model_path("velo-code-draft-12m.Q8_0.gguf"), "--api-key", "s3cret",
               "--cors-origin", "http://app.local", "--ctx-size", 256, tmp_path=tmp_path) as s:
        bad = openai.OpenAI(base_url=s.url("/v1"), api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()
        good = openai.OpenAI(base_url=s.url("/v1"), api_key="s3cret", max_retries=0)
        assert good.models.list().data
        pre = requests.options(s.url("/v1/chat/completions"), headers={"Origin": "http://app.local"})
        assert pre.headers["Access-Control-Allow-Origin"] == "http://app.local"
        assert requests.get(s.url("/health")).status_code == 200  # probes need no key


def test_sigterm_drains_running_request(velollm_bin, tmp_path):
    with serve(velollm_bin, model_path("velo-code-draft-12m.Q8_0.gguf"), "--ctx-size", 512,
               tmp_path=tmp_path) as s:
        body = {"prompt": "def f():\n", "max_tokens": 200, "temperature": 0, "ignore_eos": True}
        with cf.ThreadPoolExecutor(1) as ex:
            fut = ex.submit(requests.post, s.url("/v1/completions"), json=body, timeout=60)
            time.sleep(0.3)
            s.proc.terminate()
            r = fut.result()
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 200
        assert s.proc.wait(timeout=30) == 0
