"""The Orb usage event: what Track intake produces, the SQS message body, and what ingest sends.

One SQS message carries exactly one event serialised with ``to_message_body``; ingest reads it
back with ``from_message_body``. Field rules follow Orb's ingest API (see docs/facts.md#orb-ingest-request);
their definition is the pydantic model in ``orb_bridge.orb.usage_event_schema``.

This class holds the same fields with the same rules without importing pydantic on intake's
path (about 100 ms of a cold start): values of the plain kinds the mapping produces are checked
here (a subset of what the model accepts: exact ``str``/``int``/``float``/``bool``, text that
encodes as UTF-8, Orb's timestamp form); anything else goes to the model, which accepts it as it
always did or raises its ``ValidationError``, word for word. ``to_message_body`` writes what the
model's ``model_dump_json(exclude_none=True)`` writes, byte for byte (tests/unit/orb/test_usage_event.py).
"""

from __future__ import annotations

import json
import json.scanner
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from orb_bridge.core.timestamps import CANONICAL

PropertyValue = bool | int | float | str

FIELDS = ("event_name", "idempotency_key", "timestamp", "properties", "external_customer_id", "customer_id")
_FIELD_SET = frozenset(FIELDS)
# Integers pydantic-core keeps in a machine word; larger ones are left to the model.
_INT_LIMIT = 2**63
_string = json.encoder.encode_basestring  # C; escapes like pydantic-core
# json's C scanner (CPython: always there); typeshed types its argument as the scanner class itself.
_scan_json: Callable[[str, int], tuple[Any, int]] = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]


def is_utf8_text(value: Any) -> TypeGuard[str]:
    """An exact ``str`` that encodes as UTF-8 (pydantic refuses or mangles lone surrogates)."""
    if type(value) is not str:
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _plain_value(value: Any) -> bool:
    kind = type(value)
    if kind is str:
        return is_utf8_text(value)
    if kind is bool:
        return True
    if kind is int:
        return bool(-_INT_LIMIT <= value < _INT_LIMIT)
    if kind is float:
        return bool(value - value == 0.0)  # finite (inf - inf and nan are nan)
    return False


def _checked(fields: dict[str, Any]) -> tuple[Any, ...] | None:
    """The field values in order when this class can accept them itself, else None (ask the model)."""
    if not _FIELD_SET.issuperset(fields):
        return None
    name, key, timestamp = fields.get("event_name"), fields.get("idempotency_key"), fields.get("timestamp")
    if not (
        is_utf8_text(name)
        and name
        and is_utf8_text(key)
        and key
        and type(timestamp) is str
        and CANONICAL.fullmatch(timestamp)
    ):
        return None
    external, customer = fields.get("external_customer_id"), fields.get("customer_id")
    if bool(external) == bool(customer):
        return None
    if (external is not None and not is_utf8_text(external)) or (customer is not None and not is_utf8_text(customer)):
        return None
    properties = fields.get("properties", _NO_PROPERTIES)
    if properties is _NO_PROPERTIES:
        return name, key, timestamp, {}, external, customer
    if type(properties) is not dict:
        return None
    # A loop rather than all(...): this runs for every event on intake's and ingest's paths.
    for property_name, value in properties.items():
        if not (type(property_name) is str and (property_name.isascii() or is_utf8_text(property_name))):
            return None
        if not (type(value) is str and value.isascii()) and not _plain_value(value):
            return None
    return name, key, timestamp, dict(properties), external, customer


_NO_PROPERTIES: Any = object()


def orb_fields(body: str) -> dict[str, Any] | None:
    """The event a message body holds, already in the form Orb takes (``to_orb``'s: properties
    present, no nulls), when this module's own checks accept it as written; None for anything
    else (``OrbUsageEvent.from_message_body`` then decides). Ingest's hot path: no event object
    is built for a body it only forwards."""
    try:
        fields, end = _scan_json(body, 0)
    except (StopIteration, ValueError, RecursionError):
        return None
    if type(fields) is not dict or end != len(body) or "properties" not in fields or None in fields.values():
        return None
    return fields if _checked(fields) is not None else None


def _schema() -> Any:
    from orb_bridge.orb import usage_event_schema  # pydantic: only off intake's usual path

    return usage_event_schema.OrbUsageEvent


def validation_messages(exc: BaseException, root: str = "event") -> list[str] | None:
    """``loc: msg`` for each error of the model's ``ValidationError``; None for any other exception."""
    pydantic_core = sys.modules.get("pydantic_core")  # not imported: cannot be a ValidationError
    if pydantic_core is None or not isinstance(exc, pydantic_core.ValidationError):
        return None
    return [f"{'.'.join(str(p) for p in err['loc']) or root}: {err['msg']}" for err in exc.errors(include_url=False)]


def _float_json(value: float) -> str:
    """A float as pydantic-core writes it: the shortest round trip, like repr, laid out as
    1e+16 and 1e-7 (not 1e-07), and 0.00001 (not 1e-05) from 1e-5 up to 1e-4."""
    if value - value != 0.0:
        return "null"  # inf and nan, as pydantic writes them (ser_json_inf_nan="null")
    text = repr(value)
    if "e" not in text:
        return text
    mantissa, exponent = text.split("e")
    power = int(exponent)
    if power == -5:
        sign = "-" if mantissa.startswith("-") else ""
        return f"{sign}0.0000{mantissa.lstrip('-').replace('.', '')}"
    return f"{mantissa}e{'+' if power > 0 else ''}{power}"


def _value_json(value: Any) -> str:
    kind = type(value)
    if kind is str:
        return _string(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is float:
        return _float_json(value)
    return str(value)


@dataclass(frozen=True, slots=True, init=False)
class OrbUsageEvent:
    event_name: str
    idempotency_key: str
    # ISO 8601 in UTC with a trailing Z, e.g. 2020-12-09T16:09:53.123456Z
    timestamp: str
    properties: dict[str, PropertyValue]
    external_customer_id: str | None = None
    customer_id: str | None = None
    # The message body, written once (mapping checks it, intake then sends it).
    _message_body: str | None = field(default=None, init=False, repr=False, compare=False)

    def __init__(self, **fields: Any) -> None:
        values = _checked(fields)
        if values is None:
            model = _schema()(**fields)  # raises its ValidationError, exactly as before
            values = tuple(getattr(model, name) for name in FIELDS)
            values = (*values[:3], dict(values[3]), *values[4:])
        self._assign(values)

    def _assign(self, values: tuple[Any, ...]) -> None:
        # The slots' own setters: what object.__setattr__ does past a frozen class, a third of the
        # time (ingest builds 10,000 of these per batch).
        name, key, timestamp, properties, external, customer, body = _SLOT_SETTERS
        name(self, values[0])
        key(self, values[1])
        timestamp(self, values[2])
        properties(self, values[3])
        external(self, values[4])
        customer(self, values[5])
        body(self, None)

    @classmethod
    def _from_model(cls, model: Any) -> OrbUsageEvent:
        event = cls.__new__(cls)
        values = tuple(getattr(model, name) for name in FIELDS)
        event._assign((*values[:3], dict(values[3]), *values[4:]))
        return event

    @classmethod
    def model_validate(cls, value: Any) -> OrbUsageEvent:
        """From a mapping (as pydantic's ``model_validate``); raises the model's ``ValidationError``."""
        if isinstance(value, cls):
            return value
        if type(value) is dict:
            values = _checked(value)
            if values is not None:
                event = cls.__new__(cls)
                event._assign(values)
                return event
        return cls._from_model(_schema().model_validate(value))

    def to_orb(self) -> dict[str, Any]:
        """The JSON object Orb's /ingest expects (no nulls)."""
        orb = {
            "event_name": self.event_name,
            "idempotency_key": self.idempotency_key,
            "timestamp": self.timestamp,
            "properties": dict(self.properties),
        }
        if self.external_customer_id is not None:
            orb["external_customer_id"] = self.external_customer_id
        if self.customer_id is not None:
            orb["customer_id"] = self.customer_id
        return orb

    def to_message_body(self) -> str:
        body = self._message_body
        if body is None:
            properties = ",".join(f"{_string(name)}:{_value_json(value)}" for name, value in self.properties.items())
            body = (
                f'{{"event_name":{_string(self.event_name)},"idempotency_key":{_string(self.idempotency_key)},'
                f'"timestamp":{_string(self.timestamp)},"properties":{{{properties}}}'
            )
            if self.external_customer_id is not None:
                body += f',"external_customer_id":{_string(self.external_customer_id)}'
            if self.customer_id is not None:
                body += f',"customer_id":{_string(self.customer_id)}'
            body += "}"
            object.__setattr__(self, "_message_body", body)
        return body

    @classmethod
    def from_message_body(cls, body: str) -> OrbUsageEvent:
        """Read an SQS message body; raises the model's ``ValidationError`` for anything else.

        The usual body (as ``to_message_body`` wrote it) is read with ``json`` and this class's
        own checks, so ingest's path imports no pydantic either; anything else is the model's."""
        try:
            fields, end = _scan_json(body, 0)  # json's own C scanner, without json.loads' wrappers
        except (StopIteration, ValueError, RecursionError):  # not plain JSON: the model's verdict, word for word
            fields, end = None, 0
        if type(fields) is dict and end == len(body):
            values = _checked(fields)
            if values is not None:
                event = cls.__new__(cls)
                event._assign(values)
                return event
        return cls._from_model(_schema().model_validate_json(body))


_SLOT_SETTERS = tuple(vars(OrbUsageEvent)[name].__set__ for name in (*FIELDS, "_message_body"))
