"""The viewer's web app: three read-only pages over :class:`~distalign.view.queries.ViewData`.

* ``/``: the leaderboards, then the item table with its filters, sort and pages (plain HTML
  forms with GET parameters: the browser runs no script);
* ``/item/{row}``: one item: prompt, raw reply, parse detail, a bar chart of the predicted
  and true distributions (inline SVG drawn here), TV/JS/W1, tokens and cost;
* ``/static/view.css``: the one stylesheet.

Every page is a Jinja2 template with autoescape on, so whatever a model or a dataset wrote is
shown as text. Each response carries a strict Content-Security-Policy (no script at all, styles
from this server only), and only GET and HEAD are answered.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from distalign.formatting import fmt
from distalign.view.queries import FILTERS, PAGE_SIZES, SORTS, Query, ViewData

TEMPLATES = Path(__file__).with_name("templates")
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}
CHART_WIDTH = 360  # px of the bars' full length (probability 1)


def create_app(data: ViewData, *, allowed_hosts: list[str] | None = None) -> Starlette:
    """The ASGI app serving ``data``; ``allowed_hosts`` guards against DNS rebinding."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,  # every {{ }} is HTML-escaped; data is never marked safe
        undefined=jinja2.StrictUndefined,
    )
    env.filters["num"] = _number
    css = (TEMPLATES / "view.css").read_text(encoding="utf-8")

    def render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(env.get_template(name).render(**context), status_code=status)

    async def index(request: Request) -> Response:
        query = Query.parse(request.query_params)
        page = data.page(query)

        def link(**changes: Any) -> str:
            return "/?" + urlencode(query.params(**changes))

        return render(
            "index.html.j2",
            boards=data.boards,
            sources=data.sources,
            n_items=len(data.items),
            query=query,
            page=page,
            link=link,
            filters=list(FILTERS),
            choices=data.choices,
            sorts=SORTS,
            sizes=PAGE_SIZES,
        )

    async def item(request: Request) -> Response:
        found = data.item(int(request.path_params["row"]))
        if found is None:
            return render("missing.html.j2", status=404, row=request.path_params["row"])
        back = request.query_params.get("back", "")
        return render(
            "item.html.j2",
            item=found,
            chart=chart(found["bars"]),
            back="/?" + back if back.isprintable() else "/",
        )

    async def stylesheet(request: Request) -> Response:
        return Response(css, media_type="text/css")

    routes = [
        Route("/", index, methods=["GET", "HEAD"]),
        Route("/item/{row:int}", item, methods=["GET", "HEAD"]),
        Route("/static/view.css", stylesheet, methods=["GET", "HEAD"]),
    ]
    middleware = [
        Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts or ["*"]),
        Middleware(SecurityHeaders),
    ]
    return Starlette(routes=routes, middleware=middleware)


class SecurityHeaders:
    """Adds the CSP and the other security headers to every response (errors included)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.decode("latin-1").lower() not in SECURITY_HEADERS
                ]
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


def chart(bars: list[dict[str, Any]]) -> dict[str, Any]:
    """Geometry of the item page's bar chart: two bars (predicted, true) per option."""
    row_height, top = 46, 24
    rows = []
    for i, bar in enumerate(bars):
        y = top + i * row_height
        rows.append(
            {
                **bar,
                "y": y,
                "pred_width": round(CHART_WIDTH * (bar["pred"] or 0.0), 1),
                "truth_width": round(CHART_WIDTH * (bar["truth"] or 0.0), 1),
                "label": f"{bar['letter']}. {_shorten(bar['text'], 46)}".rstrip(". "),
            }
        )
    return {
        "rows": rows,
        "height": top + row_height * len(bars) + 8,
        "width": CHART_WIDTH + 330,
        "scale": CHART_WIDTH,
    }


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _number(value: Any, digits: int = 3) -> str:
    """A number for a cell, – when missing (``fmt`` from distalign.formatting)."""
    return fmt(value, digits)
