"""Dependency aliases (FastAPI template style): routes ask for what they need by type."""

from typing import Annotated

from fastapi import Depends, Request

from .http import Api


def get_api(request: Request) -> Api:
    """The models, caches and compute pool, made once in the app's lifespan."""
    return request.app.state.api


ApiDep = Annotated[Api, Depends(get_api)]
