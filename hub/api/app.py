"""``hub api``: the HTTP face of the read model (FastAPI). Thin: every answer is a ``ReadModel``
question (``hub.core.readmodel``) asked under the reader's lock; this module adds the routes, the
API keys, CORS, the 503 until the model has caught up, the change stream (Server-Sent Events) and
the dashboard page.

Errors are JSON, always ``{"error": <stable code>, "detail": <what was wrong>}``.
"""

from __future__ import annotations

import asyncio
import hmac
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager, suppress
from importlib import resources
from typing import Annotated, Any, Literal, Protocol

import orjson
from fastapi import Depends, FastAPI, Header, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.exceptions import HTTPException as StarletteHTTPException

from hub.api import metrics
from hub.api.answers import (
    AlertsAnswer,
    AvailabilityAnswer,
    CustomerAnswer,
    ErrorAnswer,
    InventoryAnswer,
    OrderLinesAnswer,
    StatusAnswer,
    StockAnswer,
)
from hub.core.readmodel import TOPICS, Cursor, Position, QueryError, ReadModel, check_gtin
from hub.settings import HubSettings

Scope = MutableMapping[str, Any]
Asgi = Callable[
    [Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]
]


class Source(Protocol):
    """What the API reads from (``hub.api.reader.TopicReader``; a test gives a filled model)."""

    model: ReadModel
    lock: threading.Lock
    ready: threading.Event
    remaining: int
    dead_letters: Any
    lag: int | None
    error: str | None

    def on_change(self, listener: Callable[[], None]) -> None: ...


class OrjsonResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error(status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> Response:
    return OrjsonResponse({"error": code, "detail": detail}, status, headers=headers)


class Waker:
    """Wakes the change streams (in the event loop) when the reader applied records."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def wake(self) -> None:
        event, self.event = self.event, asyncio.Event()
        event.set()


class Timing:
    """Pure ASGI middleware: each request's time into ``hub_api_request_seconds``, labelled by
    its route's template (no ids in labels)."""

    def __init__(self, app: Asgi) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def sending(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                route = scope.get("route")
                path = getattr(route, "path", "unmatched")
                if path != "/v1/stream":
                    metrics.REQUEST_SECONDS.labels(path, f"{status[0] // 100}xx").observe(
                        time.perf_counter() - started
                    )
            await send(message)

        await self.app(scope, receive, sending)


Gtin = Annotated[str, Path(description="The article's GTIN (8 to 14 digits).")]
Ref = Annotated[str, Path(description="A golden id (g-…) or any member record's ref (shop:17, "
                                      "pos:LC00000042, erp:1001).")]  # fmt: skip
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorAnswer, "description": "A malformed id or parameter."},
    401: {"model": ErrorAnswer, "description": "No API key, or not one of the API's."},
    404: {"model": ErrorAnswer, "description": "No such article or customer."},
    503: {"model": ErrorAnswer, "description": "Still reading the topics (see Retry-After)."},
}


def create_app(settings: HubSettings, source: Source) -> FastAPI:
    keys = [k.strip().encode() for k in (settings.api_keys.get_secret_value().split(",")
                                         if settings.api_keys else []) if k.strip()]  # fmt: skip
    waker: list[Waker] = []

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        waker.append(Waker())

        def wake() -> None:
            loop.call_soon_threadsafe(waker[0].wake)

        source.on_change(wake)
        yield

    app = FastAPI(
        title="Unified Commerce Hub API",
        version="1",
        summary="Availability, inventory, golden customers, alerts, order lines and a live change "
        "stream, read from the hub's unified topics.",
        lifespan=lifespan,
        default_response_class=OrjsonResponse,
    )  # fmt: skip
    if settings.api_cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.api_cors_origins,
                           allow_methods=["GET"], allow_headers=["Authorization", "X-API-Key",
                                                                 "Last-Event-ID"])  # fmt: skip
    app.add_middleware(Timing)

    @app.exception_handler(QueryError)
    async def query_error(_: Request, exc: QueryError) -> Response:
        return error(exc.status, exc.code, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, exc: RequestValidationError) -> Response:
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return error(400, "bad_request", detail)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        if isinstance(exc.detail, dict):
            return OrjsonResponse(exc.detail, exc.status_code, headers=exc.headers)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))

    async def authorised(authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
                   x_api_key: Annotated[str | None, Header(include_in_schema=False)] = None) -> None:  # fmt: skip
        if not keys:
            return
        given = x_api_key or (authorization or "").removeprefix("Bearer ").strip()
        if not any(hmac.compare_digest(given.encode(), key) for key in keys):
            raise HTTPException(401, {"error": "unauthorized", "detail": "an API key is "
                                               "needed: Authorization: Bearer <key> or X-API-Key"},
                                         headers={"WWW-Authenticate": "Bearer"})  # fmt: skip

    async def caught_up() -> None:
        if source.error is not None:
            raise HTTPException(503, {"error": "reader_failed", "detail": "the API "
                                               f"stopped reading the topics: {source.error}; "
                                               "restart it"}, headers={"Retry-After": "10"})  # fmt: skip
        if not source.ready.is_set():
            raise HTTPException(503, {"error": "not_ready", "detail": "reading the "
                                               f"unified topics ({source.remaining} partitions "
                                               "to go)"}, headers={"Retry-After": "2"})  # fmt: skip

    guarded = [Depends(authorised), Depends(caught_up)]
    model = source.model

    def ask(question: Callable[[], dict[str, Any]]) -> Response:
        """The answer to ``question``, asked under the reader's lock, as JSON (returned as a
        response: FastAPI would otherwise walk the whole answer with its generic encoder)."""
        with source.lock:
            return OrjsonResponse(question())

    @app.get("/v1/articles/{gtin}/availability", dependencies=guarded, response_model=None,
             responses={200: {"model": AvailabilityAnswer}, **ERRORS}, tags=["stock"])  # fmt: skip
    async def availability(gtin: Gtin, channel: Annotated[str | None, Query(
            description="Only this channel's groups (web, store, …) and their locations.")] = None,
    ) -> Response:  # fmt: skip
        """What can be sold of an article: per channel group and per location, each figure with
        its explanation (which location gives what, and what is kept back)."""
        return ask(lambda: model.availability(gtin, channel))

    @app.get("/v1/articles/{gtin}/inventory", dependencies=guarded, response_model=None,
             responses={200: {"model": InventoryAnswer}, **ERRORS}, tags=["stock"])  # fmt: skip
    async def inventory(gtin: Gtin, location: Annotated[str | None, Query(
            description="Only this location (store:PAR01, warehouse:W001, web:1).")] = None,
    ) -> Response:  # fmt: skip
        """An article's inventory levels, as each source reports them."""
        return ask(lambda: model.inventory(gtin, location))

    @app.get("/v1/customers/{ref}", dependencies=guarded, response_model=None,
             responses={200: {"model": CustomerAnswer}, **ERRORS}, tags=["customers"])  # fmt: skip
    async def customer(ref: Ref) -> Response:
        """The golden customer of a golden id or of any of its member records."""
        return ask(lambda: model.customer(ref))

    @app.get("/v1/customers/{ref}/order-lines", dependencies=guarded, response_model=None,
             responses={200: {"model": OrderLinesAnswer}, **ERRORS}, tags=["customers"])  # fmt: skip
    async def order_lines(ref: Ref) -> Response:
        """A customer's order lines across every channel (each member record's), newest first."""
        return ask(lambda: model.order_lines(ref))

    @app.get("/v1/alerts", dependencies=guarded, response_model=None,
             responses={200: {"model": AlertsAnswer}, **ERRORS}, tags=["stock"])  # fmt: skip
    async def alerts(
        gtin: Annotated[str | None, Query(description="Only this article's.")] = None,
        location: Annotated[
            str | None,
            Query(description="Only alerts on this location or on a group it is part of."),
        ] = None,
        status: Literal["firing", "resolved", "all"] = "firing",
    ) -> Response:
        """Stock alerts: firing (by default), resolved or all; by article, by location."""
        return ask(lambda: model.alerts(gtin, location, None if status == "all" else status))

    @app.get("/v1/stock", dependencies=guarded, response_model=None,
             responses={200: {"model": StockAnswer}, **ERRORS}, tags=["stock"])  # fmt: skip
    async def stock() -> Response:
        """Every article's on-hand and available units per location and its group figures (the
        dashboard's table), and the stream position they are as of (follow the stream from
        there: nothing is missed in between)."""
        return ask(lambda: {"articles": model.stock(), "position": str(model.log.end)})

    @app.get("/v1/status", dependencies=[Depends(authorised)], response_model=None,
             responses={200: {"model": StatusAnswer}}, tags=["pipeline"])  # fmt: skip
    async def status() -> dict[str, Any]:
        """The pipeline as the API sees it: each source's newest change (its commit, when the hub
        appended it), the worker group's lag, dead letters by reason, what the model holds, and
        whether it has caught up. Answers before it has."""
        with source.lock:
            return {"ready": source.ready.is_set(), "reader_error": source.error,
                    "partitions_to_read": max(source.remaining, 0),
                    "sources": dict(model.sources), "worker_lag": source.lag,
                    "dead_letters": dict(source.dead_letters), "records": model.counts(),
                    "position": str(model.log.end),
                    "alerts_firing": len(model.alerts()["alerts"])}  # fmt: skip

    @app.get("/v1/stream", dependencies=guarded, tags=["stream"], response_class=Response,
             responses={200: {"content": {"text/event-stream": {}},
                              "description": "Server-Sent Events: `change` (and `snapshot`) "
                              "events whose data is {topic, key, deleted, value} and whose id "
                              "is the stream position after them."}})  # fmt: skip
    async def stream(
        request: Request,
        article: Annotated[list[str], Query(description="GTINs to follow.")] = [],  # noqa: B006
        location: Annotated[list[str], Query(description="Locations to follow.")] = [],  # noqa: B006
        customer: Annotated[list[str] | None, Query(
            description="Golden ids or record refs to follow.")] = None,
        topic: Annotated[list[str] | None, Query(
            description="Only changes of these unified topics (unified.inventory, …).")] = None,
        since: Annotated[str | None, Query(alias="from", description="Resume after this "
                                           "position (an event's id); Last-Event-ID too.")] = None,
        snapshot: Annotated[bool, Query(description="First send the current values of what "
                                        "is followed (event `snapshot`).")] = False,
        last_event_id: Annotated[str | None, Header(include_in_schema=False)] = None,
    ) -> Response:  # fmt: skip
        """Changes of the chosen articles, locations and customers (everything, if none is
        chosen) as they reach the hub's topics. Reconnecting with the last event's id (the
        browser's EventSource does it) resumes exactly after it; a position older than the API
        keeps sends the current values first (`snapshot` events), then the changes."""
        if topic is None:
            topic = []
        if customer is None:
            customer = []
        for gtin in article:
            check_gtin(gtin)
        subjects = frozenset({f"article:{a}" for a in article} | {f"location:{x}" for x in location}
                             | {f"customer:{c}" for c in customer})  # fmt: skip
        for name in topic:
            if name not in TOPICS:
                raise QueryError(400, "bad_topic", f"{name!r} is not one of {', '.join(TOPICS)}")
        topics = frozenset(topic)
        resume = last_event_id or since
        position = Position.parse(resume) if resume else None
        with source.lock:
            cursor = model.log.cursor(position) if position is not None else model.log.live()
            first: list[tuple[str, Any]] = []
            if cursor is None or snapshot:
                cursor = model.log.live()
                first = [("snapshot", change.as_json()) for change in model.current(subjects)
                         if not topics or change.topic in topics]  # fmt: skip
            at = str(cursor.position)
        return EventSourceResponse(_events(request, cursor, subjects, topics, first, at), ping=10,
                                   headers={"X-Accel-Buffering": "no"})  # fmt: skip

    async def _events(request: Request, cursor: Cursor, subjects: frozenset[str],
                      topics: frozenset[str], first: list[tuple[str, Any]], at: str,
                      ) -> AsyncIterator[ServerSentEvent]:  # fmt: skip
        metrics.STREAMS.inc()
        try:
            for kind, data in first:
                yield ServerSentEvent(orjson.dumps(data).decode(), event=kind, id=at)
            while True:
                wake = waker[0].event
                with source.lock:
                    changes = model.log.read(cursor.seq)
                for change in cursor.follow(changes):
                    if (not subjects or subjects & change.subjects) and (
                        not topics or change.topic in topics
                    ):
                        metrics.STREAM_EVENTS.inc()
                        yield ServerSentEvent(orjson.dumps(change.as_json()).decode(),
                                              event="change", id=str(cursor.position))  # fmt: skip
                if await request.is_disconnected():
                    return
                with suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), 5.0)
        finally:
            metrics.STREAMS.dec()

    @app.get("/health", include_in_schema=False)
    async def health() -> dict[str, Any]:
        return {"ready": source.ready.is_set(), "reader_error": source.error}

    @app.get("/ready", include_in_schema=False)
    async def ready() -> Response:
        """200 once caught up, else 503 (a load balancer's readiness check)."""
        if source.ready.is_set() and source.error is None:
            return OrjsonResponse({"ready": True})
        return error(503, "not_ready", "reading the unified topics", {"Retry-After": "2"})

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    @app.get("/dashboard", include_in_schema=False)
    async def dashboard() -> HTMLResponse:
        page = resources.files("hub.api").joinpath("dashboard.html").read_text()
        return HTMLResponse(page)

    return app
