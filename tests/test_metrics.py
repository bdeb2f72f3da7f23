"""Metrics in a registry per service, and the HTTP server for /metrics, /healthz, /readyz."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator

import pytest

from app.config import Config
from app.heartbeat import LoopState
from app.metrics import Metrics, MetricsServer

Probe = tuple[bool, dict[str, object]]


class Probes:
    """Liveness and readiness answers the test can flip."""

    def __init__(self) -> None:
        self.alive: Probe = (True, {"status": "ok"})
        self.ready: Probe = (False, {"status": "starting"})


@pytest.fixture
def probes() -> Probes:
    return Probes()


@pytest.fixture
def server(probes: Probes) -> Iterator[MetricsServer]:
    metrics = Metrics(Config(service_name="billing", env="prod", commit="abc123", version="1.2.3"))
    tracked(metrics, (True, 0.02, 1000.0))
    srv = MetricsServer(
        metrics.registry, "127.0.0.1", 0, health=lambda: probes.alive, ready=lambda: probes.ready
    )
    srv.start()
    yield srv
    srv.stop()


def tracked(metrics: Metrics, *iterations: tuple[bool, float, float]) -> LoopState:
    """Make `metrics` export a LoopState that recorded (ok, duration, end time) iterations."""
    state = LoopState()
    for ok, duration, now in iterations:
        state.record(ok, duration, now, 0.0)
    metrics.track(state, lambda: True)
    return state


def request(
    srv: MetricsServer, path: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def test_each_service_owns_its_registry() -> None:
    first, second = Metrics(Config()), Metrics(Config(), event_loop=True)
    tracked(first, (True, 0.1, 50.0))
    assert first.registry.get_sample_value("app_iterations_total") == 1
    assert second.registry.get_sample_value("app_iterations_total") == 0
    assert first.loop_lag is None
    assert second.registry.get_sample_value("app_event_loop_lag_seconds") == 0


def test_registry_carries_process_platform_and_gc_collectors() -> None:
    registry = Metrics(Config()).registry
    assert registry.get_sample_value("process_resident_memory_bytes") is not None
    assert registry.get_sample_value("python_gc_collections_total", {"generation": "0"}) is not None
    names = {family.name for family in registry.collect()}
    assert "python_info" in names


def test_loop_state_is_exported_at_scrape_time() -> None:
    metrics = Metrics(Config())
    state = tracked(metrics, (True, 0.003, 100.0), (False, 2.0, 200.0))
    sample = metrics.registry.get_sample_value
    assert sample("app_iterations_total") == 2
    assert sample("app_iteration_failures_total") == 1
    assert sample("app_last_iteration_timestamp_seconds") == 200.0
    assert sample("app_last_success_timestamp_seconds") == 100.0
    assert sample("app_iteration_duration_seconds_count") == 2
    assert sample("app_iteration_duration_seconds_bucket", {"le": "0.005"}) == 1
    assert sample("app_iteration_duration_seconds_bucket", {"le": "5.0"}) == 2
    assert sample("app_iteration_duration_seconds_bucket", {"le": "+Inf"}) == 2
    assert sample("app_iteration_duration_seconds_sum") == pytest.approx(2.003)
    assert sample("app_up") == 1
    state.record(True, 400.0, 300.0, 0.0)  # slower than the last bucket
    assert sample("app_iteration_duration_seconds_bucket", {"le": "300.0"}) == 2
    assert sample("app_iteration_duration_seconds_bucket", {"le": "+Inf"}) == 3
    assert sample("app_iterations_total") == 3


def test_build_info_labels_identify_the_deployment() -> None:
    metrics = Metrics(Config(service_name="billing", env="prod", commit="abc", version="2.0"))
    labels = {"service": "billing", "env": "prod", "commit": "abc", "version": "2.0"}
    assert metrics.registry.get_sample_value("app_build_info", labels) == 1


def test_metrics_endpoint_serves_prometheus_text(server: MetricsServer) -> None:
    status, headers, body = request(server, "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    assert b"app_iterations_total 1.0" in body
    assert (
        b'app_build_info{commit="abc123",env="prod",service="billing",version="1.2.3"} 1.0' in body
    )


@pytest.mark.parametrize(("path", "attr"), [("/healthz", "alive"), ("/readyz", "ready")])
def test_probe_endpoints_answer_200_or_503_with_json(
    server: MetricsServer, probes: Probes, path: str, attr: str
) -> None:
    setattr(probes, attr, (True, {"status": "fine"}))
    status, headers, body = request(server, path)
    assert (status, json.loads(body)) == (200, {"status": "fine"})
    assert headers["Content-Type"] == "application/json"
    setattr(probes, attr, (False, {"status": "stale"}))
    status, _, body = request(server, path)
    assert (status, json.loads(body)) == (503, {"status": "stale"})


def test_unknown_path_is_404_json(server: MetricsServer) -> None:
    status, _, body = request(server, "/nope")
    assert status == 404
    assert "/metrics" in json.loads(body)["error"]


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_other_methods_are_405(server: MetricsServer, method: str) -> None:
    status, headers, _ = request(server, "/metrics", method=method)
    assert status == 405
    assert headers["Allow"] == "GET, HEAD"


def test_oversized_header_is_rejected_and_server_keeps_serving(server: MetricsServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n")
        reply = sock.recv(100)
    status = int(reply.split()[1])
    assert status in (400, 431)
    assert request(server, "/healthz")[0] == 200


def test_port_in_use_raises_oserror() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        probes = Probes()
        srv = MetricsServer(
            Metrics(Config()).registry,
            "127.0.0.1",
            port,
            health=lambda: probes.alive,
            ready=lambda: probes.ready,
        )
        with pytest.raises(OSError, match="in use"):
            srv.start()


def test_stop_frees_the_port(server: MetricsServer) -> None:
    port = server.port
    server.stop()
    with socket.socket() as again:
        again.bind(("127.0.0.1", port))
    server.stop()  # a second stop is harmless
