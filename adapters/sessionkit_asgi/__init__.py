"""sessionkit adapter for asgi (implemented in its own issue)."""
