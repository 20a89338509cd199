"""Swagger UI at `/docs`, from files the API serves itself.

FastAPI's own docs page loads Swagger UI's JavaScript and CSS from a public CDN, so on
a machine or network without internet access it stays blank. The `fastapi-swagger`
package ships Swagger UI's dist files (pinned with the other dependencies); the page
here is FastAPI's, pointed at those files under `SWAGGER_UI_ASSETS_URL`. The app is
built with `docs_url=None` and `redoc_url=None`, so neither CDN page exists; ReDoc is
not served at all (Swagger UI is the API's one docs page).
"""

from __future__ import annotations

from typing import Final

from fastapi import FastAPI, Request, status
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import Scope

DOCS_URL: Final = "/docs"
SWAGGER_UI_ASSETS_URL: Final = "/static/swagger-ui"

# The package's data folder, and the only files of it that are served (the folder is
# also a Python package, whose modules are nobody's business).
_ASSETS_PACKAGE: Final = ("fastapi_swagger", "resources")
_JS: Final = "swagger-ui-bundle.js"
_CSS: Final = "swagger-ui.css"
_FAVICON: Final = "favicon-32x32.png"


class _SwaggerUiAssets(StaticFiles):
    """Static files limited to Swagger UI's own (conditional GETs and HEAD included)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        if path not in {_JS, _CSS, _FAVICON}:
            raise HTTPException(status_code=status.HTTP_404_NOT_FOUND)
        return await super().get_response(path, scope)


def install_docs(app: FastAPI) -> None:
    """Serve Swagger UI at `DOCS_URL`, and the OAuth2 redirect page it uses, as FastAPI
    would with `docs_url`, but with Swagger UI's files served by the app."""
    openapi_url = app.openapi_url
    if openapi_url is None:
        return  # no OpenAPI document, nothing to show
    oauth2_redirect_url = app.swagger_ui_oauth2_redirect_url

    async def swagger_ui_html(request: Request) -> HTMLResponse:
        # Behind a proxy that strips a prefix, every URL of the page needs it back.
        root_path = str(request.scope.get("root_path", "")).rstrip("/")
        assets = f"{root_path}{SWAGGER_UI_ASSETS_URL}"
        return get_swagger_ui_html(
            openapi_url=root_path + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{assets}/{_JS}",
            swagger_css_url=f"{assets}/{_CSS}",
            swagger_favicon_url=f"{assets}/{_FAVICON}",
            oauth2_redirect_url=root_path + oauth2_redirect_url if oauth2_redirect_url else None,
            init_oauth=app.swagger_ui_init_oauth,
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    app.add_route(DOCS_URL, swagger_ui_html, include_in_schema=False)
    if oauth2_redirect_url:

        async def swagger_ui_redirect(_: Request) -> HTMLResponse:
            return get_swagger_ui_oauth2_redirect_html()

        app.add_route(oauth2_redirect_url, swagger_ui_redirect, include_in_schema=False)
    app.mount(
        SWAGGER_UI_ASSETS_URL,
        _SwaggerUiAssets(packages=[_ASSETS_PACKAGE]),
        name="swagger-ui-assets",
    )
