"""A fault-injecting HTTP proxy on 127.0.0.1, between annobridge and a real server.

Per request, from a seeded random draw: a 500 without forwarding, a 429 with Retry-After
without forwarding, a connection reset after forwarding (the server did the work, the
client never hears of it), a stall after forwarding, or a clean pass-through. Everything
else is relayed byte for byte.

A stall holds the answer until the client hangs up (its timeout ran out), however long that
takes, up to ``stall_seconds``: tests count ``abandoned`` stalls instead of betting that a
wall-clock stall outlasts the client's timeout on a loaded machine.
"""

from __future__ import annotations

import http.client
import random
import select
import socket
import struct
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


def hung_up(sock: socket.socket, limit: float) -> bool:
    """Wait until the client closes ``sock`` (True) or ``limit`` seconds pass (False)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        readable, _, _ = select.select([sock], [], [], 0.05)
        if readable:
            try:
                if sock.recv(1, socket.MSG_PEEK) == b"":
                    return True
            except (ConnectionResetError, OSError):
                return True
            time.sleep(0.05)  # data, not a hang-up: the client is still there
    return False


class FaultProxy:
    """``with FaultProxy(upstream, seed=1) as proxy: ... proxy.url ...``"""

    def __init__(
        self,
        upstream: str,
        *,
        seed: int = 0,
        error_500: float = 0.05,
        error_429: float = 0.05,
        reset: float = 0.02,
        stall: float = 0.01,
        stall_seconds: float = 120.0,
        retry_after: int = 1,
        first: tuple[str, ...] = ("pass", "500", "pass", "429", "pass", "reset", "pass", "stall"),
    ) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.rates = [("500", error_500), ("429", error_429), ("reset", reset), ("stall", stall)]
        self.stall_seconds = stall_seconds
        self.retry_after = retry_after
        self.injected: Counter[str] = Counter()
        self.abandoned = 0  # stalls the client gave up on before any answer
        # The first decisions are fixed, so every kind of fault happens in every run.
        self.scripted = list(first)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fault = proxy._draw()
                if fault == "500":
                    return self._reply(500, b'{"detail": "injected server error"}', {})
                if fault == "429":
                    headers = {"Retry-After": str(proxy.retry_after)}
                    return self._reply(429, b'{"detail": "injected rate limit"}', headers)
                status, payload, headers = proxy._forward(
                    self.command, self.path, self.headers, body
                )
                if fault == "reset":
                    # RST instead of FIN: the client sees "connection reset by peer"
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                    self.close_connection = True
                    return None
                if fault == "stall":
                    if hung_up(self.connection, proxy.stall_seconds):
                        with proxy.lock:
                            proxy.abandoned += 1
                    self.close_connection = True
                    return None
                return self._reply(status, payload, headers)

            def _reply(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _draw(self) -> str:
        with self.lock:
            if self.scripted:
                name = self.scripted.pop(0)
                self.injected[name] += 1
                return name
            x = self.rng.random()
            for name, rate in self.rates:
                if x < rate:
                    self.injected[name] += 1
                    return name
                x -= rate
            self.injected["pass"] += 1
            return "pass"

    def _forward(
        self, method: str, path: str, headers: object, body: bytes
    ) -> tuple[int, bytes, dict[str, str]]:
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=120)
        try:
            out = {
                k: v
                for k, v in headers.items()  # type: ignore[attr-defined]
                if k.lower() not in HOP_HEADERS
            }
            conn.request(method, path, body=body or None, headers=out)
            response = conn.getresponse()
            payload = response.read()
            kept = {k: v for k, v in response.getheaders() if k.lower() not in HOP_HEADERS}
            return response.status, payload, kept
        finally:
            conn.close()

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
