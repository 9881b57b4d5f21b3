"""The HTTP API server: routes per kind generated from the registry, watch streaming,
server-side apply, metrics and OpenAPI.

`create_app(store)` builds the ASGI app; `serve_api(store, host, port)` runs it with uvicorn
inside the caller's event loop, so `shoal server` can run controllers and the agent beside it.
"""

from shoal.server.app import create_app
from shoal.server.serve import serve_api

__all__ = ["create_app", "serve_api"]
