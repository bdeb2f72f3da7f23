"""The service under a real Prometheus and Pushgateway (Debian's `prometheus` and
`prometheus-pushgateway`; `.ci/ops-checks install` installs them). Loopback only.

The dashboard's queries against them are in test_dashboard.py."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Running, fault, prefer, wait_until
from promql import ALERTS, alert_rules

pytestmark = [pytest.mark.slow, pytest.mark.integration]

Start = Callable[..., Running]
CRON = {"APP_SERVICE_NAME": "python-service-cron", "APP_INSTANCE": "cron"}


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed: apt-get install {name}, or .ci/ops-checks install")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A Prometheus or Pushgateway process on a loopback port; its log goes to a file."""

    def __init__(self, argv: list[str], port: int, log: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        with log.open("w") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        wait_until(self._ready, timeout=30, interval=0.1)

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            pytest.fail(f"{self.log.name} exited {self.proc.returncode}: {self.log.read_text()}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:  # not listening yet, or 503 while it starts
            return False

    def get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=5) as resp:
            return json.loads(resp.read())

    def query(self, expr: str) -> list[dict[str, Any]]:
        reply = self.get("/api/v1/query", query=expr)
        assert reply["status"] == "success", reply
        return reply["data"]["result"]  # type: ignore[no-any-return]

    def rules(self) -> list[dict[str, Any]]:
        return self.get("/api/v1/rules")["data"]["groups"][0]["rules"]  # type: ignore[no-any-return]

    def alerts(self, name: str) -> list[dict[str, Any]]:
        alerts = self.get("/api/v1/alerts")["data"]["alerts"]
        return [a for a in alerts if a["labels"]["alertname"] == name]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """Servers a test starts; stopped at the end whatever happened."""
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


@pytest.fixture
def prometheus(tmp_path: Path, servers: list[Server]) -> Callable[[list[str], list[str]], Server]:
    """Start Prometheus scraping `targets` as job python-service (and `gateways`) every 1 s,
    with the alert rules loaded."""
    path = binary("prometheus")

    def _start(targets: list[str], gateways: list[str]) -> Server:
        jobs: list[dict[str, object]] = [
            {"job_name": "python-service", "static_configs": [{"targets": targets}]}
        ]
        if gateways:  # honor_labels: keep the job and instance that the runs pushed
            gateway_job = {"job_name": "pushgateway", "honor_labels": True}
            jobs.append(gateway_job | {"static_configs": [{"targets": gateways}]})
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": jobs,
        }
        config_file = tmp_path / "prometheus.yml"
        config_file.write_text(json.dumps(config))  # JSON is YAML
        port = free_port()
        argv = [path, f"--config.file={config_file}", f"--web.listen-address=127.0.0.1:{port}"]
        argv.append(f"--storage.tsdb.path={tmp_path / 'prometheus-data'}")
        servers.append(Server(argv, port, tmp_path / "prometheus.log"))
        return servers[-1]

    return _start


@pytest.fixture
def pushgateway(tmp_path: Path, servers: list[Server]) -> Server:
    path = binary("prometheus-pushgateway")
    port = free_port()
    argv = [path, f"--web.listen-address=127.0.0.1:{port}"]
    servers.append(Server(argv, port, tmp_path / "pushgateway.log"))
    return servers[-1]


def address(service: Running) -> str:
    return f"127.0.0.1:{service.port}"


def value(result: list[dict[str, Any]]) -> float:
    assert len(result) == 1, result
    return float(result[0]["value"][1])


def test_prometheus_scrapes_the_service_and_sees_it_go_down(
    start: Start, prometheus: Callable[[list[str], list[str]], Server]
) -> None:
    service = start(f"app-{prefer('sync')}")
    prom = prometheus([address(service)], [])
    instance = f'{{instance="{address(service)}"}}'
    wait_until(lambda: prom.query(f"app_iterations_total{instance} > 0"), timeout=15)
    assert value(prom.query(f"up{instance}")) == 1
    assert value(prom.query(f"app_up{instance}")) == 1
    [build] = prom.query("app_build_info")
    labels = dict(build["metric"])
    assert labels.pop("version")  # the installed package's
    assert labels == {
        "__name__": "app_build_info",
        "job": "python-service",
        "instance": address(service),
        "commit": "unknown",
        "env": "dev",
        "service": "python-service",
    }
    # The alert rules run against the real series without errors.
    never = "0001-01-01T00:00:00Z"  # lastEvaluation of a rule not evaluated yet
    wait_until(lambda: all(r["lastEvaluation"] != never for r in prom.rules()), timeout=10)
    assert {r["name"]: r["health"] for r in prom.rules()} == {
        r["alert"]: "ok" for r in alert_rules()
    }

    service.proc.send_signal(signal.SIGTERM)
    assert service.wait() == 0
    wait_until(lambda: value(prom.query(f"up{instance}")) == 0, timeout=10)
    wait_until(lambda: prom.alerts("AppTargetDown"), timeout=10)
    [down] = prom.alerts("AppTargetDown")
    assert down["state"] == "pending"  # fires after its 2 minutes
    assert down["labels"]["instance"] == address(service)


def test_cron_runs_push_their_outcome_and_keep_the_last_success(
    start: Start, pushgateway: Server
) -> None:
    """A failed run pushes app_run_success 0 but leaves the last success's time in place."""

    def group() -> dict[str, float]:
        """The cron group's unlabelled samples, as the Pushgateway serves them."""
        with urllib.request.urlopen(f"{pushgateway.url}/metrics", timeout=5) as resp:
            lines = resp.read().decode().splitlines()
        labels = '{instance="cron",job="python-service-cron"} '
        return {
            line.split("{")[0]: float(line.split(labels)[1]) for line in lines if labels in line
        }

    ok = start(f"app-{prefer('sync')}", "--once", APP_PUSHGATEWAY_URL=pushgateway.url, **CRON)
    assert ok.wait() == 0
    first = group()
    assert first["app_run_success"] == 1
    assert first["app_run_duration_seconds"] > 0
    assert first["app_iterations_total"] == 1
    assert first["app_last_success_timestamp_seconds"] > 0

    failing = start(
        fault(prefer("sync"), "raise_always"),
        "--once",
        APP_PUSHGATEWAY_URL=pushgateway.url,
        **CRON,
    )
    assert failing.wait() == 1
    second = group()
    assert second["app_run_success"] == 0
    assert second["app_iteration_failures_total"] == 1
    last_success = "app_last_success_timestamp_seconds"
    assert second[last_success] == first[last_success]
    assert second["push_time_seconds"] > first["push_time_seconds"]
