"""pytest settings for every test of the repo (run through pytest-odoo by setup/test.sh).

- Hypothesis profiles: ``ci`` (when CI is set) is derandomized, so a CI verdict does not
  depend on the examples drawn that day; ``dev`` explores randomly. Neither has a deadline:
  2-core machines running Odoo beside the tests make timings meaningless.
  Choose one with HYPOTHESIS_PROFILE=ci|dev.
- Odoo test tags: like Odoo's own runner, only classes tagged ``standard`` (the default)
  run; ``@tagged("-standard", "benchmark")`` classes are deselected unless FLEX_ALL_TAGS=1.
- Python 3.11: ``ast.parse`` is serialized (see ``_serialize_ast_parse``).
- FLEX_REQUIRE_BROWSER=1 (set by setup/test.sh when a Chromium is installed): a browser
  test that Odoo would skip because Chromium, websocket-client or the HTTP server is
  missing fails instead, so a broken browser set-up never passes as "skipped".
"""

import ast
import functools
import os
import sys
import threading

import pytest

try:
    from hypothesis import HealthCheck, settings
except ImportError:  # hypothesis comes with setup/requirements-test.txt
    settings = None

if settings is not None:
    settings.register_profile(
        "ci",
        deadline=None,
        derandomize=True,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow],
    )
    settings.register_profile("dev", deadline=None, print_blob=True)
    settings.load_profile(
        os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
    )


def _serialize_ast_parse():
    """CPython 3.11 keeps the AST constructor's recursion depth in shared state, so two
    threads building ASTs at once fail at random with "SystemError: AST constructor
    recursion depth mismatch" (python/cpython#106905). The HTTP server of HttpCase/tour
    tests parses manifests (literal_eval) and QWeb templates in several threads at once,
    which made browser tests flaky here. One lock around ``ast.parse`` removes the race;
    it only slows concurrent parsing, in the test process only. Fixed in 3.12."""
    if sys.version_info >= (3, 12) or getattr(ast.parse, "_flex_serialized", False):
        return
    lock = threading.RLock()
    parse = ast.parse

    @functools.wraps(parse)
    def serialized_parse(*args, **kwargs):
        with lock:
            return parse(*args, **kwargs)

    serialized_parse._flex_serialized = True
    ast.parse = serialized_parse


_serialize_ast_parse()


def _import_odoo_test_framework():
    """Import odoo.tests up front, in test mode.

    pytest-odoo imports it before it turns ``test_enable`` on, and Odoo then logs an
    ERROR with a 40-line stack ("Importing test framework, avoid importing from business
    modules") at the top of every run. Turning ``test_enable`` on for the whole session
    instead is no fix: the registry would then run the addons' tests a second time
    while it loads.
    """
    try:
        from odoo.tools import config  # noqa: PLC0415
    except ImportError:  # no Odoo: setup/test.sh reports that in one line
        return
    test_enable = config["test_enable"]
    config["test_enable"] = True
    try:
        import odoo.tests  # noqa: F401, PLC0415
    finally:
        config["test_enable"] = test_enable


_import_odoo_test_framework()

BROWSER_SKIP_REASONS = (
    "Chrome executable not found",
    "websocket-client module is not installed",
    "Cannot connect to chrome dev tools",
    "Failed to detect chrome devtools port",
    "--odoo-http is not set",
)


def pytest_collection_modifyitems(config, items):
    if os.environ.get("FLEX_ALL_TAGS") == "1":
        return
    selected, deselected = [], []
    for item in items:
        tags = getattr(getattr(item, "cls", None), "test_tags", None)
        if tags is not None and "standard" not in tags:
            deselected.append(item)
        else:
            selected.append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if os.environ.get("FLEX_REQUIRE_BROWSER") == "1" and report.skipped:
        longrepr = report.longrepr
        reason = str(longrepr[-1]) if isinstance(longrepr, tuple) else str(longrepr)
        if any(text in reason for text in BROWSER_SKIP_REASONS):
            report.outcome = "failed"
            report.longrepr = f"browser test could not run (FLEX_REQUIRE_BROWSER=1): {reason}"
    return report
