"""catalog: the products and their prices (GET /products, GET /products/<id>)."""

from __future__ import annotations

from shop.web import VERSION, Handler, json_response, serve

PRODUCTS = [
    {"id": "kettle", "name": "Kettle", "price": 24.5},
    {"id": "teapot", "name": "Teapot", "price": 18.0},
    {"id": "mug", "name": "Mug", "price": 6.25},
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
