"""Slow clients, as an attacker on the same machine would send them (loopback only, bounded in
sockets and seconds): sockets that send a request's headers or body a few bytes at a time, and
timed probes of what other callers meet meanwhile. Shared by tests/api/test_slow_clients.py and
bench/slow_clients.py."""

from __future__ import annotations

import socket
import statistics
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager, suppress

import httpx


class Trickle:
    """`n` sockets to host:port, each sending one more piece of an unfinished request every `every`
    seconds from one thread, until closed. `body=True`: complete headers (with `headers`) announcing a
    body that never completes; else headers that never end."""

    def __init__(self, host: str, port: int, n: int, *, body: bool = False, headers: dict[str, str] | None = None,
                 path: str = "/api/v1/jobs", every: float = 1.0):
        self.socks: list[socket.socket] = []
        self.body, self.every, self.stop = body, every, threading.Event()
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        for _ in range(n):
            sock = socket.create_connection((host, port), timeout=5)
            if body:
                sock.sendall((f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{extra}"
                              "Content-Length: 100000\r\n\r\n{").encode())
            else:
                sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n".encode())
            sock.setblocking(False)
            self.socks.append(sock)
        self.thread = threading.Thread(target=self._drip, daemon=True)
        self.thread.start()

    def _drip(self) -> None:
        i = 0
        while not self.stop.wait(self.every):
            i += 1
            piece = b" " if self.body else f"X-Slow-{i}: {i}\r\n".encode()
            for sock in self.socks:
                with suppress(OSError):
                    sock.send(piece)

    def alive(self) -> int:
        """How many of the sockets the server still holds open (it has not closed or reset them)."""
        held = 0
        for sock in self.socks:
            try:
                held += sock.recv(1, socket.MSG_PEEK) != b""
            except BlockingIOError:
                held += 1
            except OSError:
                pass
        return held

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        for sock in self.socks:
            sock.close()


@contextmanager
def trickling(*trickles: Callable[[], Trickle]):
    opened = []
    try:
        for make in trickles:
            opened.append(make())
        yield opened
    finally:
        for t in opened:
            t.close()


def probe(requests: list[Callable[[], httpx.Response]], n: int, timeout: float = 10.0) -> list[float]:
    """Seconds each of `n` requests took (cycling through `requests`); a request that failed or timed
    out counts as `timeout`. Each answer must be a success."""
    took = []
    for i in range(n):
        started = time.monotonic()
        try:
            answer = requests[i % len(requests)]()
            ok = answer.status_code < 400
        except httpx.HTTPError:
            ok = False
        took.append(time.monotonic() - started if ok else timeout)
    return took


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98] if len(values) > 1 else values[0]


def open_streams(host: str, port: int, path: str, token: str, n: int) -> tuple[list[socket.socket], dict[int, int]]:
    """`n` event-stream requests on their own sockets, never read beyond the status line: the sockets
    (close them) and how many got each status."""
    socks, statuses = [], {}
    for _ in range(n):
        sock = socket.create_connection((host, port), timeout=10)
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
        socks.append(sock)
    for sock in socks:
        line = b""
        with suppress(OSError):
            while not line.endswith(b"\r\n"):
                got = sock.recv(1)
                if not got:
                    break
                line += got
        status = int(line.split()[1]) if len(line.split()) > 1 else 0
        statuses[status] = statuses.get(status, 0) + 1
    return socks, statuses
