"""Node agent: turns the pods bound to this node into running process groups.

The building blocks live in small modules that the agent runner ties to the API and to Envoy:
`drivers` (start/wait/stop/recover/inspect a process group), `ports` (free port allocation),
`logs` (per-pod log files, rotation, tail, follow), `restarts` (pure restart/backoff policy),
`probes` + `probe_checks` (startup/readiness/liveness), `exec_action` (a pod's exec handlers)
and `lifecycle` (preStop and the node-local part of the stop sequence).

One pod's life, as the runner drives it:

    ports.allocate(uid, names)  ->  logs.new_run() (on restarts)  ->  driver.start(spec)
    PodProber(...).start()      ->  events flip Ready / trigger a kill (liveness, startup)
    driver.wait(handle)         ->  restarts.next_restart(...)  ->  sleep, start again
    stop: out of Envoy, drained ->  prober.stop(); lifecycle.stop_pod(...); ports.release(uid)
    agent restart: driver.recover(TaskHandle.from_json(saved))  (pid + start time must match)
"""
