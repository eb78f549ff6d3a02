"""A minimal, fast HTTP/1.1 keep-alive server for benchmarks (run as its own process).

    python benchmarks/_loopback_server.py [--host 127.0.0.1] [--port 0] [--max-seconds 300]

Every request (any method, any path) gets ``200`` with a small fixed JSON body and a
``Content-Length``. Request bodies (``Content-Length``) are read and discarded; pipelined requests
are answered in order; ``Connection: close`` and HTTP/1.0 without keep-alive close after the
answer. Chunked request bodies are refused with ``501`` (httpx sends ``Content-Length`` for byte
content, so the benchmark never uses them).

The bound port is printed on stdout as ``PORT <n>`` once the server listens. The server stops when
its stdin reaches EOF (the parent closed it or died) or after ``--max-seconds``, whichever is first.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading

BODY = b'{"order_id":"ORD-1","status":"shipped","eta_days":2,"carrier":"UPS"}'
_HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: application/json\r\n"
    b"Content-Length: " + str(len(BODY)).encode() + b"\r\n"
)
RESPONSE = _HEAD + b"\r\n" + BODY
RESPONSE_CLOSE = _HEAD + b"Connection: close\r\n\r\n" + BODY
NOT_IMPLEMENTED = b"HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
MAX_HEAD = 64 * 1024


class HttpProtocol(asyncio.Protocol):
    __slots__ = ("body_left", "buf", "close_after", "transport")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.body_left: int | None = None  # None: reading a request head
        self.close_after = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def _refuse(self, response: bytes) -> None:
        assert self.transport is not None
        self.transport.write(response)
        self.transport.close()
        self.buf.clear()

    def data_received(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        buf = self.buf
        buf += data
        while True:
            if self.body_left is None:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > MAX_HEAD:
                        self._refuse(BAD_REQUEST)
                    return
                head = bytes(buf[:end])
                del buf[: end + 4]
                lines = head.split(b"\r\n")
                request_line = lines[0].split(b" ")
                if len(request_line) != 3:
                    self._refuse(BAD_REQUEST)
                    return
                keep_alive = request_line[2] == b"HTTP/1.1"
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        try:
                            length = int(value.strip())
                        except ValueError:
                            self._refuse(BAD_REQUEST)
                            return
                    elif name == b"connection":
                        token = value.strip().lower()
                        if token == b"close":
                            keep_alive = False
                        elif token == b"keep-alive":
                            keep_alive = True
                    elif name == b"transfer-encoding":
                        self._refuse(NOT_IMPLEMENTED)
                        return
                self.body_left = length
                self.close_after = not keep_alive
            if len(buf) < self.body_left:
                self.body_left -= len(buf)
                buf.clear()
                return
            del buf[: self.body_left]
            self.body_left = None
            if self.close_after:
                transport.write(RESPONSE_CLOSE)
                transport.close()
                return
            transport.write(RESPONSE)
            if not buf:
                return


async def until_stdin_closes(max_seconds: float, what: str) -> None:
    """Return when stdin reaches EOF (the parent closed it or died) or after ``max_seconds``."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def wait_for_eof() -> None:
        try:
            while sys.stdin.buffer.read(4096):
                pass
        finally:
            loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=wait_for_eof, name="stdin-eof", daemon=True).start()
    try:
        await asyncio.wait_for(stop.wait(), max_seconds)
    except TimeoutError:
        print(f"{what}: --max-seconds reached, stopping", file=sys.stderr)


async def serve(host: str, port: int, max_seconds: float) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(HttpProtocol, host, port, backlog=1024, reuse_address=True)
    bound = server.sockets[0].getsockname()[1]
    print(f"PORT {bound}", flush=True)
    async with server:
        await until_stdin_closes(max_seconds, "loopback server")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=300.0)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port, args.max_seconds))


if __name__ == "__main__":
    main()
