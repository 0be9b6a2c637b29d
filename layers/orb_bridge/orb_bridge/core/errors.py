"""Exception types shared across the package, and how a caller's values are echoed safely."""


class ConfigurationError(RuntimeError):
    """The deployment is misconfigured (missing setting, invalid JSON, unreadable secret).

    Handlers turn this into a clear, specific error response at the first request instead
    of a stack trace at import time.
    """


# Values a caller sent are echoed (in answers, rejection reasons, logs) at most this long.
MAX_ECHO_CHARS = 64


def clip(value: object, limit: int = MAX_ECHO_CHARS) -> str:
    """``value`` as text, cut to ``limit`` characters, with lone surrogates escaped so that it
    can always be encoded (a log line or an answer must never fail on what a caller sent)."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        text = text[:limit] + "..."
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def quote(value: object, limit: int = MAX_ECHO_CHARS) -> str:
    """``repr`` of a caller's value for a message, bounded like ``clip``."""
    if isinstance(value, str) and len(value) > limit:
        return repr(clip(value[:limit], limit)) + "..."
    return clip(repr(value), limit + 8)
