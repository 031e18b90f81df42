"""OpenAI wire models: validation only, no I/O. One module per API family."""
