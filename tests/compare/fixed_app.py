"""A destination that answers every request at once with the same small JSON response.

    python tests/compare/fixed_app.py PORT

For load and memory tests: it does no HTTP parsing beyond counting request heads (GET
requests without bodies), so it costs the machine next to nothing.
"""

from __future__ import annotations

import asyncio
import sys

BODY = b'{"ok": true}'
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
    len(BODY),
    BODY,
)


class Answer(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.tail = b""

    def data_received(self, data: bytes) -> None:
        data = self.tail + data
        heads = data.count(b"\r\n\r\n")
        self.tail = data[data.rfind(b"\r\n\r\n") + 4 :] if heads else data[-3:]
        if heads:
            self.transport.write(RESPONSE * heads)  # type: ignore[attr-defined]


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Answer, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
