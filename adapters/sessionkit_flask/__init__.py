"""sessionkit adapter for flask (implemented in its own issue)."""
