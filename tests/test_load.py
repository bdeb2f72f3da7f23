"""Load and garbage on the HTTP endpoints while the loop runs: nothing fails, the loop goes on.

CLIENTS threads ask for /metrics, /healthz and /readyz on 127.0.0.1 for LOAD_SECONDS, while
other clients send garbage (bad methods, huge headers, unknown paths, HTTP/0.9, binary junk,
half a request then silence, nothing at all, a reset). Every good request must succeed
(/healthz 200 proves the loop made progress within health_max_age_seconds at that moment);
every garbage request gets a 4xx (505 for an unknown HTTP version) or is dropped; app-health
passes during the load; the heartbeat's iteration count keeps growing; a stalled client ties
up only its own thread; and at the end the service stops with status 0 and an empty stderr.
Run with `-s` to see requests per second and latency.
"""

from __future__ import annotations

import http.client
import itertools
import json
import re
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import BIN, MODELS, Running, fault, wait_until

LOAD_SECONDS = 10.0  # per model
CLIENTS = 6
PATHS = ("/metrics", "/healthz", "/readyz")
MAX_AGE_SECONDS = 5.0  # /healthz and app-health fail if the loop stalls this long
HANDLER_TIMEOUT_SECONDS = 10  # metrics.py: a silent client's thread gives up after this

pytestmark = pytest.mark.slow


@dataclass
class Tally:
    """What the load clients saw."""

    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, seconds: float, problem: str | None) -> None:
        with self.lock:
            if problem is None:
                self.latencies.append(seconds)
            else:
                self.failures.append(problem)


def hammer(port: int, path: str, until: float, tally: Tally) -> None:
    """GET `path` again and again until `until` (monotonic); every answer must be 200."""
    while time.monotonic() < until:
        started = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            problem = None if response.status == 200 else f"{path}: {response.status}"
        except (OSError, http.client.HTTPException) as exc:
            problem = f"{path}: {exc!r}"
        finally:
            conn.close()
        tally.add(time.perf_counter() - started, problem)


def exchange(port: int, data: bytes, *, reset: bool = False, timeout: float = 30) -> bytes:
    """Send raw bytes, read until the server closes; b"" means the server dropped us."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        if data:
            sock.sendall(data)
        if reset:  # close with RST instead of FIN: a client that vanishes mid-request
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return b""
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def status_of(reply: bytes) -> int | None:
    """The status code of a raw HTTP reply, or None if the connection was just closed.

    A request line the server cannot read counts as HTTP/0.9, whose replies have no status
    line: http.server then sends only its HTML error page, which names the code.
    """
    if not reply:
        return None
    if reply.startswith(b"HTTP/1."):
        return int(reply.split(b"\r\n", 1)[0].split()[1])
    match = re.search(rb"<p>Error code: (\d{3})</p>", reply)
    if match is None:
        raise AssertionError(f"not an HTTP reply: {reply[:200]!r}")
    return int(match.group(1))


GARBAGE: list[tuple[str, bytes, set[int | None]]] = [
    ("POST", b"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", {405}),
    ("DELETE", b"DELETE /healthz HTTP/1.0\r\n\r\n", {405}),
    ("made-up method", b"BREW /readyz HTTP/1.1\r\n\r\n", {405}),
    ("unknown path", b"GET /admin HTTP/1.1\r\n\r\n", {404}),
    ("path traversal", b"GET /../../etc/passwd HTTP/1.0\r\n\r\n", {404}),
    ("double slash", b"GET //metrics HTTP/1.0\r\n\r\n", {200}),  # http.server: "/metrics"
    ("huge header", b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", {431}),
    ("many headers", b"GET /healthz HTTP/1.1\r\n" + b"X-A: b\r\n" * 150 + b"\r\n", {431}),
    ("huge URI", b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", {414}),
    ("binary junk", b"\x00\xff\xfe\x16\x03\x01 junk\r\n\r\n", {400}),
    ("unknown HTTP version", b"GET /healthz HTTP/9.9\r\n\r\n", {505}),
    ("bad version", b"GET /healthz HTTP/x\r\n\r\n", {400}),
]
# Clients that never finish a request: the server must drop them after its handler timeout.
STALLED: list[tuple[str, bytes]] = [
    ("half a request", b"GET /metr"),
    ("request line, no blank line", b"GET /metrics HTTP/1.1\r\nHost: x\r\n"),
    ("HTTP/0.9", b"GET /metrics\r\n"),
    ("TLS client hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40),
    ("connects, sends nothing", b""),
]


def send_garbage(port: int, until: float, problems: list[str], sent: list[int]) -> None:
    """Send every GARBAGE request in turn until `until`, counting them in `sent`."""
    while time.monotonic() < until:
        for name, data, allowed in GARBAGE:
            try:
                got = status_of(exchange(port, data))
            except ConnectionResetError:  # the server closed before reading all we sent
                got = None
            except (OSError, AssertionError) as exc:
                problems.append(f"{name}: {exc!r}")
                continue
            if got not in allowed:
                problems.append(f"{name}: got {got}, expected one of {allowed}")
            sent.append(1)
        exchange(port, b"GET /metrics HTTP/1.0\r\n\r\n", reset=True)
        sent.append(1)


def heartbeat_iterations(path: Path) -> int:
    try:
        return int(json.loads(path.read_text())["iterations"])
    except (OSError, ValueError, KeyError):  # between write and rename: try again
        return -1


def run_health(env: dict[str, str]) -> int:
    return subprocess.run(
        [str(BIN / "app-health")], env=env, capture_output=True, timeout=30, check=False
    ).returncode


def in_thread(target: Callable[..., object], *args: object) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("model", MODELS)
def test_endpoints_under_load_and_garbage_never_fail_and_the_loop_goes_on(
    start: Callable[..., Running], service_env: dict[str, str], model: str
) -> None:
    heartbeat = Path(service_env["APP_HEARTBEAT_FILE"])
    proc = start(
        fault(model, "ok"),
        APP_LOOP_SLEEP_SECONDS="0.01",
        APP_HEALTH_MAX_AGE_SECONDS=str(MAX_AGE_SECONDS),
    )
    port = proc.port
    wait_until(lambda: heartbeat_iterations(heartbeat) > 0)

    # Stalled clients first: they hold their threads for the whole load.
    stalled: dict[str, bytes | str] = {}

    def stall(name: str, data: bytes) -> None:
        try:
            stalled[name] = exchange(port, data, timeout=HANDLER_TIMEOUT_SECONDS * 3)
        except OSError as exc:
            stalled[name] = repr(exc)

    stallers = [in_thread(stall, name, data) for name, data in STALLED]

    tally = Tally()
    garbage_problems: list[str] = []
    garbage_sent: list[int] = []
    health_codes: list[int] = []
    samples: list[int] = []
    began = time.monotonic()
    until = began + LOAD_SECONDS
    paths = [PATHS[i % len(PATHS)] for i in range(CLIENTS)]
    clients = [in_thread(hammer, port, path, until, tally) for path in paths]
    garbage = in_thread(send_garbage, port, until, garbage_problems, garbage_sent)
    while time.monotonic() < until:  # watch the loop while the clients hammer it
        samples.append(heartbeat_iterations(heartbeat))
        health_codes.append(run_health(service_env))
        time.sleep(1)  # a sampling period, not a synchronisation
    for thread in [*clients, garbage]:
        thread.join(timeout=60)
    elapsed = time.monotonic() - began

    count = len(tally.latencies)
    ordered = sorted(tally.latencies)
    p50, p99 = ordered[count // 2], ordered[min(count - 1, int(count * 0.99))]
    progress = [s for s in samples if s >= 0]
    print(
        f"\n{model}: {count} requests in {elapsed:.1f} s from {CLIENTS} clients = "
        f"{count / elapsed:.0f} req/s, p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
        f"{len(tally.failures)} failed; {sum(garbage_sent)} garbage requests; "
        f"iterations during load {progress[0]} -> {progress[-1]}; "
        f"app-health {health_codes.count(0)}/{len(health_codes)} ok"
    )
    assert tally.failures == []
    assert garbage_problems == []
    assert health_codes
    assert set(health_codes) == {0}
    assert len(progress) >= 2
    assert all(a < b for a, b in itertools.pairwise(progress)), progress

    # A stalled client held one thread, not the server: /healthz answered throughout (above)
    # and the stalled ones are dropped after the handler's timeout, with nothing sent.
    for thread in stallers:
        thread.join(timeout=HANDLER_TIMEOUT_SECONDS * 4)
    assert stalled == {name: b"" for name, _ in STALLED}
    assert proc.get("/healthz")[0] == 200

    proc.proc.send_signal(signal.SIGTERM)
    assert proc.wait() == 0
    assert proc.stderr == ""  # no traceback for a client that timed out or vanished
    assert [r.get("event") for r in proc.records][-1] == "shutdown_complete"
