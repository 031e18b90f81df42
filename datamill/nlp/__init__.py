"""Offline text tools: token estimates, exact and near-duplicate detection, diversity.

`tokens` and `canonical` need the core install only; `embeddings`, `minhash`, `dedup` and
`diversity` need the ``embeddings`` extra (numpy, ONNX Runtime and the model's package).
"""
