"""Exception types shared across the package."""


class ConfigurationError(RuntimeError):
    """The deployment is misconfigured (missing setting, invalid JSON, unreadable secret).

    Handlers turn this into a clear, specific error response at the first request instead
    of a stack trace at import time.
    """
