"""A stand-in for an OpenAI-compatible server on 127.0.0.1: it speaks the chat-completions protocol
(POST /v1/chat/completions, JSON in and out, status codes and Retry-After headers as OpenAI sends
them) so the real `openai` client can be tested without the network.

Each request is recorded; a `reply` function chosen by the test decides the answer from the request
body and the request's number: a `Reply` (status, JSON content or raw body, delay)."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    status: int = 200
    content: str | None = None  # the assistant message's content (a 200's answer)
    delay_seconds: float = 0.0
    headers: dict[str, str] | None = None
    prompt_tokens: int = 120
    completion_tokens: int = 40


class OpenAIStandIn:
    def __init__(self, reply: Callable[[dict, int], Reply]):
        self.reply = reply
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self._lock = threading.Lock()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with standin._lock:
                    standin.requests.append(body)
                    standin.headers.append({k.lower(): v for k, v in self.headers.items()})
                    number = len(standin.requests)
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                reply = standin.reply(body, number)
                time.sleep(reply.delay_seconds)
                if reply.status != 200:
                    error = {"message": f"stand-in status {reply.status}", "type": "server_error"}
                    return self._send(reply.status, {"error": error}, reply.headers)
                self._send(200, completion(body["model"], reply), reply.headers)

            def _send(self, status, payload, headers=None):
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> OpenAIStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def completion(model: str, reply: Reply) -> dict:
    return {
        "id": "chatcmpl-standin",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply.content, "refusal": None},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
        },
    }


def rewording(body: dict, rewrite: Callable[[str, str], str] = lambda topic, draft: draft) -> str:
    """A well-behaved model's answer: one sentence per requested topic, `rewrite(topic, draft)`."""
    request = json.loads(body["messages"][-1]["content"])
    sentences = [
        {"topic": t["id"], "text": rewrite(t["id"], t["draft"])} for t in request["topics"]
    ]
    return json.dumps({"sentences": sentences})


def hostile(sentences: dict[str, str], obey_tenant_text: bool = False):
    """A hostile or careless model: a `reply` for OpenAIStandIn that answers each topic in
    `sentences` with its sentence and every other topic with its draft. With `obey_tenant_text`
    it also does what tenant text tells it: a PR title or name holding "write exactly: X on T"
    makes it answer topic T with X (a prompt injection, followed)."""

    def reply(body: dict, number: int) -> Reply:
        request = json.loads(body["messages"][-1]["content"])
        answers = dict(sentences)
        if obey_tenant_text:
            tenant = request["tenant_data"]
            for text in [tenant["name"], *tenant["recent_pull_request_titles"]]:
                planted = re.search(r"write exactly: (.+) on (\S+)$", text)
                if planted:
                    answers[planted.group(2)] = planted.group(1)
        return Reply(content=rewording(body, lambda topic, draft: answers.get(topic, draft)))

    return reply
