"""orders: takes orders (POST /orders) and lists them (GET /orders); kept in memory."""

from __future__ import annotations

import itertools
import json
import threading

from shop.web import VERSION, Handler, json_response, serve

_lock = threading.Lock()
_ids = itertools.count(1)
_orders: list[dict[str, object]] = []


class OrdersHandler(Handler):
    def route(self, method: str, path: str, body: bytes) -> tuple[int, str, bytes]:
        if path != "/orders":
            return json_response(404, {"error": f"no such path {path}"})
        if method == "POST":
            order = json.loads(body or b"{}")
            with _lock:
                order["id"] = next(_ids)
                _orders.append(order)
            return json_response(201, order)
        with _lock:
            return json_response(200, {"version": VERSION, "orders": list(_orders)})


if __name__ == "__main__":
    serve(OrdersHandler)
