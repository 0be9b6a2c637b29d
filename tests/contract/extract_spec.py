"""Copy the parts of Orb's OpenAPI spec the tests need into ``orb-openapi-subset.json``.

    python tests/contract/extract_spec.py ORB_SPEC.json [-o tests/contract/orb-openapi-subset.json]

Keeps the paths the sandbox implements and every component schema they reference (transitively),
so the subset is a self-contained OpenAPI document. See README.md here for where the spec comes from.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

PATHS = (
    "/ingest",
    "/events/search",
    "/events/volume",
    "/events/backfills",
    "/events/backfills/{backfill_id}",
    "/events/backfills/{backfill_id}/close",
    "/events/backfills/{backfill_id}/revert",
    # After /events/search and /events/volume: the contract hook matches paths in this order.
    "/events/{event_id}",
    "/events/{event_id}/deprecate",
)
# Referenced by the contract checks directly (an unknown URL is answered with this problem).
EXTRA_SCHEMAS = ("URLNotFound",)
PREFIX = "#/components/schemas/"


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"][len(PREFIX) :]} if str(node.get("$ref", "")).startswith(PREFIX) else set()
        return found.union(*(_refs(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(item) for item in node))
    return set()


def extract(spec: dict[str, Any]) -> dict[str, Any]:
    paths = {path: spec["paths"][path] for path in PATHS}
    schemas = spec["components"]["schemas"]
    wanted, todo = set(), _refs(paths) | set(EXTRA_SCHEMAS)
    while todo:
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            todo |= _refs(schemas[name]) - wanted
    return {
        "openapi": spec["openapi"],
        "info": {**spec.get("info", {}), "x-subset-of": "Orb's OpenAPI spec: see tests/contract/README.md"},
        "servers": spec.get("servers", []),
        "paths": paths,
        "components": {
            "schemas": {name: schemas[name] for name in sorted(wanted)},
            "securitySchemes": spec["components"].get("securitySchemes", {}),
        },
        "security": spec.get("security", []),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", type=Path, help="Orb's full OpenAPI spec (JSON)")
    parser.add_argument("-o", "--output", type=Path, default=Path(__file__).with_name("orb-openapi-subset.json"))
    args = parser.parse_args(argv)
    subset = extract(json.loads(args.spec.read_text(encoding="utf-8")))
    args.output.write_text(json.dumps(subset, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    print(
        f"wrote {args.output}: {len(subset['paths'])} paths, {len(subset['components']['schemas'])} schemas",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
