"""The `shoal` command line: one module per verb group, assembled in `shoal.cli.main`."""
