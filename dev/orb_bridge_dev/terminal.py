"""Text from outside (event names, ids, reasons, customers, stack parameters, Orb's answers) made
safe to print on an operator's terminal.

Such text may hold escape sequences that move the cursor, rewrite lines already printed, change
the window title or hide what follows, and bidirectional overrides that display it in another
order than it reads (CVE-2021-42574, "Trojan Source"). ``printable`` writes each such character
as a visible escape instead, so what an operator sees is what the record holds.
"""

from __future__ import annotations

# C0 controls (newlines and tabs too: a name must not forge a line of the report), DEL, C1 controls.
_CONTROLS = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]
# Bidirectional embeddings, overrides and isolates, the marks, and the line and paragraph separators.
_FORMATTING = [0x061C, 0x200E, 0x200F, 0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
# Lone surrogates (JSON's "\ud800") cannot be encoded for the terminal: escaped rather than a crash.
_SURROGATES = range(0xD800, 0xE000)

_ESCAPES = {
    **{code: f"\\x{code:02x}" for code in _CONTROLS},
    **{code: f"\\u{code:04x}" for code in [*_FORMATTING, *_SURROGATES]},
}


def printable(value: object) -> str:
    """``str(value)`` with every control, bidi-formatting character and lone surrogate escaped
    (``\\x1b``, ``\\u202e``); everything else, non-ASCII text included, is kept as is."""
    return str(value).translate(_ESCAPES)
