"""Shared domain package for segment-orb-bridge (deployed as the OrbBridge Lambda layer)."""

__version__ = "0.1.0"
