"""odmm: a network-emulation testbed for IETF DMM On-Demand Mobility (RFC 8653)."""

__version__ = "0.1.0"
