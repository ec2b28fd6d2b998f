"""Dependency aliases (FastAPI template style): routes ask for what they need by type."""

from typing import Annotated

from fastapi import Depends, Request

from .engine import Registry
from .settings import Settings


def get_registry(request: Request) -> Registry:
    return request.app.state.registry


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


RegistryDep = Annotated[Registry, Depends(get_registry)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
