"""sessionkit adapter for django (implemented in its own issue)."""
