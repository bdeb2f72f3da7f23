"""Prometheus metrics in a registry of the service's own, and the HTTP server for them.

The server answers `/metrics`, `/healthz` (liveness) and `/readyz` (readiness).
"""

from __future__ import annotations

import json
import logging
import selectors
import socket
import sys
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Gauge, Info, make_wsgi_app
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from app.config import Config
from app.heartbeat import DURATION_BUCKETS, LoopState
from app.readiness import ReadinessChecks

Probe = Callable[[], tuple[bool, dict[str, object]]]  # -> (ok, JSON body)
_BUCKET_LABELS = (*(repr(bound) for bound in DURATION_BUCKETS), "+Inf")  # le="0.001" ...

log = logging.getLogger(__name__)


class Metrics:
    """The template's metrics, in a registry owned by one service (so tests can run several).

    The loop's own metrics are read from its LoopState when scraped (see `track`). Add your
    own with `registry=metrics.registry`, e.g.
    `Counter("app_jobs_total", "Jobs done", registry=self.metrics.registry)`.
    """

    def __init__(self, config: Config, *, event_loop: bool = False) -> None:
        self.registry = registry = CollectorRegistry()
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        Info("app_build", "Build and deployment identity", registry=registry).info(
            {
                "version": config.version,
                "commit": config.commit,
                "env": config.env,
                "service": config.service_name,
            }
        )
        self.loop_lag: Gauge | None = None
        if event_loop:
            self.loop_lag = Gauge(
                "app_event_loop_lag_seconds",
                "How late the asyncio loop ran a timer, at the last check",
                registry=registry,
            )
        self._state = LoopState()
        self._is_up: Callable[[], bool] = lambda: False
        self._checks: ReadinessChecks | None = None
        registry.register(self)  # as a collector: collect() below

    def track(
        self, state: LoopState, is_up: Callable[[], bool], checks: ReadinessChecks | None = None
    ) -> None:
        """Export `state`, app_up from `is_up()` and the results of `checks`, from now on."""
        self._state, self._is_up, self._checks = state, is_up, checks

    def collect(self) -> Iterable[Metric]:
        """Build the loop's metric families from its state, at scrape time."""
        state = self._state
        yield GaugeMetricFamily(
            "app_up", "1 while the service runs, 0 once shutdown begins", value=self._is_up()
        )
        yield CounterMetricFamily(
            "app_iterations", "Iterations run, failed or not", value=state.iterations
        )
        yield CounterMetricFamily(
            "app_iteration_failures", "Iterations that raised or timed out", value=state.failures
        )
        yield GaugeMetricFamily(
            "app_last_iteration_timestamp_seconds",
            "Unix time the last iteration finished, failed or not",
            value=state.last_iteration_ts or 0.0,
        )
        yield GaugeMetricFamily(
            "app_last_success_timestamp_seconds",
            "Unix time the last successful iteration finished",
            value=state.last_success_ts or 0.0,
        )
        counts = list(state.duration_counts)  # one copy: the loop may be writing
        cumulative, buckets = 0, []
        for label, count in zip(_BUCKET_LABELS, counts, strict=True):
            cumulative += count
            buckets.append((label, float(cumulative)))
        yield HistogramMetricFamily(
            "app_iteration_duration_seconds",
            "Time spent in run_iteration",
            buckets=buckets,
            sum_value=state.duration_sum,
        )
        if self._checks is not None and self._checks.names:
            passing = GaugeMetricFamily(
                "app_readiness_check_ok",
                "1 if the readiness check passed at its last run, else 0",
                labels=["check"],
            )
            for entry in self._checks.report():
                passing.add_metric([str(entry["name"])], entry["status"] == "ok")
            yield passing


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a stuck client must not keep the process alive
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went silent or away is no error of ours; others are logged as JSON.

        socketserver's default prints a traceback to stderr: a silent client's timeout
        (`_QuietHandler.timeout`) would put one there.
        """
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # TimeoutError, ConnectionResetError, BrokenPipeError
            return
        log.error(
            "metrics request failed",
            exc_info=exc,
            extra={"event": "unhandled_exception", "where": "metrics server"},
        )


class _QuietHandler(WSGIRequestHandler):
    timeout = 10  # seconds; a slow or silent client gives up its thread

    def log_message(self, format: str, *args: Any) -> None:
        """Access logs are noise at scrape rate; errors still reach the client."""


class MetricsServer:
    """`/metrics`, `/healthz`, `/readyz` on one port, served from a background thread."""

    def __init__(
        self, registry: CollectorRegistry, host: str, port: int, *, health: Probe, ready: Probe
    ) -> None:
        self._metrics_app = make_wsgi_app(registry)
        self._probes = {"/healthz": health, "/readyz": ready}
        self.host, self.port = host, port
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False

    def start(self) -> None:
        """Bind and serve. Raises OSError if the address cannot be bound (e.g. port in use)."""
        family = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)[0][0]
        server_class = type("_BoundServer", (_Server,), {"address_family": family})
        self._server = make_server(self.host, self.port, self._app, server_class, _QuietHandler)
        self.port = self._server.server_address[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(
            target=self._serve, args=(self._server,), name="metrics-server", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and free the port, at once (no poll interval to wait out)."""
        if self._server is None:
            return
        self._stopping = True
        self._wake_w.send(b"\0")
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server.server_close()
        self._server = None
        self._wake_r.close()
        self._wake_w.close()

    def _serve(self, server: WSGIServer) -> None:
        """Like serve_forever(), but woken by stop() through a socket instead of polling."""
        with selectors.DefaultSelector() as selector:
            selector.register(server, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._stopping:
                for key, _ in selector.select():
                    if key.fileobj is server and not self._stopping:
                        server.handle_request()

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            return self._route(environ, start_response)
        except Exception as exc:  # a collector or probe raised: one JSON record and a 500
            # (wsgiref's handler would print the traceback to stderr); serving goes on.
            log.error(
                "metrics request failed",
                exc_info=exc,
                extra={"event": "unhandled_exception", "where": "metrics server"},
            )
            body: dict[str, object] = {"error": type(exc).__name__, "see": "the service log"}
            return _reply(start_response, "500 Internal Server Error", body)

    def _route(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return _reply(start_response, "405 Method Not Allowed", {"error": "use GET"})
        if path == "/metrics":
            return self._metrics_app(environ, start_response)  # type: ignore[no-any-return]
        probe = self._probes.get(path)
        if probe is None:
            return _reply(
                start_response, "404 Not Found", {"error": "try /metrics, /healthz, /readyz"}
            )
        ok, body = probe()
        return _reply(start_response, "200 OK" if ok else "503 Service Unavailable", body)


def _reply(start_response: Callable[..., Any], status: str, body: dict[str, object]) -> list[bytes]:
    data = json.dumps(body).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    if status.startswith("405"):
        headers.append(("Allow", "GET, HEAD"))
    start_response(status, headers)
    return [data]
