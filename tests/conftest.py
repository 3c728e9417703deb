"""Shared test configuration: integration tests need root and the Debian mininet package."""

from __future__ import annotations

import os
import shutil

import pytest

pytest_plugins = ["pytester"]


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0 and shutil.which("mnexec"):
        return
    skip = pytest.mark.skip(reason="integration tests need root and mininet (run `make test` as root)")
    for item in items:
        if "integration" in item.keywords:
            item.add_marker(skip)
