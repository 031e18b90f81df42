"""Text utilities that need no model download (token estimates)."""
