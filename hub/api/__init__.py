"""``hub api``: the hub's truth for every channel — an HTTP API, a change stream and a dashboard
over the unified topics (``app``), kept current by one reader thread (``reader``) filling the pure
read model (``hub.core.readmodel``). Replicas hold no state of their own: each reads the topics at
start (503 until it has caught up) and scales by adding processes."""

from __future__ import annotations

import logging

from hub.settings import HubSettings

log = logging.getLogger("hub.api")


def serve(settings: HubSettings, host: str, port: int) -> None:
    """Read the topics and answer on ``host``:``port`` until SIGINT/SIGTERM (blocks)."""
    import uvicorn

    from hub.api.app import create_app
    from hub.api.reader import TopicReader
    from hub.core.readmodel import ChangeLog, ReadModel

    model = ReadModel()
    model.log = ChangeLog(settings.api_log_size)
    reader = TopicReader(settings, model)
    app = create_app(settings, reader)
    reader.start()
    log.info("hub api on http://%s:%d (dashboard /dashboard, docs /docs, keys %s)", host, port,
             "required" if settings.api_keys else "not required")  # fmt: skip
    try:
        uvicorn.run(app, host=host, port=port, access_log=False, log_level="warning",
                    timeout_graceful_shutdown=3)  # fmt: skip
    finally:
        reader.stop()
