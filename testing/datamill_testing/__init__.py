"""Test and benchmark aids for datamill, a distribution of their own (testing/pyproject.toml):
mock providers, a forward proxy, a private CA and a throwaway PostgreSQL."""
