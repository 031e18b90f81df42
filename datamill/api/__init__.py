"""The HTTP API: OpenAI-compatible `/v1` routes and datamill's own `/api` routes."""
