"""The parallel-run differ: Envoy mirrors sampled live requests to it; it replays each to a
primary, a second primary and the candidate, compares the answers by field path, learns noise
and publishes a DiffReport. Run as `shoal differ` / `python -m shoal.differ` (see `main`).

Modules, from pure to I/O:
  fieldpaths  field paths and ignore patterns (imported by shoal.api.parallelrun, so this
              package imports nothing at import time)
  endpoints   method + path template keys (`GET /orders/{id}`)
  compare     the comparator (status, headers, JSON by field path, other bodies exactly)
  aggregate   noise learning and per-endpoint tallies -> DiffReportStatus
  config      the process's configuration (flags or a JSON file the agent may rewrite)
  http        minimal HTTP/1.1 mirror receiver and keep-alive upstream client
  targets     where the primaries and the candidate are (static list, or pods by selector)
  replay      bounded queue, workers, replays and comparison
  publish     writes the DiffReport's status through the API client
  main        the process: wires the above, signals, config reloads
"""
