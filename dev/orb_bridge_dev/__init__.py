"""Local development tooling: dev stack, Orb sandbox, mapping dry-run. Not deployed."""
