"""The local web app: one page and a JSON API over a :class:`ServedSystem` (the trained
:class:`NeuralEQMorphingSystem`, or the fitted lite baseline).

    neuraleq serve --workdir runs/synthetic        # then open http://127.0.0.1:8000/

Starlette on uvicorn; the page's HTML/JS/CSS live in ``neuraleq_jax/web`` and need no network.
``GET /api`` lists the endpoints (:data:`ENDPOINTS`). Request bodies are JSON objects sent
as ``Content-Type: application/json``: a POST from another site's page (an ``Origin`` that is
not the server's own) is refused 403 and a body of another type 415, so no page the user
visits can drive the API. Every bad input answers 4xx with ``{"error": "<what was wrong and
what is accepted>"}``; sizes are bounded by :data:`LIMITS`. The model is shared by all
requests, so calls into it hold one lock (its compile caches and call counter are not
thread-safe); a generate call takes about a millisecond, so serialising them costs little.
"""

from __future__ import annotations

import errno
import json
import os
import socket
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from neuraleq_jax.server.endpoints import ENDPOINTS, ROUTES
from neuraleq_jax.server.inputs import INCLUDES, LIMITS, SAMPLE_RATE_RANGE, ApiError
from neuraleq_jax.server.service import ServedSystem, Service

__all__ = [
    "ENDPOINTS",
    "INCLUDES",
    "LIMITS",
    "SAMPLE_RATE_RANGE",
    "WEB_DIR",
    "ApiError",
    "ServedSystem",
    "Service",
    "create_app",
    "listen",
    "serve",
    "warm_up",
]

WEB_DIR = Path(__file__).resolve().parents[1] / "web"


async def _read_json(request: Request) -> dict:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > LIMITS["body_bytes"]:
        raise ApiError(413, f"request body over {LIMITS['body_bytes']} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > LIMITS["body_bytes"]:
            raise ApiError(413, f"request body over {LIMITS['body_bytes']} bytes")
        chunks.append(chunk)
    try:
        body = json.loads(b"".join(chunks) or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ApiError(400, f"the body is not valid JSON: {error}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    return body


def _own_origin(request: Request) -> str:
    """The server's own origin as a browser names it: ``scheme://host[:port]`` of the URL
    the request was sent to (its Host header)."""
    host = request.headers.get("host") or request.url.netloc
    return f"{request.url.scheme}://{host}".lower()


def _check_action(request: Request) -> None:
    """Refuse a request that acts (POST) unless it is the server's own page or a program:
    an ``Origin`` other than the server's own is another site's page (any site the user
    visits could otherwise drive the API), and a body not declared ``application/json`` is
    what a cross-site "simple" request sends without a CORS preflight (which this server
    never grants)."""
    origin = request.headers.get("origin")
    if origin is not None and origin.lower() != _own_origin(request):
        raise ApiError(
            403,
            f"Origin {origin!r} is not this server's own ({_own_origin(request)}); the API "
            f"acts only for its own page and for programs that send no Origin",
        )
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise ApiError(
            415,
            f"Content-Type {media_type or 'missing'!r} is refused; a POST body must be JSON "
            f"sent as Content-Type: application/json",
        )


def _endpoint(handler, path: str, method: str):
    async def endpoint(request: Request):
        try:
            if method == "POST":
                _check_action(request)
            body = await _read_json(request) if method == "POST" else {}
            result = await run_in_threadpool(
                handler, request.app.state.service, body, request.query_params
            )
        except ApiError as error:
            return JSONResponse({"error": str(error)}, status_code=error.status)
        except (ValueError, TypeError) as error:  # the library's own bad-input messages
            return JSONResponse({"error": str(error)}, status_code=400)
        return result if isinstance(result, Response) else JSONResponse(result)

    return Route(f"/api{path}", endpoint, methods=[method])


async def _http_error(request: Request, error: HTTPException):
    message = {
        404: f"no such page or endpoint {request.url.path}; GET /api lists them",
        405: f"{request.method} is not allowed on {request.url.path}",
    }.get(error.status_code, str(error.detail))
    return JSONResponse({"error": message}, status_code=error.status_code)


async def _index(request: Request):
    return FileResponse(WEB_DIR / "index.html", media_type="text/html")


def create_app(system: ServedSystem, *, allowed_hosts: list[str] | None = None) -> Starlette:
    """The ASGI app serving ``system`` (see :class:`ServedSystem`; TypeError naming what it
    lacks otherwise).

    ``allowed_hosts`` (e.g. ``["127.0.0.1", "localhost"]``) rejects requests naming another
    Host, which keeps web pages elsewhere from reaching a local server by DNS rebinding.
    """
    routes = [_endpoint(handler, path, method) for handler, path, method in ROUTES]
    routes += [
        Route("/", _index, methods=["GET"]),
        Mount("/static", StaticFiles(directory=WEB_DIR), name="static"),
    ]
    middleware = []
    if allowed_hosts:
        from starlette.middleware import Middleware
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts))
    app = Starlette(
        routes=routes, middleware=middleware, exception_handlers={HTTPException: _http_error}
    )
    app.state.service = Service(system)
    return app


def warm_up(service: Service) -> None:
    """Compile the executables the page uses first, so its first request is fast."""
    word = service.system.vocabulary[0]
    settings = service.generate(word, 1, 1.0, 0, centre=False)
    service.generate(word, 1, 1.0, 0, centre=True)
    service.extras(settings, INCLUDES, 48_000.0)


def listen(host: str = "127.0.0.1", port: int = 8000) -> socket.socket:
    """A TCP socket bound to ``host:port`` and listening (``port`` 0: a free one the system
    picks; ``sock.getsockname()[1]`` tells which). Binding before the model loads makes a busy
    port fail at once, in words. Raises ValueError for a host that is not an address and
    OSError (naming the address and the way out) when the socket cannot be bound."""
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be in 0..65535 (0: a free one), got {port}")
    try:
        family, *_, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as error:
        raise ValueError(
            f"--host {host!r} is neither an IP address nor a known name ({error.strerror}); give an "
            f"IP address or name such as 127.0.0.1 (this machine only) or 0.0.0.0 (every "
            f"interface)"
        ) from None
    try:
        return socket.create_server(address, family=family, backlog=2048)
    except OSError as error:
        advice = {
            errno.EADDRINUSE: "another program is listening there; choose another --port "
            "(--port 0 picks a free one)",
            errno.EACCES: "ports below 1024 need administrator rights; choose --port 1024 or above",
            errno.EADDRNOTAVAIL: "that address belongs to no interface of this machine",
        }.get(error.errno, "choose another --host or --port")
        reason = os.strerror(error.errno) if error.errno else str(error)
        raise OSError(f"cannot listen on {_url(host, port)}: {reason}; {advice}") from None


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def serve(
    system: ServedSystem,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    sock: socket.socket | None = None,
) -> int:
    """Run the app on uvicorn until interrupted (blocking), on ``sock`` if given (from
    :func:`listen`; closed on return) or else on a socket bound to ``host:port``."""
    import uvicorn

    sock = listen(host, port) if sock is None else sock
    host, port = sock.getsockname()[:2]
    loopback = host in ("127.0.0.1", "::1")
    app = create_app(
        system, allowed_hosts=["127.0.0.1", "localhost", "[::1]"] if loopback else None
    )
    warm_up(app.state.service)
    print(
        f"neuraleq: serving {len(system.vocabulary)} words on {_url(host, port)} (Ctrl+C stops)",
        flush=True,
    )
    with sock:
        uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
    return 0
