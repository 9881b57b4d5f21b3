"""catalog: the products and their prices (GET /products, GET /products/<id>).

PRICE_ROUNDING=up rounds prices up to whole units: the "changed rounding" that
examples/shop/parallel-run.yaml catches in a parallel run before any user sees it.
"""

from __future__ import annotations

import math
import os

from shop.web import VERSION, Handler, json_response, serve

ROUND_UP = os.environ.get("PRICE_ROUNDING") == "up"


def price(value: float) -> float:
    return float(math.ceil(value)) if ROUND_UP else value


PRODUCTS = [
    {"id": "kettle", "name": "Kettle", "price": price(24.5)},
    {"id": "teapot", "name": "Teapot", "price": price(18.0)},
    {"id": "mug", "name": "Mug", "price": price(6.25)},
]


class CatalogHandler(Handler):
    def route(self, method: str, path: str, body: bytes) -> tuple[int, str, bytes]:
        if path == "/products":
            return json_response(200, {"version": VERSION, "products": PRODUCTS})
        if path.startswith("/products/"):
            wanted = path.removeprefix("/products/")
            for product in PRODUCTS:
                if product["id"] == wanted:
                    return json_response(200, {"version": VERSION, **product})
        return json_response(404, {"error": f"no such path {path}"})


if __name__ == "__main__":
    serve(CatalogHandler)
