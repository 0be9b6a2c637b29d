"""Segment side of the bridge: request bodies, authentication, and the Track -> Orb mapping.

Pure functions only (no AWS, no HTTP framework), so the intake service, the tests and the
dev tooling (``orb-bridge map FILE``) all run exactly the same code.
"""
