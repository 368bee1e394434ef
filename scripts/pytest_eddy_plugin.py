"""pytest plugin loaded (`-p pytest_eddy_plugin`) by scripts/pymongo-suite.sh into pymongo's suite.

It proves which driver is under test: the header names the imported pymongo, and the run stops
with a usage error if that pymongo is not the released one installed in the venv (for example
the sdist's own `pymongo/` folder shadowing it).
"""

from __future__ import annotations

import os

import pytest


def _driver() -> tuple[str, str]:
    import pymongo

    return pymongo.version, os.path.realpath(pymongo.__file__)


def pytest_configure(config: pytest.Config) -> None:
    version, path = _driver()
    expected = os.environ.get("EDDY_EXPECT_PYMONGO_VERSION")
    if "site-packages" not in path:
        raise pytest.UsageError(f"pymongo imported from {path}, not from the venv's site-packages")
    if expected and version != expected:
        raise pytest.UsageError(f"pymongo {version} imported, expected {expected}")


def pytest_report_header(config: pytest.Config) -> list[str]:
    version, path = _driver()
    return [f"eddy harness: pymongo {version} imported from {path}"]
