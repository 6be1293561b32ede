"""Support for ``tests/upstream/test_allauth_suite.py``: the settings and URLs the subprocess
runs django-allauth's own tests with (imported as ``allauth_project``: the sdist's own
``tests`` package shadows this repository's there)."""
