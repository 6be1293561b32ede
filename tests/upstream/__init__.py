"""The frameworks' own session tests, fetched at test time and run against sessionkit.

Nothing of theirs is copied into this repository: ``fetch.upstream_tree`` downloads the sdist
of the *installed* version from the package registry (cached under ``.venv/upstream``), and
each ``test_<framework>_suite.py`` runs that framework's own test files with the smallest patch
that swaps sessionkit in. ``exclusions.py`` is the one list of upstream tests we do not run,
each with its reason.
"""
