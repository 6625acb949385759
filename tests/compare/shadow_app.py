"""The app of the comparison tests, in three roles: production, baseline, candidate.

    python tests/compare/shadow_app.py PORT ROLE

- production answers every route;
- baseline runs "the same release" elsewhere: it differs only by environment noise, a JSON
  field naming the environment, a request id (in the body and `X-Request-Id`), `Date`, and
  per-environment session tokens;
- candidate has the noise too, plus three real regressions: `name` changed on
  `GET /users/:id`, a 500 on `GET /orders/:id`, and 50 ms more on `GET /slow`.

`GET /health` and `GET /products/:id` answer the same everywhere (headers aside). `POST
/login` echoes the password it was sent (the same everywhere) and hands out a session token
and cookie of its environment: secrets the comparison must never print.

Standard library only; HTTP/1.1 keep-alive with Content-Length on every answer.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SLOW_MS = 20  # GET /slow everywhere; the candidate adds REGRESSION_MS
REGRESSION_MS = 50
SESSION_SECRET = "sess-9Qx7Lm2Vt8"  # per environment, suffixed with the environment's name


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    role = "production"
    _request_id = ""

    def log_message(self, format: str, *args: object) -> None:
        return None  # quiet: the tests read the wrapper's own lines

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        parts = path.strip("/").split("/")
        if path == "/health":
            self._send(200, b"ok", "text/plain")
        elif len(parts) == 2 and parts[0] == "products":
            self._json({"id": int(parts[1]), "title": f"Product {parts[1]}", "price": 12.5})
        elif len(parts) == 2 and parts[0] == "users":
            renamed = self.role == "candidate"
            name = f"User {parts[1]}" if renamed else f"user{parts[1]}"
            self._json(self._noisy({"id": int(parts[1]), "name": name}))
        elif len(parts) == 2 and parts[0] == "orders":
            if self.role == "candidate":
                self._send(500, b"<h1>Internal Server Error</h1>", "text/html")
            else:
                self._json(self._noisy({"id": int(parts[1]), "total": 42, "state": "paid"}))
        elif path == "/slow":
            delay = SLOW_MS + (REGRESSION_MS if self.role == "candidate" else 0)
            time.sleep(delay / 1000)
            self._json(self._noisy({"report": "done"}))
        else:
            self._send(404, b"not found", "text/plain")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        sent = json.loads(self.rfile.read(length) or b"{}")
        token = f"{SESSION_SECRET}-{self.role}"
        document = self._noisy({"ok": True, "password": sent.get("password"), "token": token})
        self._json(document, cookie=f"session={token}; HttpOnly")

    def _noisy(self, document: dict[str, object]) -> dict[str, object]:
        return {**document, "env": self.role, "request_id": self._request_id}

    def _json(self, document: dict[str, object], cookie: str | None = None) -> None:
        self._send(200, json.dumps(document).encode(), "application/json", cookie)

    def _send(self, status: int, body: bytes, kind: str, cookie: str | None = None) -> None:
        self.send_response(status)  # adds Server and Date
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Request-Id", self._request_id)
        if cookie is not None:
            self.send_header("Set-Cookie", cookie)
        self.end_headers()
        self.wfile.write(body)

    def handle_one_request(self) -> None:
        self._request_id = str(uuid.uuid4())  # a new one for each request on the connection
        super().handle_one_request()


def main() -> None:
    port, role = int(sys.argv[1]), sys.argv[2]
    Handler.role = role
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
