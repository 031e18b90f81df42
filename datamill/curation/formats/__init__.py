"""Export formats beyond datamill's own JSONL and Parquet: OpenAI fine-tuning chat JSONL
(`chat`, checked by `checks`), an in-context-learning prompt file (`icl`), CSV (`table`), a
Hugging Face dataset card for Parquet (`card`), and seeded splits (`splits`). Each encoder is
synchronous and pure: a page of samples in, bytes out; `curation.exports` streams them."""
