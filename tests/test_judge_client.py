"""Judge client against a local fake OpenAI-compatible server (no network)."""
import hashlib
import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from harness.scorers.judge_client import JudgeClient, Result

FAKE_KEY = "sk-test-DO-NOT-LEAK-7f3a9c1e"
MSG = [{"role": "user", "content": "hi"}]


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # sleeping handlers must not hold up shutdown

    def __init__(self, behaviour):
        super().__init__(("127.0.0.1", 0), Handler)
        self.behaviour = behaviour  # callable(server, handler, body) -> (status, headers, bytes)
        self.lock = threading.Lock()
        self.calls = 0
        self.active = 0
        self.max_active = 0
        self.bodies = []
        self.auth = []


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        srv = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with srv.lock:
            srv.calls += 1
            call = srv.calls
            srv.active += 1
            srv.max_active = max(srv.max_active, srv.active)
            srv.bodies.append(body)
            srv.auth.append(self.headers.get("Authorization"))
        try:
            status, headers, payload = srv.behaviour(call, self, body)
        finally:
            with srv.lock:
                srv.active -= 1
        try:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            pass  # the client gave up (timeout test)


def answer(text, model="judge-snap-1"):
    return 200, {"Content-Type": "application/json"}, json.dumps(
        {"model": model, "choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
         "usage": {"prompt_tokens": 3, "completion_tokens": 1}}).encode()


@pytest.fixture
def serve():
    servers = []

    def start(behaviour):
        srv = FakeServer(behaviour)
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        servers.append(srv)
        return srv, f"http://127.0.0.1:{srv.server_address[1]}/v1"

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def client(url, **kw):
    opts = dict(api_key_env="HARNESS_TEST_JUDGE_KEY", timeout_s=2.0, max_retries=2, backoff_s=0.01,
                max_backoff_s=0.05)
    opts.update(kw)
    return JudgeClient(url, "judge-snap-1", **opts)


@pytest.fixture(autouse=True)
def fake_key(monkeypatch):
    monkeypatch.setenv("HARNESS_TEST_JUDGE_KEY", FAKE_KEY)


def no_leak(*things):
    for thing in things:
        assert FAKE_KEY not in repr(thing) and FAKE_KEY not in str(thing)


def test_normal_answer_and_request_body(serve):
    srv, url = serve(lambda call, h, body: answer("Score: 1"))
    c = client(url, temperature=0.0, max_tokens=500, extra_body={"chat_template_kwargs": {"enable_thinking": False}})
    [res] = c.chat_many([MSG])
    assert res.ok and res.text == "Score: 1" and res.attempts == 1 and res.model == "judge-snap-1"
    assert res.finish_reason == "stop" and res.usage["completion_tokens"] == 1
    body = srv.bodies[0]
    assert body["model"] == "judge-snap-1" and body["max_tokens"] == 500 and body["temperature"] == 0.0
    assert body["chat_template_kwargs"] == {"enable_thinking": False} and body["messages"] == MSG
    assert srv.auth == [f"Bearer {FAKE_KEY}"]
    no_leak(res, c)


def test_no_key_sends_no_authorization(serve, monkeypatch):
    monkeypatch.delenv("HARNESS_TEST_JUDGE_KEY")
    srv, url = serve(lambda call, h, body: answer("ok"))
    assert client(url).chat(MSG).ok and srv.auth == [None]


def test_429_then_success_honours_retry_after(serve):
    def behaviour(call, h, body):
        if call == 1:
            return 429, {"Retry-After": "0", "Content-Type": "application/json"}, b'{"error": {"message": "slow down"}}'
        return answer("Consistency: 2")
    srv, url = serve(behaviour)
    start = time.monotonic()
    res = client(url, backoff_s=5.0, max_backoff_s=5.0).chat(MSG)  # Retry-After: 0 overrides the 5 s backoff
    assert res.ok and res.attempts == 2 and srv.calls == 2 and time.monotonic() - start < 2.0


def test_timeout_retries_then_reports_failure(serve):
    release = threading.Event()

    def behaviour(call, h, body):
        release.wait(3.0)
        return answer("too late")
    srv, url = serve(behaviour)
    res = client(url, timeout_s=0.2, max_retries=1).chat(MSG)
    release.set()
    assert not res.ok and res.text is None and res.attempts == 2 and srv.calls == 2
    assert "timed out" in res.error and "gave up after 2 attempts" in res.error


@pytest.mark.parametrize("payload, expected", [
    (b"<html>bad gateway</html>", "not JSON"),
    (b'{"id": "x", "choices": []}', "no choices"),
    (b'{"choices": [{"message": {"role": "assistant"}}]}', "no message content"),
])
def test_malformed_body_is_an_error_result(serve, payload, expected):
    srv, url = serve(lambda call, h, body: (200, {"Content-Type": "application/json"}, payload))
    [res] = client(url).chat_many([MSG])
    assert isinstance(res, Result) and not res.ok and expected in res.error and srv.calls == 1


def test_client_errors_are_not_retried_and_key_is_scrubbed(serve, caplog):
    def behaviour(call, h, body):
        echoed = json.dumps({"error": {"message": f"bad key; you sent Authorization: {h.headers['Authorization']}",
                                       "headers": dict(h.headers)}})
        return (503 if call == 1 else 401), {"Content-Type": "application/json"}, echoed.encode()
    srv, url = serve(behaviour)
    c = client(url)
    with caplog.at_level(logging.DEBUG):
        res = c.chat(MSG)
    assert not res.ok and res.status == 401 and srv.calls == 2 and "HTTP 401" in res.error
    assert "[redacted]" in res.error and "retry 1/2" in caplog.text  # the 503 was logged, scrubbed
    no_leak(res, c, res.error, c.fingerprint("tmpl"), caplog.text)


def test_echoed_key_in_answer_is_scrubbed(serve):
    srv, url = serve(lambda call, h, body: answer(f"you said {h.headers['Authorization']}", model=FAKE_KEY))
    res = client(url).chat(MSG)
    assert res.ok and "[redacted]" in res.text
    no_leak(res)


def test_connection_error_is_a_result(serve):
    srv, url = serve(lambda call, h, body: answer("x"))
    srv.shutdown()
    srv.server_close()
    res = client(url, max_retries=1).chat_many([MSG, MSG])
    assert len(res) == 2 and all(not r.ok and "connection error" in r.error for r in res)


def test_concurrency_limit_and_order(serve):
    def behaviour(call, h, body):
        time.sleep(0.05)
        return answer(body["messages"][0]["content"])
    srv, url = serve(behaviour)
    batch = [[{"role": "user", "content": f"q{i}"}] for i in range(12)]
    results = client(url, max_concurrency=3).chat_many(batch)
    assert [r.text for r in results] == [f"q{i}" for i in range(12)]
    assert 1 < srv.max_active <= 3


def test_fingerprint_and_repr():
    c = JudgeClient("https://api.example.com:8443/v1", "gpt-4o-2024-05-13", api_key_env="HARNESS_TEST_JUDGE_KEY")
    fp = c.fingerprint("rubric text")
    assert fp["host"] == "api.example.com:8443" and fp["model"] == "gpt-4o-2024-05-13"
    assert fp["prompt_sha256"] == hashlib.sha256(b"rubric text").hexdigest()
    no_leak(c, fp, vars(c))
    with pytest.raises(ValueError, match="credentials"):
        JudgeClient("https://user:pw@api.example.com/v1", "m")


@pytest.mark.parametrize("before_cut", [1, 5, 14, len(FAKE_KEY) - 1])
def test_a_key_straddling_the_error_cut_is_redacted_whole(serve, before_cut):
    """The error body is cut to 300 characters for the record; the key is redacted before the cut, so no part of
    a key that straddles it is kept (it used to keep the part before the cut)."""
    def behaviour(call, h, body):
        message = "x" * (300 - before_cut) + FAKE_KEY + " and more text after it"
        return 401, {"Content-Type": "application/json"}, json.dumps({"error": {"message": message}}).encode()
    srv, url = serve(behaviour)
    res = client(url).chat(MSG)
    assert not res.ok and "HTTP 401" in res.error
    # the message is cut at 300 characters after the key became the marker: the marker is cut, never the key
    assert res.error.endswith("x" * 5 + "[redacted] and more text after it"[:before_cut])
    assert not any(FAKE_KEY[:k] in res.error for k in range(3, len(FAKE_KEY) + 1))
    no_leak(res)


def test_redact_removes_the_key_before_cutting_and_a_cut_key_tail():
    from harness.redaction import redact_key as redact

    text = "a" * 290 + FAKE_KEY
    assert redact(text, FAKE_KEY, 300) == "a" * 290 + "[redacted]"
    assert redact("error: " + FAKE_KEY[:10], FAKE_KEY) == "error: [redacted]"     # a read that stopped mid-key
    assert redact("no secret here", "") == "no secret here"
