"""The chat gateway: OpenAI's chat completions and embeddings, served interactively by the
same deployments, gates and fallbacks as batch work."""
