"""API keys, roles and projects: who may call, and what each role may do."""
