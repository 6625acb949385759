"""The app of the comparison tests, in three roles: production, baseline, candidate.

    python tests/compare/shadow_app.py PORT ROLE

- production answers every route;
- baseline runs "the same release" elsewhere: it differs only by environment noise, a JSON
  field naming the environment, a request id (in the body and `X-Request-Id`), `Date`, and
  per-environment session tokens;
- candidate has the noise too, plus three real regressions: `name` changed on
  `GET /users/:id`, a 500 on `GET /orders/:id`, and 50 ms more on `GET /slow`.

`GET /account` answers with secret-named headers (`X-Csrf-Token`, `X-Session-Id`,
`X-Auth-Token`, `WWW-Authenticate`) whose values differ per environment, and the candidate
answers it 401: only the headers' names and counts may reach a log line.

`GET /health` and `GET /products/:id` answer the same everywhere (headers aside). `POST
/login` echoes the password it was sent (the same everywhere) and hands out a session token
and cookie of its environment: secrets the comparison must never print.

One asyncio process (h11 frames the requests): many concurrent connections cost no thread
switches, so latency measures the routes, not the test machine. HTTP/1.1 keep-alive,
Content-Length on every answer.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import sys
import uuid

import h11

SLOW_MS = 20  # GET /slow everywhere; the candidate adds REGRESSION_MS
REGRESSION_MS = 50
SESSION_SECRET = "sess-9Qx7Lm2Vt8"  # per environment, suffixed with the environment's name
HEADER_SECRET = "hdr-Zp4Wq8Ks1"  # GET /account's secret headers, suffixed likewise
SECRET_HEADERS = ("X-Csrf-Token", "X-Session-Id", "X-Auth-Token", "WWW-Authenticate")

Answer = tuple[int, bytes, str, "str | None"]  # status, body, content type, Set-Cookie


class App:
    """The routes (module docstring) for one role."""

    def __init__(self, role: str) -> None:
        self.role = role

    async def answer(self, method: str, path: str, body: bytes, request_id: str) -> Answer:
        parts = path.strip("/").split("/")
        if method == "POST" and path == "/login":
            sent = json.loads(body or b"{}")
            token = f"{SESSION_SECRET}-{self.role}"
            document = {"ok": True, "password": sent.get("password"), "token": token}
            return self._json(self._noisy(document, request_id), f"session={token}; HttpOnly")
        if path == "/account":
            status = 401 if self.role == "candidate" else 200
            return status, b"account", "text/plain", None
        if path == "/health":
            return 200, b"ok", "text/plain", None
        if len(parts) == 2 and parts[0] == "products":
            return self._json({"id": int(parts[1]), "title": f"Product {parts[1]}", "price": 12.5})
        if len(parts) == 2 and parts[0] == "users":
            name = f"User {parts[1]}" if self.role == "candidate" else f"user{parts[1]}"
            return self._json(self._noisy({"id": int(parts[1]), "name": name}, request_id))
        if len(parts) == 2 and parts[0] == "orders":
            if self.role == "candidate":
                return 500, b"<h1>Internal Server Error</h1>", "text/html", None
            order = {"id": int(parts[1]), "total": 42, "state": "paid"}
            return self._json(self._noisy(order, request_id))
        if path == "/slow":
            delay = SLOW_MS + (REGRESSION_MS if self.role == "candidate" else 0)
            await asyncio.sleep(delay / 1000)
            return self._json(self._noisy({"report": "done"}, request_id))
        return 404, b"not found", "text/plain", None

    def _noisy(self, document: dict[str, object], request_id: str) -> dict[str, object]:
        return {**document, "env": self.role, "request_id": request_id}

    @staticmethod
    def _json(document: dict[str, object], cookie: str | None = None) -> Answer:
        return 200, json.dumps(document).encode(), "application/json", cookie

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection: h11 frames the requests, each answered in turn (keep-alive)."""
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await reader.read(65536))
                elif isinstance(event, h11.Request):
                    body = b""
                    while not isinstance(part := conn.next_event(), h11.EndOfMessage):
                        if part is h11.NEED_DATA:
                            conn.receive_data(await reader.read(65536))
                        elif isinstance(part, h11.Data):
                            body += part.data
                    await self._respond(conn, writer, event, body)
                    if conn.our_state is not h11.DONE:
                        break
                    conn.start_next_cycle()
                else:
                    break
        except (h11.ProtocolError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _respond(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, request: h11.Request, body: bytes
    ) -> None:
        request_id = str(uuid.uuid4())
        target = request.target.decode().split("?", 1)[0]
        status, payload, kind, cookie = await self.answer(
            request.method.decode(), target, body, request_id
        )
        headers = [
            ("Server", f"shadow-app ({self.role})"),
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Content-Type", kind),
            ("Content-Length", str(len(payload))),
            ("X-Request-Id", request_id),
        ]
        if cookie is not None:
            headers.append(("Set-Cookie", cookie))
        if target == "/account":
            headers += [(name, f"{HEADER_SECRET}-{name}-{self.role}") for name in SECRET_HEADERS]
        data = conn.send(h11.Response(status_code=status, headers=headers))
        data += conn.send(h11.Data(data=payload)) + conn.send(h11.EndOfMessage())
        writer.write(data)  # one write: no Nagle delay between head and body
        await writer.drain()


async def main(port: int, role: str) -> None:
    server = await asyncio.start_server(App(role).serve, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
