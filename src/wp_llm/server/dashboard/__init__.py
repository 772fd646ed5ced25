"""The dashboard: one static page that reads the API with the API key its user enters.

The page itself contains no data and needs no login, because every figure it shows comes from
API calls made in the browser with the key, which stays in the tab's sessionStorage.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

router = APIRouter(include_in_schema=False)

_STATIC = resources.files(__package__) / "static"
# The page loads only its own script and style, and talks only to this origin.
_CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"
)
_HEADERS = {
    "Content-Security-Policy": _CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
}


@router.get("/dashboard")
def dashboard_page() -> HTMLResponse:
    return HTMLResponse((_STATIC / "index.html").read_text("utf-8"), headers=_HEADERS)


@router.get("/dashboard/app.js")
def dashboard_script() -> Response:
    script = (_STATIC / "app.js").read_text("utf-8")
    return Response(script, media_type="text/javascript", headers=_HEADERS)


@router.get("/dashboard/app.css")
def dashboard_style() -> Response:
    return Response(
        (_STATIC / "app.css").read_text("utf-8"), media_type="text/css", headers=_HEADERS
    )
