"""Synthetic dataset generation: a spec expanded into batches until every cell's target of
valid, unique samples is met (`docs/generation.md`)."""
