"""Errors meant for the user: the CLI prints their message, never a traceback."""

from __future__ import annotations


class OdmmError(Exception):
    """Base class: ``str(err)`` is a complete, user-facing explanation."""


class TopologyError(OdmmError):
    """A topology file or catalogue request is invalid; nothing has been started."""


class KernelFeatureMissing(OdmmError):
    """The topology asks for something this kernel cannot do (named in the message)."""


class BuildError(OdmmError):
    """Setting up the emulated network failed."""


class DaemonDied(OdmmError):
    """A supervised process (delay element, gateway, ...) exited while it was needed."""
