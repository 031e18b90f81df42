"""Wire objects for the routes, rendered in `datamill.engine.render` (the engine renders the
same objects for the event stream)."""

from datamill.engine.render import batch_datamill, batch_object, file_object, worker_object

__all__ = ["batch_datamill", "batch_object", "file_object", "worker_object"]
