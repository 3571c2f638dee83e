"""A local HTTP server standing in for a Slack incoming webhook, able to fail on purpose."""

from __future__ import annotations

import json
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Webhook:
    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.attempts = 0
        self.failures: deque[int] = deque()  # statuses to answer before accepting again
        self.always_fail: int | None = None  # answer every post with this status
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                webhook.attempts += 1
                status = webhook.always_fail or (webhook.failures.popleft() if webhook.failures else 200)
                if status == 200:
                    webhook.posts.append(body)
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        # A Slack webhook's path is its secret.
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T000/B000/SeCrEtPaTh0123456789"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
