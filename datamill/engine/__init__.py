"""The batch engine: services, validation, the worker and its side tasks."""
