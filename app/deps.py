"""Dependency aliases (FastAPI template style): routes ask for what they need by type."""

from typing import Annotated

from fastapi import Depends, Request

from .runs import Runner


def get_api(request: Request) -> Runner:
    """The models, caches and compute pool, made once in the app's lifespan."""
    return request.app.state.api


ApiDep = Annotated[Runner, Depends(get_api)]
