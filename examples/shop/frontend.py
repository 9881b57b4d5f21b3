"""frontend: the shop's web page (GET /), built from catalog and orders through their Services.

The new checkout page is behind the `new-checkout` feature toggle, evaluated locally by the
shoal SDK for the user named in `?user=` (or the `x-user-id` header).
"""

from __future__ import annotations

import html
from urllib.parse import parse_qs, urlparse

from shop.web import VERSION, Handler, call_service, serve

try:
    from shoal.toggles import ToggleClient

    TOGGLES: ToggleClient | None = ToggleClient()
except Exception:  # the shop still works without the toggle service
    TOGGLES = None


def checkout_label(user: str) -> str:
    if TOGGLES is not None and TOGGLES.is_enabled("new-checkout", {"userId": user}):
        return "One-click checkout (new)"
    return "Checkout"


class FrontendHandler(Handler):
    def route(self, method: str, path: str, body: bytes) -> tuple[int, str, bytes]:
        url = urlparse(path)
        if url.path != "/":
            return 404, "text/plain", b"not found\n"
        user = parse_qs(url.query).get("user", [self.headers.get("x-user-id") or "guest"])[0]
        catalog = call_service("catalog", "/products")
        orders = call_service("orders", "/orders")
        rows = "".join(
            f"<li>{html.escape(p['name'])}: {p['price']:.2f}</li>" for p in catalog["products"]
        )
        page = (
            f"<html><body><h1>shoal shop</h1><p>frontend {VERSION}, catalog "
            f"{html.escape(catalog['version'])}, {len(orders['orders'])} orders</p>"
            f"<ul>{rows}</ul><button>{html.escape(checkout_label(user))}</button>"
            f"<p>user: {html.escape(user)}</p></body></html>\n"
        )
        return 200, "text/html; charset=utf-8", page.encode()


if __name__ == "__main__":
    serve(FrontendHandler)
