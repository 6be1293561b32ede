"""The one list of upstream tests that are not run against sessionkit, each with its reason.

An exclusion is allowed only for a test about the framework's own internals (its db model,
its serializer class) or where exact parity would weaken a security default; the latter are
also listed under "Differences from ..." in that framework's docs page. ``stores`` limits an
exclusion to some stores ("*" means all).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Exclusion:
    framework: str  # "starlette", "flask" or "django"
    test: str  # the test's id as the runner names it (pytest node id, or Django's dotted id)
    reason: str
    stores: tuple[str, ...] = ("*",)

    def applies(self, framework: str, store: str) -> bool:
        return self.framework == framework and ("*" in self.stores or store in self.stores)


_CUSTOM_INTERFACE = (
    "the app class brings its own SessionInterface (a subclass of Flask's cookie interface, or "
    "one that fails on purpose): it tests Flask's interface hooks, and an app with its own "
    "interface does not install sessionkit"
)

EXCLUSIONS: list[Exclusion] = [
    Exclusion("flask", "tests/test_reqctx.py::test_session_dynamic_cookie_name", _CUSTOM_INTERFACE),
    Exclusion("flask", "tests/test_reqctx.py::test_session_error_pops_context", _CUSTOM_INTERFACE),
]


def excluded(framework: str, store: str) -> list[Exclusion]:
    return [e for e in EXCLUSIONS if e.applies(framework, store)]
