"""shoal: desired-state deployment for microservices without containers.

The package is layered: `api` (resource models) is imported by everything; `store` persists
resources; `server` exposes them over HTTP; `client` is the only way other components
(controllers, agent, CLI, SDKs) talk to the server.
"""

__version__ = "0.1.0"
