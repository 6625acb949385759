"""A mirror target for the proxy benchmark that counts what it receives.

    python bench/sink.py --port P --control-port C --mode gor|stall

- `gor`: reads as fast as it can and counts GoReplay-framed messages (separators), as a
  replayer's `--input-tcp` would receive them; it never answers.
- `stall`: accepts connections and never reads from them, so the sender's socket buffers
  fill up: the mirror target that hangs.

A connection to the control port gets one line, `messages=N bytes=N connections=N`, and
is closed (common.read_counters reads it). One thread, one selector: the sink takes
little of the CPU that the proxy under test needs.
"""

from __future__ import annotations

import argparse
import contextlib
import selectors
import socket

from traffic_duplicator.gorproto import SEPARATOR  # run with PYTHONPATH at the repo root

READ_SIZE = 256 * 1024


class Counter:
    """Counts separators in a byte stream split across reads at any point."""

    def __init__(self) -> None:
        self.tail = b""

    def feed(self, data: bytes) -> int:
        buf = self.tail + data
        found = buf.count(SEPARATOR)
        last = buf.rfind(SEPARATOR)
        rest = buf[last + len(SEPARATOR) :] if last >= 0 else buf
        # Only a separator's proper prefix can still complete with the next read.
        self.tail = rest[-(len(SEPARATOR) - 1) :]
        return found


def listener(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def serve(port: int, control_port: int, mode: str) -> None:
    sel = selectors.DefaultSelector()
    data_sock = listener(port)
    control_sock = listener(control_port)
    sel.register(data_sock, selectors.EVENT_READ, "accept")
    sel.register(control_sock, selectors.EVENT_READ, "control")
    messages = received = connections = 0
    held: list[socket.socket] = []  # stall mode: accepted, never read
    while True:
        for key, _ in sel.select():
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if key.data == "accept":
                with _suppress_again():
                    conn, _ = sock.accept()
                    connections += 1
                    if mode == "stall":
                        held.append(conn)
                    else:
                        conn.setblocking(False)
                        sel.register(conn, selectors.EVENT_READ, Counter())
            elif key.data == "control":
                with _suppress_again():
                    conn, _ = sock.accept()
                    line = f"messages={messages} bytes={received} connections={connections}\n"
                    conn.setblocking(True)
                    conn.sendall(line.encode())
                    conn.close()
            else:
                try:
                    data = sock.recv(READ_SIZE)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(sock)
                    sock.close()
                    continue
                received += len(data)
                messages += key.data.feed(data)


def _suppress_again() -> contextlib.suppress:
    """An accept() that lost a race, or a peer that reset before it was accepted."""
    return contextlib.suppress(BlockingIOError, InterruptedError, ConnectionAbortedError)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--control-port", type=int, required=True)
    parser.add_argument("--mode", choices=("gor", "stall"), required=True)
    args = parser.parse_args()
    try:
        serve(args.port, args.control_port, args.mode)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
