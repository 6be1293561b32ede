"""The Django example: a small shop with auth login and logout, a cart kept in the session
and ``django.contrib.messages`` (stored in the session), on sessionkit's session engine."""
