"""Process plumbing shared by `app-sync` and `app-async`: argv, config, logging, server, status."""

from __future__ import annotations

import gc
import json
import logging
import platform
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import fields
from types import SimpleNamespace as Namespace
from typing import Protocol, TypeVar

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from app.config import Config, ConfigError, LoadedConfig, load_config, redacted
from app.heartbeat import HeartbeatFile
from app.lifecycle import (
    EXIT_CONFIG,
    EXIT_CRASH,
    EXIT_OK,
    Lifecycle,
    blocked_signals,
    capture_signals,
)
from app.logging_setup import configure_logging
from app.metrics import Metrics, MetricsServer

log = logging.getLogger(__name__)


class Runnable(Protocol):
    lifecycle: Lifecycle


S = TypeVar("S", bound=Runnable)


def parse_args(prog: str, argv: Sequence[str] | None) -> Namespace:
    args = sys.argv[1:] if argv is None else list(argv)
    if not args:  # how the image starts it; argparse would cost ~3 ms of imports
        return Namespace(config=None, once=False, check_config=False, version=False)
    import argparse

    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run the service. Settings come from env (APP_*), .env, a YAML file, defaults.",
        epilog="Exit status: 0 clean stop, 1 crash or failure, 78 configuration error.",
    )
    parser.add_argument(
        "--config", metavar="PATH", help="YAML settings file (default: ./config.yml)"
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="run one iteration (with setup and teardown) and exit: for cron jobs",
    )
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="validate, print the effective settings with their sources as JSON, and exit",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    return parser.parse_args(args, namespace=Namespace())


def run_service(
    argv: Sequence[str] | None,
    *,
    prog: str,
    build: Callable[..., S],
    start: Callable[[S, bool], int],
    event_loop: bool = False,
) -> int:
    """Load config, set up logging and metrics, build the service, run it, return the status."""
    args = parse_args(prog, argv)
    try:
        loaded = load_config(args.config)
    except ConfigError as exc:
        if args.version:  # the version needs no valid configuration
            print(f"{prog} {Config().version}")
            return EXIT_OK
        return _config_invalid(exc)
    if args.version:  # APP_VERSION (set by the image) wins over the package version
        print(f"{prog} {loaded.config.version}")
        return EXIT_OK
    if args.check_config:
        print(json.dumps(_effective_settings(loaded), indent=2))
        return EXIT_OK

    config = loaded.config
    run_id = str(uuid.uuid4())
    identity = {"config_source": loaded.config_source, "config_hash": loaded.config_hash}
    configure_logging(config, run_id=run_id, lifecycle=identity)
    for warning in loaded.warnings:
        log.warning(warning, extra={"event": "config_warning"})
    log.info(
        "starting",
        extra={
            "event": "startup_begin",
            "mode": "once" if args.once else "loop",
            "python": platform.python_version(),
            "config": redacted(config),
        },
    )
    metrics = Metrics(config, event_loop=event_loop)
    heartbeat = None
    if not args.once:  # a cron run must not overwrite the heartbeat of a running service
        beat_identity = {"run_id": run_id, "service": config.service_name, "env": config.env}
        beat_identity |= {"version": config.version, "commit": config.commit, **identity}
        heartbeat = HeartbeatFile(
            config.heartbeat_file, beat_identity, config.health_max_age_seconds
        )
    failed = {"event": "startup_failed", "exit_status": EXIT_CRASH}
    try:
        service = build(config, metrics=metrics, heartbeat=heartbeat)
    except Exception as exc:  # the service's own __init__ failed: log it with its stack
        log.error("startup failed", exc_info=exc, extra=failed)
        return EXIT_CRASH
    try:
        server = _start_server(config, metrics, service.lifecycle) if not args.once else None
    except OSError as exc:  # the port is taken, or the host does not resolve: no stack needed
        log.error("startup failed: %s", exc, extra={**failed, "error": str(exc)})
        return EXIT_CRASH
    started = time.monotonic()
    # What start-up built lives as long as the process: keep it out of every collection. The
    # collections at exit would otherwise be most of the time from SIGTERM to exit.
    gc.freeze()
    try:
        with capture_signals(service.lifecycle.latch):
            status = start(service, args.once)
    except BaseException as exc:  # an error the loop does not own, even SystemExit: exit 1
        crashed = {"event": "crashed", "reason": "uncaught", "exit_status": EXIT_CRASH}
        log.critical("crashed", exc_info=exc, extra=crashed)
        if heartbeat is not None:
            heartbeat.remove()
        status = EXIT_CRASH
    finally:
        service.lifecycle.latch.close()  # only now: the wake-up fd pointed at it until here
        if server is not None:
            server.stop()
    if args.once and config.pushgateway_url:
        _push(config, metrics, ok=status == EXIT_OK, seconds=time.monotonic() - started)
    return status


def _start_server(config: Config, metrics: Metrics, life: Lifecycle) -> MetricsServer | None:
    if not config.metrics_enabled:
        return None
    server = MetricsServer(
        metrics.registry,
        config.metrics_host,
        config.metrics_port,
        health=life.health,
        ready=life.readiness,
    )
    try:
        with blocked_signals():  # its threads inherit the mask: signals go to the main thread
            server.start()
    except OSError as exc:
        where = f"{config.metrics_host}:{config.metrics_port}"
        raise OSError(f"cannot serve metrics on {where}: {exc.strerror or exc}") from None
    log.info(
        "metrics server listening",
        extra={"event": "metrics_listening", "host": config.metrics_host, "port": server.port},
    )
    return server


def _config_invalid(exc: ConfigError) -> int:
    """Log one `config_invalid` record (with default identity: the real one is unknown)."""
    configure_logging(Config(), run_id=str(uuid.uuid4()))
    log.error(
        "invalid configuration: %d problem(s)",
        len(exc.problems),
        extra={
            "event": "config_invalid",
            "problems": exc.problems,
            "error": "; ".join(exc.problems),
            "exit_status": EXIT_CONFIG,
        },
    )
    return EXIT_CONFIG


def _effective_settings(loaded: LoadedConfig) -> dict[str, object]:
    values = redacted(loaded.config)
    return {
        "config_source": loaded.config_source,
        "config_hash": loaded.config_hash,
        "settings": {
            f.name: {"value": values[f.name], "source": loaded.sources[f.name]}
            for f in fields(loaded.config)
        },
        "warnings": loaded.warnings,
    }


def _push(config: Config, metrics: Metrics, *, ok: bool, seconds: float) -> None:
    """Push the run's metrics to a Pushgateway, grouped by service and instance.

    Adds the run's own: app_run_duration_seconds (setup to teardown) and app_run_success
    (1, or 0 for exit status 1). A successful run replaces the group (PUT); a failed one
    updates it (POST) without app_last_success_timestamp_seconds, so the group keeps the
    time of the last success, which the CronJob alert watches. A failed push is logged; it
    does not change the exit status, which is the work's own.
    """
    from prometheus_client import push_to_gateway, pushadd_to_gateway  # only cron runs

    registry = metrics.registry
    Gauge(
        "app_run_duration_seconds",
        "Seconds the --once run took, setup to teardown",
        registry=registry,
    ).set(seconds)
    Gauge(
        "app_run_success", "1 if the --once run succeeded, 0 if it failed", registry=registry
    ).set(1 if ok else 0)
    group = {"instance": config.instance}
    try:
        if ok:
            push_to_gateway(
                config.pushgateway_url,
                job=config.service_name,
                grouping_key=group,
                registry=registry,
                timeout=10,
            )
        else:
            pushadd_to_gateway(
                config.pushgateway_url,
                job=config.service_name,
                grouping_key=group,
                registry=_Without(registry, "app_last_success_timestamp_seconds"),
                timeout=10,
            )
    except Exception as exc:  # network, DNS, HTTP errors: logged; the status stays the work's
        log.error(
            "cannot push metrics",
            exc_info=exc,
            extra={"event": "push_failed", "url": config.pushgateway_url},
        )
    else:
        log.info("metrics pushed", extra={"event": "metrics_pushed", "url": config.pushgateway_url})


class _Without(Collector):
    """A registry's metrics less some families: what a failed run pushes."""

    def __init__(self, registry: CollectorRegistry, *names: str) -> None:
        self._registry, self._names = registry, names

    def collect(self) -> Iterable[Metric]:
        return (m for m in self._registry.collect() if m.name not in self._names)
