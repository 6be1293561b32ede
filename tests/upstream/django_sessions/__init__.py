"""Support for ``tests/upstream/test_django_suite.py``: the settings and the test module the
subprocess runs (Django's own ``sessions_tests`` classes, subclassed onto sessionkit)."""
