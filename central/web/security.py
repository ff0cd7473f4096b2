"""Security headers on every response, and the session cookie's flags (OWASP ASVS level 1).

- ``Content-Security-Policy``: scripts, styles, fonts and connections only from central itself; no inline
  script or style attribute, no plugin, no framing, forms only to central. Pages serve their own assets.
- ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY`` and ``Referrer-Policy: same-origin``:
  a registration link's secret (in its query) never leaves for another site in a Referer, while central's
  own HTTPS form posts keep the Referer that the CSRF check compares.
- ``Strict-Transport-Security`` when central is public over HTTPS (or the request came over HTTPS).
- ``Cache-Control: no-store`` on every dynamic response (pages, JSON, documents, streams: they carry codes,
  secrets and names); static assets stay cacheable.
"""

from __future__ import annotations

from flask import Flask, Response, request

from central.core.context import CentralContext

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
"""No inline script or style: the pages load their scripts and styles from central's static folders."""

HSTS = "max-age=31536000; includeSubDomains"

HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}
"""Headers every response carries."""


def is_static_endpoint(endpoint: str | None) -> bool:
    """True for the app's and the blueprints' static files (the only responses a cache may keep)."""
    return endpoint is not None and (endpoint == "static" or endpoint.endswith(".static"))


def public_over_https(public_url: str) -> bool:
    """True when central's public URL is HTTPS (cookies are then ``Secure`` and HSTS is sent)."""
    return public_url.lower().startswith("https://")


def secure_headers(response: Response, *, https: bool) -> Response:
    """Add the security headers to ``response`` (``https``: central is reached over HTTPS)."""
    for name, value in HEADERS.items():
        response.headers[name] = value
    if https:
        response.headers["Strict-Transport-Security"] = HSTS
    if not is_static_endpoint(request.endpoint):
        response.headers["Cache-Control"] = "no-store"
        response.headers.pop("Expires", None)
    return response


HOST_COOKIE_NAME = "__Host-session"
"""The session cookie's name when central is served over https."""


def init_security(app: Flask, context: CentralContext) -> None:
    """Set the session cookie's flags and add the security headers to every response of ``app``."""
    https = public_over_https(context.config.public_url)
    # Flask already defines these keys, so they are set, not defaulted; tests keep Secure (their servers'
    # public URLs are http, and Flask's test client sends Secure cookies).
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["SESSION_COOKIE_SECURE"] = https
    # ASVS 3.4.4: behind https the cookie's name carries the __Host- prefix, so the browser keeps it only if it
    # is Secure, for this host alone (no Domain) and for the whole site (Path=/).
    app.config["SESSION_COOKIE_NAME"] = HOST_COOKIE_NAME if https else "session"
    app.config["SESSION_COOKIE_DOMAIN"] = False
    app.config["SESSION_COOKIE_PATH"] = "/"

    @app.after_request
    def _secure_headers(response: Response) -> Response:
        return secure_headers(response, https=https or request.is_secure)
