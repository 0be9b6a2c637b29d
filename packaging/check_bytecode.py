"""Assert that a `sam build` artifact ships bytecode: every .py has its unchecked-hash .pyc.

    python3.13 packaging/check_bytecode.py .aws-sam/build

Run by `make template-check` after `sam build`, with the Lambda runtime's interpreter: the .pyc
must carry that interpreter's magic number (a .pyc of another minor version is silently ignored
and the source compiled at every cold start, as if there were none). Standard library only.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

# PEP 552 flags word: bit 0 = hash-based, bit 1 = check_source. 0b01 = unchecked hash.
UNCHECKED_HASH = 0b01


def problems(artifact: Path) -> list[str]:
    """What is wrong with the bytecode under ``artifact`` (empty when every .py has its .pyc)."""
    found: list[str] = []
    sources = sorted(artifact.rglob("*.py"))
    if not sources:
        return [f"{artifact}: no .py files (not a built artifact?)"]
    for source in sources:
        compiled = Path(importlib.util.cache_from_source(str(source)))
        if not compiled.is_file():
            found.append(f"{source.relative_to(artifact)}: no {compiled.name}")
            continue
        header = compiled.read_bytes()[:8]
        if header[:4] != importlib.util.MAGIC_NUMBER:
            found.append(f"{compiled.relative_to(artifact)}: compiled by another Python version")
        elif int.from_bytes(header[4:8], "little") != UNCHECKED_HASH:
            found.append(f"{compiled.relative_to(artifact)}: not unchecked-hash (Lambda would stat its source)")
    return found


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    build_dir = Path(argv[0])
    artifacts = [path for path in sorted(build_dir.iterdir()) if path.is_dir()] if build_dir.is_dir() else []
    if not artifacts:
        print(f"check_bytecode: no built artifacts under {build_dir}", file=sys.stderr)
        return 1
    failed = False
    for artifact in artifacts:
        found = problems(artifact)
        count = sum(1 for _ in artifact.rglob("*.py"))
        if found:
            failed = True
            print(
                f"check_bytecode: {artifact.name}: {len(found)} of {count} .py without usable bytecode:",
                file=sys.stderr,
            )
            for line in found[:20]:
                print(f"  {line}", file=sys.stderr)
        else:
            print(
                f"check_bytecode: {artifact.name}: {count} .py, each with its {sys.implementation.cache_tag} unchecked-hash .pyc"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
