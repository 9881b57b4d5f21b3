"""The parallel-run differ: Envoy mirrors sampled live requests to it; it replays each to a
primary, a second primary and the candidate, compares the answers by field path, learns noise
and publishes a DiffReport. Run as `shoal differ` / `python -m shoal.differ` (see `main`).

How shoal runs it for a ParallelRun (the integration seam, `shoal.controllers.parallel_run`):

    comparison Pods   <deployment>-compare-<hash>-{primary,secondary,candidate}: the app's
                      templates under nice 19, labelled shoal.dev/compare (no Service selects
                      them): the differ replays to these, never to the live pods
    differ Pod        python -m shoal.differ.pod, its DifferConfig in $SHOAL_DIFFER_CONFIG:
                      DifferConfig.for_parallel_run(settings, ...,
                          selector=shoal.dev/compare=<deployment>, primary_revision=stable,
                          candidate_revision=new) + the Pod's bounds (4 in flight, 16 queued)
    Envoy             Mirror(cluster=<differ cluster>, percent=settings.mirror_percent,
                      methods=tuple(settings.methods)) on the Service's listener
                      (`shoal.agent.parallel_routing`)
    gate              shoal.controllers.strategies.parallel.decide(settings, DiffReport, ...)

By hand: `shoal differ --primary HOST:PORT --candidate HOST:PORT ...` or `--config FILE`
(reread on change).

Modules, from pure to I/O (nothing is imported here: `shoal.api.parallelrun` imports
`fieldpaths`, and that must not pull in the process code):
  fieldpaths  field paths, shapes and ignore patterns
  endpoints   method + path template keys (`GET /orders/{id}`)
  compare     the comparator (status, headers, JSON by field path, other bodies exactly)
  aggregate   noise learning and per-endpoint tallies -> DiffReportStatus
  config      the process's configuration (flags or a JSON file that is reread on change)
  http        minimal HTTP/1.1 mirror receiver and keep-alive upstream client (httptools)
  targets     where the primaries and the candidate are (fixed addresses, or pods by selector)
  replay      bounded queue, workers, replays and comparison
  publish     writes the DiffReport's status through the API client
  main        the process: wires the above, signals, config reloads, admin API
  pod         the process as a differ Pod: configuration from $SHOAL_DIFFER_CONFIG, $PORT and
              $SHOAL_SERVER. This is how shoal runs it for a ParallelRun: the deployment
              controller creates the Pod (`shoal.controllers.parallel_run`), the agent runs it
              and makes it the Service's mirror target (`shoal.agent.parallel_routing`).
"""
