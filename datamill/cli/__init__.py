"""The `datamill` command line: one module per command group."""
