"""The FastAPI example: "your active sessions" (device, place, last seen), revoking one by
its opaque handle, and "log out everywhere else"."""
