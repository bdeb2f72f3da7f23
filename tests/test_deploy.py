"""deploy/ agrees with the image, the configuration and the metrics the service exports.

The manifests are validated by kubernetes-validate and the rules by promtool in
.ci/ops-checks; these tests check what those tools cannot: that numbers and names written in
several files (port, UID, grace period, alert thresholds, job names, commands) are the same.
The Compose monitoring profile (deploy/compose, deploy/grafana) has test_dashboard.py.
"""

from __future__ import annotations

import http.server
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import COMMANDS, MODELS, Running, fault, prefer
from prometheus_client.parser import text_string_to_metric_families
from promql import DEPLOY, GENERATED, alert_rules, exported_names, metric_names

from app.config import Config, load_config

ROOT = DEPLOY.parent
BASE = DEPLOY / "k8s" / "base"
SERVICE_JOB = 'job="python-service"'  # how alerts.yml selects the long-running service

Start = Callable[..., Running]
Doc = dict[str, Any]


def manifest(name: str) -> Doc:
    doc: Doc = yaml.safe_load((BASE / name).read_text(encoding="utf-8"))
    return doc


def pod_specs() -> dict[str, Doc]:
    cron = manifest("cronjob.yaml")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return {"deployment": manifest("deployment.yaml")["spec"]["template"]["spec"], "cron": cron}


def k8s_config() -> Config:
    return load_config(BASE / "config.yml", environ={}).config


def dockerfile(pattern: str) -> str:
    """The first group of the last match in the Dockerfile (the runtime stage comes last)."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    found: list[str] = re.findall(pattern, text, re.MULTILINE)
    return found[-1]


def image_command() -> str:
    """The command the image runs by default (its CMD): app-sync, or the model kept."""
    return dockerfile(r'^CMD \["([^"]+)"\]')


def env_of(container: Doc) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def rule(name: str) -> Doc:
    return next(r for r in alert_rules() if r["alert"] == name)


def test_image_runs_a_command_of_this_project() -> None:
    assert image_command() in COMMANDS


def test_k8s_config_is_valid_and_listens_on_the_pod_address() -> None:
    config = k8s_config()
    assert config.metrics_enabled  # the readiness and startup probes need the server
    assert config.metrics_host == "0.0.0.0"


def test_watchdog_fires_before_the_liveness_probe() -> None:
    """A stuck iteration is logged with its stack before the heartbeat goes stale."""
    config = k8s_config()
    assert config.iteration_timeout_seconds > 0
    slowest_beat = config.iteration_timeout_seconds + config.loop_sleep_seconds
    assert slowest_beat < config.health_max_age_seconds


@pytest.mark.parametrize("kind", ["deployment", "cron"])
def test_pods_match_the_image(kind: str) -> None:
    """Same UID as the image's user, read-only root, /tmp writable, config where it is read."""
    spec = pod_specs()[kind]
    container = spec["containers"][0]
    uid = int(dockerfile(r"useradd --uid (\d+)"))
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == uid
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    heartbeat_dir = str(Path(dockerfile(r"APP_HEARTBEAT_FILE=(\S+)")).parent)
    assert "emptyDir" in volumes[mounts[heartbeat_dir]]
    config_path = dockerfile(r"WORKDIR (\S+)") + "/config.yml"
    assert "configMap" in volumes[mounts[config_path]]
    assert env_of(container)["APP_CONFIG_FILE"] == config_path
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]


@pytest.mark.parametrize("kind", ["deployment", "cron"])
def test_grace_period_outlasts_the_shutdown_timeout(kind: str) -> None:
    grace = pod_specs()[kind]["terminationGracePeriodSeconds"]
    assert grace > k8s_config().shutdown_timeout_seconds + 5  # headroom for teardown()


def test_deployment_probes_and_ports_match_the_service() -> None:
    deployment = manifest("deployment.yaml")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    port = k8s_config().metrics_port
    assert deployment["spec"]["replicas"] == 2
    assert container["command"] == [image_command()]
    assert container["ports"] == [{"name": "metrics", "containerPort": port}]
    assert container["livenessProbe"]["exec"]["command"] == ["/opt/venv/bin/app-health"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert container["startupProbe"]["httpGet"]["path"] == "/readyz"
    service = manifest("service.yaml")
    assert service["metadata"]["annotations"]["prometheus.io/port"] == str(port)
    assert service["spec"]["ports"][0]["port"] == port
    assert service["spec"]["selector"].items() <= deployment["metadata"]["labels"].items()


def test_cronjob_runs_once_without_overlap_and_pushes() -> None:
    cron = manifest("cronjob.yaml")["spec"]
    container = cron["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == [image_command(), "--once"]
    assert cron["concurrencyPolicy"] == "Forbid"
    assert cron["jobTemplate"]["spec"]["backoffLimit"] >= 0
    assert cron["successfulJobsHistoryLimit"] >= 1
    assert cron["failedJobsHistoryLimit"] >= 1
    env = env_of(container)
    assert env["APP_PUSHGATEWAY_URL"].startswith("http")
    assert env["APP_INSTANCE"]  # fixed: one Pushgateway group for all runs
    assert env["APP_SERVICE_NAME"] != k8s_config().service_name


def test_each_other_model_has_an_overlay_that_switches_both_commands() -> None:
    """The base runs the image's command; k8s/overlays/MODEL runs each other model (async)."""
    overlays = sorted(DEPLOY.glob("k8s/overlays/*/kustomization.yaml"))
    others = [model for model in MODELS if f"app-{model}" != image_command()]
    assert [path.parent.name for path in overlays] == others
    for path in overlays:
        overlay = yaml.safe_load(path.read_text())
        commands = [yaml.safe_load(p["patch"])[0]["value"] for p in overlay["patches"]]
        command = f"app-{path.parent.name}"
        assert commands == [[command], [command, "--once"]]


def test_heartbeat_alert_threshold_is_the_configured_max_age() -> None:
    threshold = re.search(r"> (\d+)", rule("AppHeartbeatStale")["expr"])
    assert threshold is not None
    assert (
        float(threshold[1])
        == k8s_config().health_max_age_seconds
        == Config().health_max_age_seconds
    )


def test_alerts_select_the_jobs_that_the_deployment_and_cronjob_produce() -> None:
    assert f'job="{k8s_config().service_name}"' == SERVICE_JOB
    cron_container = pod_specs()["cron"]["containers"][0]
    cron_job = f'job="{env_of(cron_container)["APP_SERVICE_NAME"]}"'
    for alert in alert_rules():
        expected = cron_job if alert["alert"].startswith("AppCronJob") else SERVICE_JOB
        assert expected in alert["expr"], alert["alert"]


def test_kubernetes_scrape_config_finds_the_pods_and_the_pushgateway() -> None:
    """Debian's promtool lacks Kubernetes discovery, so this checks what it cannot."""
    config = yaml.safe_load((DEPLOY / "prometheus" / "scrape-kubernetes.yml").read_text())
    assert (DEPLOY / "prometheus" / config["rule_files"][0]).is_file()
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert list(jobs) == ["python-service", "pushgateway"]
    labels = manifest("deployment.yaml")["spec"]["template"]["metadata"]["labels"]
    # Prometheus names a pod label __meta_kubernetes_pod_label_<name, with _ for . and />.
    as_meta = {"__meta_kubernetes_pod_label_" + re.sub(r"\W", "_", k): v for k, v in labels.items()}
    keep = jobs["python-service"]["relabel_configs"][0]
    assert keep["regex"] == ";".join(as_meta[name] for name in keep["source_labels"])
    assert jobs["pushgateway"]["honor_labels"] is True
    cron_env = env_of(pod_specs()["cron"]["containers"][0])
    target = jobs["pushgateway"]["static_configs"][0]["targets"][0]
    assert cron_env["APP_PUSHGATEWAY_URL"] == f"http://{target}"


def test_every_alert_has_severity_summary_and_description() -> None:
    for alert in alert_rules():
        assert alert["labels"]["severity"] in ("warning", "critical"), alert["alert"]
        assert alert["annotations"].keys() == {"summary", "description"}, alert["alert"]


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (job) (rate(a_total{job="x", le=~"1|2"}[5m]))', {"a_total"}),
        ("sum(rate(a_total[$__rate_interval])) by (instance) / on(instance) b", {"a_total", "b"}),
        ('time() - (a_seconds{i=~"$instance"} > 0 or b_seconds)', {"a_seconds", "b_seconds"}),
        ("histogram_quantile(0.99, sum by (le) (rate(h_bucket[1h:1m] offset 5m)))", {"h_bucket"}),
        ('up == 0 and on(job) app_up{job="a, b) c"} == bool 1', {"up", "app_up"}),
        ('count_values("v", x) unless ignoring(v) group_left() y_v2', {"x", "y_v2"}),
        ("{__name__=~'.+'}", set()),
    ],
)
def test_metric_names_are_parsed_out_of_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


class _Gateway(http.server.BaseHTTPRequestHandler):
    """Records what a --once run pushes: (method, body)."""

    pushes: list[tuple[str, str]]

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        self.pushes.append((self.command, body))
        self.send_response(200)
        self.end_headers()

    do_POST = do_PUT

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads the pushes."""


@pytest.fixture
def pushed() -> Iterator[tuple[str, list[tuple[str, str]]]]:
    """A Pushgateway stand-in on loopback: its URL, and what was pushed to it."""
    pushes: list[tuple[str, str]] = []
    handler = type("Gateway", (_Gateway,), {"pushes": pushes})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", pushes
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("fault_name", "status", "method"), [("ok", 0, "PUT"), ("raise_always", 1, "POST")]
)
def test_once_pushes_what_the_cronjob_alerts_need(
    start: Start,
    pushed: tuple[str, list[tuple[str, str]]],
    fault_name: str,
    status: int,
    method: str,
) -> None:
    """Outcome and duration; a failed run adds to the group (POST) without a last success,
    so the Pushgateway keeps the time of the last successful run."""
    url, pushes = pushed
    proc = start(fault(prefer("sync"), fault_name), "--once", APP_PUSHGATEWAY_URL=url)
    assert proc.wait() == status
    [(pushed_with, body)] = pushes
    assert pushed_with == method
    samples = {s.name: s.value for f in text_string_to_metric_families(body) for s in f.samples}
    assert samples["app_run_success"] == (1 if status == 0 else 0)
    assert samples["app_run_duration_seconds"] > 0
    assert ("app_last_success_timestamp_seconds" in samples) == (status == 0)


def exported_metrics(start: Start, pushed: tuple[str, list[tuple[str, str]]]) -> set[str]:
    """What Prometheus can see: a scrape of each model, and what a --once run pushes (the
    CronJob's metrics), with the series Prometheus and the Pushgateway add."""
    url, pushes = pushed
    once = start(f"app-{prefer('sync')}", "--once", APP_PUSHGATEWAY_URL=url)
    services = [start(command) for command in COMMANDS]
    exported = set(GENERATED)
    for service in services:
        status, body = service.get("/metrics")
        assert status == 200
        exported |= exported_names(body)
    assert once.wait() == 0
    [(_, body)] = pushes
    return exported | exported_names(body)


def test_alerts_use_only_metrics_the_service_exports(
    start: Start, pushed: tuple[str, list[tuple[str, str]]]
) -> None:
    used = {name for rule in alert_rules() for name in metric_names(rule["expr"])}
    assert used - exported_metrics(start, pushed) == set()
    # The parser found the names the alerts must watch (not an empty set that passes).
    assert used >= {
        *("up", "app_up", "app_iterations_total", "app_iteration_failures_total"),
        *("app_last_iteration_timestamp_seconds", "app_last_success_timestamp_seconds"),
        "app_run_success",
    }
