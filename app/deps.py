"""Dependency aliases (FastAPI template style): routes ask for what they need by type."""

from typing import Annotated

from fastapi import Depends, Request

from .runs import Runner


def get_runner(request: Request) -> Runner:
    """The models, caches and compute pool, made once in the app's lifespan."""
    return request.app.state.runner


RunnerDep = Annotated[Runner, Depends(get_runner)]
