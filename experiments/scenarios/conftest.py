"""Turns every scenario here with an [expect] table into a test (experiments/pytest_scenarios.py)."""

from experiments.pytest_scenarios import pytest_addoption, pytest_collect_file  # noqa: F401
