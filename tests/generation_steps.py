"""Counting a generation's forward steps from outside (app/generation.py's _step), and waiting until
they stop: how the tests show that a client who leaves stops the server's work."""

import time

import pytest

from app import generation


@pytest.fixture
def counted(monkeypatch) -> list[float]:
    """The time of every generation step that runs from now on."""
    steps, step = [], generation._step

    def counting(w):
        steps.append(time.monotonic())
        return step(w)

    monkeypatch.setattr(generation, "_step", counting)
    return steps


def settle(app, steps, timeout=60) -> int:
    """Until the pool is idle and no step has run for a while (bounded); the steps counted."""
    pool, deadline, seen = app.state.runner.pool, time.monotonic() + timeout, -1
    while time.monotonic() < deadline:
        if pool._pending == 0 and len(steps) == seen:
            return len(steps)
        seen = len(steps)
        time.sleep(0.3)
    raise AssertionError("the generation was still running after its client left")
