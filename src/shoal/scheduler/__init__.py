"""The scheduler: binds pending pods to nodes. `fit` decides (pure), `binder` applies."""
