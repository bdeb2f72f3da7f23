"""What only Service does, in-process."""

from __future__ import annotations

from counting_sync import run
from test_service import make_config

from app.lifecycle import EXIT_CRASH
from app.service_sync import Service


def test_base_class_run_iteration_must_be_overridden() -> None:
    assert run(Service(make_config()), once=True) == EXIT_CRASH
