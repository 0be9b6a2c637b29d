"""The machinery behind the settings models (``orb_bridge.core.config``): a frozen dataclass whose
fields name their environment variable, bounds and parser, filled by ``from_env``.

Why not pydantic here (it models every payload that crosses a boundary): settings are a dozen
environment strings read at every request, and importing pydantic for them alone cost ~70 ms of
every cold start, about a sixth of the whole floor (``import boto3`` plus one client) in python3.13
(BENCHMARKS.md, issue 12). The few rules (required, whole number, finite number, bounds, flags)
are written once here and covered variable by variable in tests/unit/core/test_config.py.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from orb_bridge.core.errors import ConfigurationError, quote

# What a flag may say, as pydantic and most tools read booleans.
TRUE_WORDS = frozenset({"true", "1", "yes", "on", "t", "y"})
FALSE_WORDS = frozenset({"false", "0", "no", "off", "f", "n"})


class InvalidValueError(ValueError):
    """A value that breaks its field's rule; the message reads on from the variable's name."""


def _text(raw: str) -> str:
    return raw


def _whole_number(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise InvalidValueError("must be a whole number") from None


def _number(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise InvalidValueError("must be a number") from None
    if not math.isfinite(value):
        raise InvalidValueError("must be a finite number")
    return value


def _flag(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in TRUE_WORDS:
        return True
    if lowered in FALSE_WORDS:
        return False
    raise InvalidValueError("must be true or false")


# Parsers by the field's declared type (annotations are strings under ``from __future__``).
_PARSERS: dict[str, Callable[[str], Any]] = {"str": _text, "int": _whole_number, "float": _number, "bool": _flag}


def env(
    variable: str, *, ge: float | None = None, gt: float | None = None, parse: Callable[[str], Any] | None = None
) -> dict[str, Any]:
    """A field's metadata: the variable it is read from, its bounds, its parser if not by type."""
    return {"variable": variable, "ge": ge, "gt": gt, "parse": parse}


def _name(item: dataclasses.Field[Any]) -> str:
    return str(item.metadata.get("variable") or item.name)


@dataclass(frozen=True, kw_only=True)
class EnvSettings:
    """A frozen settings model whose fields are filled from the environment variables they name.

    Built directly (``IngestSettings(orb_api_key=..., ...)``) in code and tests; ``from_env`` in
    the functions. Blank variables count as unset; values are stripped.
    """

    # Fields whose values never appear in an error message.
    secret_fields: ClassVar[frozenset[str]] = frozenset()

    def __post_init__(self) -> None:
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            try:
                ge, gt = item.metadata.get("ge"), item.metadata.get("gt")
                if ge is not None and value < ge:
                    raise InvalidValueError(f"must be >= {ge:g}")
                if gt is not None and value <= gt:
                    raise InvalidValueError(f"must be > {gt:g}")
                checked = self._check(item.name, value)
            except InvalidValueError as exc:
                raise self._error(item, str(exc), value) from None
            if checked is not value:
                object.__setattr__(self, item.name, checked)

    def _check(self, name: str, value: Any) -> Any:
        """A model's own rule for field ``name``: the value to keep, or ``InvalidValueError``."""
        return value

    @classmethod
    def _error(cls, item: dataclasses.Field[Any], message: str, value: Any) -> ConfigurationError:
        if item.name not in cls.secret_fields:
            message += f", got {quote(value)}"
        return ConfigurationError(f"{_name(item)} {message}")

    @classmethod
    def variables(cls) -> list[str]:
        """The environment variables this model reads directly (secrets are resolved separately)."""
        return [item.metadata["variable"] for item in dataclasses.fields(cls) if "variable" in item.metadata]

    @classmethod
    def _validate_env(cls, environ: Mapping[str, str], **resolved: Any) -> Self:
        values: dict[str, Any] = {}
        for item in dataclasses.fields(cls):
            variable = item.metadata.get("variable")
            if variable is None:
                continue
            raw = (environ.get(variable) or "").strip()
            if not raw:
                if item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING:
                    raise ConfigurationError(f"{variable} is required")
                continue
            parse = item.metadata["parse"] or _PARSERS[str(item.type)]
            try:
                values[item.name] = parse(raw)
            except InvalidValueError as exc:
                raise cls._error(item, str(exc), raw) from None
        return cls(**values, **resolved)
