"""The address types of the draft: one code everywhere (wire, API, results, plots)."""

from __future__ import annotations

from enum import IntEnum


class AddressType(IntEnum):
    """Session continuity types (draft-ietf-dmm-ondemand-mobility-11 section 6.1)."""

    UNTYPED = 0  # a legacy prefix (no type on the wire)
    FIXED = 1
    SESSION_LASTING = 2
    NON_PERSISTENT = 3
    GRACEFUL_REPLACEMENT = 4

    @property
    def label(self) -> str:
        return self.name


REQUESTABLE = (AddressType.FIXED, AddressType.SESSION_LASTING, AddressType.NON_PERSISTENT,
               AddressType.GRACEFUL_REPLACEMENT)


class UnknownAddressType(ValueError):
    """A type name or code that is not one of the draft's types."""


def parse_type(value: str | int) -> AddressType:
    """'FIXED', 'fixed', 'session-lasting', 2 -> AddressType; a clear error otherwise."""
    if isinstance(value, AddressType):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return AddressType(value)
        except ValueError:
            raise UnknownAddressType(f"unknown address type code {value} (expected 0-4)") from None
    if isinstance(value, str):
        key = value.strip().upper().replace("-", "_")
        if key in AddressType.__members__:
            return AddressType[key]
    names = ", ".join(t.name for t in REQUESTABLE)
    raise UnknownAddressType(f"unknown address type {value!r} (expected one of {names})")
