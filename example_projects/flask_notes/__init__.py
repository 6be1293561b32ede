"""The Flask example: notes kept in the session, Flask-Login and ``flash()``.

Signing in happens in the shop (one sign-in for the three apps); this app recognises the
signed-in user through the framework-neutral key ``session.user_id``.
"""
