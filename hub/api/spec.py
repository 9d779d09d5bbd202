"""The API's OpenAPI document, as a file in the repo (``schemas/openapi.json``, checked against
the app by a contract test) for the channels' developers and their code generators."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from hub.core.readmodel import ReadModel
from hub.settings import REPO_ROOT, HubSettings

OPENAPI_FILE = REPO_ROOT / "schemas" / "openapi.json"


class Idle:
    """A source that never reads anything: enough to build the app for its document."""

    def __init__(self) -> None:
        self.model, self.lock, self.ready = ReadModel(), threading.Lock(), threading.Event()
        self.remaining = -1
        self.dead_letters: dict[str, int] = {}
        self.lag: int | None = None
        self.error: str | None = None

    def on_change(self, listener: Callable[[], None]) -> None:
        pass


def openapi(settings: HubSettings) -> dict[str, Any]:
    from hub.api.app import create_app

    return create_app(settings, Idle()).openapi()


def write_openapi(settings: HubSettings, path: Path = OPENAPI_FILE) -> None:
    path.write_bytes(
        orjson.dumps(openapi(settings), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    )
