"""Node-level isolation for sandboxed pods: uid/gid allocation, the bubblewrap command line and
cgroups (v1 and v2). The sandbox driver (shoal.agent.drivers.sandbox) composes these parts."""
