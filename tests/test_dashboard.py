"""The Compose monitoring profile: deploy/compose (Prometheus) and deploy/grafana (the dashboard).

Everything that reads those two directories is here, so that deleting the profile is
deleting them and this file. The alert rules (deploy/prometheus) are in test_deploy.py and
test_monitoring.py, whose Pushgateway stand-in, Prometheus and Pushgateway these tests use.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest
import test_deploy
import test_monitoring
import yaml
from conftest import COMMANDS, MODELS, Running, prefer, wait_until
from promql import DEPLOY, dashboard, dashboard_queries, metric_names
from test_monitoring import CRON, Server, address

ROOT = DEPLOY.parent
# Grafana fills these in before it sends a dashboard query.
VARIABLES = {
    "$__rate_interval": "5s",  # five 1 s scrapes
    "$job": "python-service",
    "$instance": ".*",
    "$cron_job": "python-service-cron",
}
# Metrics that one model alone exports. When that model is deleted, its panel stays on the
# dashboard without data: delete the panel, or keep it for a service of that model later.
ONE_MODEL_METRICS = {"app_event_loop_lag_seconds": "async"}
NOT_EXPORTED_HERE = {name for name, model in ONE_MODEL_METRICS.items() if model not in MODELS}

# Fixtures of the modules this one goes with (pytest finds fixtures by module attribute).
pushed = test_deploy.pushed
servers, prometheus, pushgateway = (
    test_monitoring.servers,
    test_monitoring.prometheus,
    test_monitoring.pushgateway,
)

Start = Callable[..., Running]


def test_dashboard_is_provisioned_with_its_data_source() -> None:
    board = dashboard()
    source = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    variable = next(v for v in board["templating"]["list"] if v["type"] == "datasource")
    assert variable["current"]["value"] == source["datasources"][0]["uid"]
    for panel in board["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    provider = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/dashboards/python-service.yml").read_text()
    )
    compose = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    assert (
        f"./deploy/grafana/dashboard.json:{provider['providers'][0]['options']['path']}/" in compose
    )


def test_compose_prometheus_scrapes_the_job_the_alerts_select() -> None:
    compose = yaml.safe_load((DEPLOY / "compose" / "prometheus.yml").read_text())
    assert [job["job_name"] for job in compose["scrape_configs"]] == ["python-service"]
    assert f'job="{compose["scrape_configs"][0]["job_name"]}"' == test_deploy.SERVICE_JOB


def test_dashboard_uses_only_metrics_the_service_exports(
    start: Start, pushed: tuple[str, list[tuple[str, str]]]
) -> None:
    """Scrape each model, and take what a --once run pushes (the CronJob's metrics)."""
    used = {name for query in dashboard_queries() for name in metric_names(query)}
    assert used - test_deploy.exported_metrics(start, pushed) - NOT_EXPORTED_HERE == set()
    # The parser found the names the dashboard must show (not an empty set that passes).
    assert used >= {
        *("up", "app_up", "app_build_info", "app_iterations_total"),
        *("app_iteration_failures_total", "app_iteration_duration_seconds_bucket"),
        *("app_last_success_timestamp_seconds", "app_event_loop_lag_seconds"),
        *("process_resident_memory_bytes", "process_cpu_seconds_total"),
        *("app_run_success", "app_run_duration_seconds"),
    }


@pytest.mark.slow
@pytest.mark.integration
def test_every_dashboard_query_returns_data(
    start: Start, prometheus: Callable[[list[str], list[str]], Server], pushgateway: Server
) -> None:
    """Each model and a CronJob-style push: no panel of the dashboard stays empty."""
    once = start(f"app-{prefer('sync')}", "--once", APP_PUSHGATEWAY_URL=pushgateway.url, **CRON)
    assert once.wait() == 0
    services = [start(command) for command in COMMANDS]
    gateway = pushgateway.url.removeprefix("http://")
    prom = prometheus([address(s) for s in services], [gateway])

    queries = []
    for query in dashboard_queries():
        if metric_names(query) & NOT_EXPORTED_HERE:
            continue
        for name, replacement in VARIABLES.items():
            query = query.replace(name, replacement)
        queries.append(query)

    def empty() -> list[str]:
        return [query for query in queries if not prom.query(query)]

    with contextlib.suppress(pytest.fail.Exception):  # the assert below names the queries
        wait_until(lambda: not empty(), timeout=20, interval=0.5)
    assert empty() == []
