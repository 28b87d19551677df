"""Judge scorers: the API judge against a local fake OpenAI-compatible server, and the local transformers judge
on a tiny random-config Qwen2.5-VL with a tokenizer built in the test. No network, no real weights."""
import base64
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch
from PIL import Image as PILImage

from harness.scorers import make_scorer
from harness.scorers.judge import JudgeScorer, png_bytes
from harness.scorers.judge_local import LocalJudgeScorer, hf_messages
from harness.task import score
from harness.types import Image

torch.set_num_threads(1)
KEY = "sk-scorer-test-NEVER-LEAK-4b1d"
ENV = "HARNESS_TEST_SCORER_JUDGE_KEY"


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, behaviour):
        super().__init__(("127.0.0.1", 0), Handler)
        self.behaviour, self.bodies, self.auth, self.lock = behaviour, [], [], threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            self.server.bodies.append(body)
            self.server.auth.append(self.headers.get("Authorization"))
        status, payload = self.server.behaviour(self, body)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def chat(text, model="judge-snap-2024"):
    return 200, {"model": model, "choices": [{"message": {"role": "assistant", "content": text},
                                              "finish_reason": "stop"}]}


@pytest.fixture
def serve(monkeypatch):
    monkeypatch.setenv(ENV, KEY)
    servers = []

    def start(behaviour):
        srv = Server(behaviour)
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        servers.append(srv)
        return srv, f"http://127.0.0.1:{srv.server_address[1]}/v1"
    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def judge_for(url, **kw):
    return make_scorer("judge", {"base_url": url, "model": "judge-snap-2024", "api_key_env": ENV, "timeout": 2,
                                 "max_retries": 1, **kw})


def red(size=(8, 6)):
    return PILImage.new("RGB", size, (200, 10, 10))


def test_judge_builds_wise_style_messages_and_returns_the_answer(serve):
    def behaviour(h, body):
        user = body["messages"][-1]["content"]
        return chat(f"Consistency: 2 ({user[0]['text']})")
    srv, url = serve(behaviour)
    reqs = [score("judge", "judge", text="Rate this.", images=[red()], system="You are a strict auditor.",
                  max_tokens=77, temperature=0.0),
            score("judge", "judge", text="Second prompt", images=[red((4, 4))])]
    out = judge_for(url).run("judge", reqs)
    assert [r.ok for r in out] == [True, True]
    assert out[0].values == {"text": "Consistency: 2 (Rate this.)", "model": "judge-snap-2024",
                             "finish_reason": "stop"}
    assert out[1].values["text"] == "Consistency: 2 (Second prompt)"
    first = next(b for b in srv.bodies if b["messages"][-1]["content"][0]["text"] == "Rate this.")
    assert first["max_tokens"] == 77 and first["temperature"] == 0.0 and first["model"] == "judge-snap-2024"
    system, user = first["messages"]
    assert system == {"role": "system", "content": [{"type": "text", "text": "You are a strict auditor."}]}
    assert user["role"] == "user" and [p["type"] for p in user["content"]] == ["text", "image_url"]
    url_ = user["content"][1]["image_url"]["url"]
    assert url_.startswith("data:image/png;base64,")
    decoded = PILImage.open(io.BytesIO(base64.b64decode(url_.split(",", 1)[1])))
    assert decoded.size == (8, 6) and decoded.convert("RGB").getpixel((0, 0)) == (200, 10, 10)
    second = next(b for b in srv.bodies if b["messages"][-1]["content"][0]["text"] == "Second prompt")
    assert second["max_tokens"] == 2000 and len(second["messages"]) == 1  # defaults, no system turn
    assert srv.auth == [f"Bearer {KEY}"] * 2


def test_png_files_are_sent_byte_for_byte(tmp_path):
    path = tmp_path / "gen.png"
    red().save(path, format="PNG", compress_level=1)
    assert png_bytes(Image(path=path)) == path.read_bytes()
    jpg = tmp_path / "ref.jpg"
    red().save(jpg, format="JPEG")
    assert png_bytes(Image(path=jpg)).startswith(b"\x89PNG")


def test_judge_failures_never_leak_the_key(serve):
    def behaviour(h, body):
        return 401, {"error": {"message": f"bad credentials: {h.headers['Authorization']}"}}
    srv, url = serve(behaviour)
    scorer = judge_for(url)
    out = scorer.run("judge", [score("judge", "judge", text="x", images=[red()]),
                               score("judge", "judge")])
    assert not out[0].ok and "HTTP 401" in out[0].error and "[redacted]" in out[0].error
    assert not out[1].ok and "needs text or images" in out[1].error
    for thing in (out[0].error, out[0].payload(), out[0].meta, scorer.fingerprint(), scorer.describe(),
                  repr(scorer.client), vars(scorer.client)):
        assert KEY not in str(thing)


def test_judge_fingerprint_names_host_model_and_defaults():
    a = JudgeScorer(base_url="https://api.example.com:8443/v1", model="gpt-4o-2024-05-13")
    assert a.fingerprint() == "judge/v1/api.example.com:8443/gpt-4o-2024-05-13/t=0/max=2000"
    b = JudgeScorer(base_url="http://localhost:8000/v1", model="Qwen3.5-35B-A3B", max_tokens=500,
                    extra_body={"chat_template_kwargs": {"enable_thinking": False}})
    assert b.fingerprint().startswith("judge/v1/localhost:8000/Qwen3.5-35B-A3B/t=0/max=500/")
    assert b.describe()["extra_body"] == {"chat_template_kwargs": {"enable_thinking": False}}


# --- local judge ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import (PreTrainedTokenizerFast, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration,
                              Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor)

    d = tmp_path_factory.mktemp("qwen")
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                "<|image_pad|>", "<|video_pad|>"]
    words = ["<unk>", "system", "user", "assistant", "score", ":", "0", "1", "2"] + [chr(c) for c in range(97, 123)]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="<|im_end|>",
                                        pad_token="<|endoftext|>", additional_special_tokens=specials)
    ids = dict(zip(specials, tokenizer.convert_tokens_to_ids(specials)))
    template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% if m['content'] is string %}"
                "{{ m['content'] }}{% else %}{% for c in m['content'] %}{% if c['type'] == 'image' %}"
                "<|vision_start|><|image_pad|><|vision_end|>{% elif c['type'] == 'text' %}{{ c['text'] }}"
                "{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
                "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    processor = Qwen2_5_VLProcessor(image_processor=Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=56 * 56),
                                    tokenizer=tokenizer, video_processor=Qwen2VLVideoProcessor(),
                                    chat_template=template)
    cfg = Qwen2_5_VLConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256,
                         rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]},
                         bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
                         pad_token_id=ids["<|endoftext|>"]),
        vision_config=dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=32,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2, fullatt_block_indexes=[0],
                           window_size=56),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    torch.manual_seed(0)
    Qwen2_5_VLForConditionalGeneration(cfg).eval().save_pretrained(d)
    processor.save_pretrained(d)
    return d


def test_local_judge_messages():
    req = score("judge_local", "judge", text="Rate.", images=[red(), red()], system="Be strict.")
    assert hf_messages(req) == [
        {"role": "system", "content": [{"type": "text", "text": "Be strict."}]},
        {"role": "user", "content": [{"type": "text", "text": "Rate."}, {"type": "image"}, {"type": "image"}]}]


def test_local_judge_generates_greedily_and_batches_consistently(qwen_dir):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    scorer = LocalJudgeScorer(weights=str(qwen_dir), device="cpu", batch_size=3, max_tokens=4)
    reqs = [score("judge_local", "judge", text="score : 1", images=[red((64, 64))], system="a b"),
            score("judge_local", "judge", text="score", images=[red((80, 50))]),
            score("judge_local", "judge", text="x y z", images=[red((64, 64))], max_tokens=2),
            score("judge_local", "judge", text="x", images=[red()], temperature=0.7)]
    out = scorer.run("judge", reqs)
    assert [r.ok for r in out] == [True, True, True, False] and "greedily" in out[3].error
    assert all(isinstance(r.values["text"], str) and r.text == r.values["text"] for r in out[:3])
    assert [scorer.run("judge", [r])[0].values for r in reqs[:3]] == [r.values for r in out[:3]]

    proc = AutoProcessor.from_pretrained(qwen_dir)
    model = AutoModelForImageTextToText.from_pretrained(qwen_dir).eval()
    prompt = proc.apply_chat_template(hf_messages(reqs[0]), tokenize=False, add_generation_prompt=True)
    assert prompt.startswith("<|im_start|>system\na b<|im_end|>") and "<|image_pad|>" in prompt
    inputs = proc(text=[prompt], images=[red((64, 64))], return_tensors="pt")
    with torch.no_grad():
        ids = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert out[0].values["text"] == proc.batch_decode(ids[:, inputs["input_ids"].shape[1]:],
                                                      skip_special_tokens=True)[0]
    assert scorer.fingerprint().startswith("judge_local/v1/local:") and scorer.settings()["decoding"] == "greedy"
