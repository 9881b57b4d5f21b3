"""The shop: three small services (frontend -> catalog, orders) that show every shoal feature.

Each service is a stdlib HTTP server started as `python -m shop.<service>`; shoal passes the
port as $PORT and the other services' addresses as $SHOAL_SERVICE_<NAME>_URL.
"""
