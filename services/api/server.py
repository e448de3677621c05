"""`factory5g api`: the API on uvicorn with uvloop and httptools."""

from __future__ import annotations

import uvicorn

from services.api.app import create_app
from services.core import heap
from services.core.runtime import setup_logging
from services.core.settings import Settings


def run(settings: Settings) -> None:
    setup_logging(settings.log_level)
    if settings.api.workers > 1:
        # Worker processes import the app themselves and read settings from the environment.
        uvicorn.run(
            "services.api.server:app_from_env",
            factory=True,
            host=settings.api.host,
            port=settings.api.port,
            workers=settings.api.workers,
            loop="uvloop",
            http="httptools",
            access_log=False,
            log_level=settings.log_level.lower(),
        )
        return
    app = create_app(settings)
    heap.settle()
    uvicorn.run(
        app,
        host=settings.api.host,
        port=settings.api.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level=settings.log_level.lower(),
    )


def app_from_env() -> object:
    from services.core.settings import load_settings

    app = create_app(load_settings())
    heap.settle()
    return app
