"""Runnable example projects (``make demo``)."""
