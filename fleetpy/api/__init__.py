"""fleet's HTTP API v1 (``/fleet/v1/`` and ``/v1-alpha/``) served by fleetpyd, plus ``/metrics``.

``server.ApiServer`` is the component (stdlib ``http.server`` on a unix socket and/or TCP); ``routes`` dispatches
a parsed request to the pure-ish resource handlers (``units``, ``state``, ``machines``, ``discovery``) over a
registry port; ``metrics.Metrics`` holds the Prometheus collectors the agent and engine increment.
"""
