"""Stored records to wire objects: the one place that renders what the API answers.

One module per family (files, batches, workers, datasets, generation). The API routes, the
CLI and every event publisher render through it, so an event carries exactly the object
the matching ``GET`` returns. It imports only `protocol` and the records of `storage`.
"""
