"""Node agent: turns the pods bound to this node into running process groups.

The building blocks live in small modules that the agent runner ties to the API and to Envoy:
`drivers` (start/wait/stop/recover/inspect a process group), `ports` (free port allocation),
`logs` (per-pod log files, rotation, tail, follow), `restarts` (pure restart/backoff policy),
`probes` (startup/readiness/liveness state machines and workers) and `lifecycle` (preStop and
the node-local part of the stop sequence).
"""
