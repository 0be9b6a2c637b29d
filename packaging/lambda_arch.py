"""The layer's wheels follow the template's architecture, and a built layer is checked against it.

    python3.13 packaging/lambda_arch.py platform [--template T] [--lambda-arch A] [--override]
    python3.13 packaging/lambda_arch.py check-build BUILD_DIR [--template T]

``platform`` (run by packaging/Makefile before `pip install --platform`) prints the pip platform tag
for the one architecture the template's functions run on, and refuses, naming every resource, when
the functions disagree with each other, with a layer's CompatibleArchitectures or BuildArchitecture,
or with an explicit LAMBDA_ARCH (unless ``--override``: the bench builds for this machine on purpose).
``check-build`` (run by `make template-check` after `sam build`) fails when a built wheel's platform
tag or a shared object's ELF machine is not the functions' architecture: such a layer imports on the
build machine and fails at every invocation in Lambda.

Standard library only: `sam build` runs this with a bare python3.13, which has no YAML parser, so the
template is read by ``read_architectures``, a reader of the block-style YAML templates are written in
(see its docstring for what it refuses).
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_TEMPLATE = Path(__file__).resolve().parent.parent / "template.yaml"
# Lambda's architectures and the pip platform of their manylinux2014 wheels.
PLATFORMS = {"arm64": "manylinux2014_aarch64", "x86_64": "manylinux2014_x86_64"}
# What LAMBDA_ARCH and `uname -m` may say, in Lambda's words.
ALIASES = {"arm64": "arm64", "aarch64": "arm64", "x86_64": "x86_64", "amd64": "x86_64"}
# Lambda runs a function on x86_64 when neither it nor the Globals name an architecture.
LAMBDA_DEFAULT = "x86_64"
FUNCTION_TYPES = {"AWS::Serverless::Function", "AWS::Lambda::Function"}
LAYER_TYPES = {"AWS::Serverless::LayerVersion", "AWS::Lambda::LayerVersion"}
# ELF e_machine values (System V ABI supplements for each processor).
ELF_MACHINES = {62: "x86_64", 183: "arm64"}

# A key is followed by ": " or ":" at the end of the line (so an ARN in a list is not a key).
_KEY = re.compile(r"^(?P<indent> *)(?:- +)?(?P<key>[A-Za-z0-9_.:\-]+|\"[^\"]*\"|'[^']*'):(?:[ \t]+(?P<value>.*))?$")
_ITEM = re.compile(r"^(?P<indent> *)- *(?P<value>.*)$")
_BLOCK_SCALAR = re.compile(r"^[>|][+-]?\d*$")


class ArchitectureError(ValueError):
    """The template's architectures cannot be built into one layer (the message says why)."""


@dataclass
class TemplateArchitectures:
    """Where the template names architectures: functions (resolved with Globals), layers, build metadata."""

    functions: dict[str, list[str]] = field(default_factory=dict)
    layers: dict[str, list[str]] = field(default_factory=dict)
    build_architectures: dict[str, str] = field(default_factory=dict)


def _literal(value: str, where: str) -> list[str]:
    """``[arm64]``, ``arm64`` or ``"arm64"`` as a list; an intrinsic or other form is refused."""
    text = re.sub(r"\s+#.*$", "", value).strip()
    if text.startswith("[") and text.endswith("]"):
        items = [item.strip().strip("\"'") for item in text[1:-1].split(",") if item.strip()]
    elif text and not text.startswith(("!", "{", "&", "*", "[")):
        items = [text.strip("\"'")]
    else:
        items = []
    if not items or any(item.startswith(("!", "{", "[", "&", "*")) for item in items):
        raise ArchitectureError(f"{where}: {value.strip()!r} is not a literal architecture list")
    return items


def _walk(text: str) -> list[tuple[tuple[str, ...], str]]:
    """(path of keys, raw value) for every mapping key; block lists become ``[a, b]`` values."""
    entries: list[tuple[tuple[str, ...], str]] = []
    stack: list[tuple[int, str]] = []
    lines = text.splitlines()
    skip_deeper_than: int | None = None
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if not line.strip() or line.lstrip().startswith("#") or line.startswith("---"):
            continue
        indent = len(line) - len(line.lstrip(" "))
        if skip_deeper_than is not None:
            if indent > skip_deeper_than:
                continue  # a block scalar's text, whatever it looks like
            skip_deeper_than = None
        match = _KEY.match(line)
        if match is None:
            continue  # a list item's scalar, or a flow continuation: no key of ours starts here
        dash = line[indent:].startswith("-")
        key_indent = line.index(match["key"]) if dash else indent
        while stack and stack[-1][0] >= key_indent:
            stack.pop()
        key = match["key"].strip("\"'")
        stack.append((key_indent, key))
        value = re.sub(r"\s+#.*$", "", match["value"] or "").strip()
        if _BLOCK_SCALAR.match(value):
            skip_deeper_than = key_indent
            value = ""
        elif not value:
            items: list[str] = []
            while index < len(lines):
                item = _ITEM.match(lines[index])
                if item is None or len(item["indent"]) < key_indent or _KEY.match(lines[index]):
                    break
                items.append(re.sub(r"\s+#.*$", "", item["value"]).strip())
                index += 1
            if items:
                value = "[" + ", ".join(items) + "]"
        entries.append((tuple(name for _, name in stack), value))
    return entries


def read_architectures(text: str) -> TemplateArchitectures:
    """The architectures a block-style YAML SAM/CloudFormation template gives its functions and layers.

    Refused (``ArchitectureError``), so that a build never guesses: a JSON template, and an
    architecture given as an intrinsic (``!Ref``, ``!If``) or a YAML anchor rather than a literal.
    """
    if text.lstrip().startswith("{"):
        raise ArchitectureError("a JSON template: convert it to YAML (sam build's Makefile reads YAML only)")
    entries = _walk(text)
    types: dict[str, str] = {}
    own: dict[str, list[str]] = {}
    found = TemplateArchitectures()
    global_architectures: list[str] | None = None
    for path, value in entries:
        where = ".".join(path)
        if path == ("Globals", "Function", "Architectures"):
            global_architectures = _literal(value, where)
        elif len(path) == 3 and path[0] == "Resources" and path[2] == "Type":
            types[path[1]] = value.strip("\"'")
        elif len(path) == 4 and path[0] == "Resources" and path[2:] == ("Properties", "Architectures"):
            own[path[1]] = _literal(value, where)
        elif len(path) == 4 and path[0] == "Resources" and path[2:] == ("Properties", "CompatibleArchitectures"):
            found.layers[path[1]] = _literal(value, where)
        elif len(path) == 4 and path[0] == "Resources" and path[2:] == ("Metadata", "BuildArchitecture"):
            found.build_architectures[path[1]] = _literal(value, where)[0]
    if not types:
        raise ArchitectureError("no Resources with a Type: not a CloudFormation template")
    for name, resource_type in types.items():
        if resource_type in FUNCTION_TYPES:
            inherited = global_architectures if resource_type == "AWS::Serverless::Function" else None
            found.functions[name] = own.get(name) or inherited or [LAMBDA_DEFAULT]
        elif resource_type in LAYER_TYPES:
            found.layers.setdefault(name, [])
    return found


def normalise(architecture: str, where: str) -> str:
    """Lambda's name for an architecture (``aarch64`` -> ``arm64``); an unknown one is refused."""
    known = ALIASES.get(architecture.strip().lower())
    if known is None:
        raise ArchitectureError(f"{where}: unknown architecture {architecture!r} (Lambda has arm64 and x86_64)")
    return known


def select_architecture(found: TemplateArchitectures, explicit: str | None = None, override: bool = False) -> str:
    """The one architecture to build the layer for, or ``ArchitectureError`` naming each disagreement."""
    per_function: dict[str, str] = {}
    for name, architectures in found.functions.items():
        if len(architectures) != 1:
            raise ArchitectureError(f"{name}: Architectures must name exactly one architecture, not {architectures}")
        per_function[name] = normalise(architectures[0], name)
    if not per_function:
        raise ArchitectureError("the template has no Lambda functions: nothing says which architecture to build")
    chosen = sorted(set(per_function.values()))
    if len(chosen) > 1:
        listing = ", ".join(f"{name}={arch}" for name, arch in sorted(per_function.items()))
        raise ArchitectureError(
            f"the functions run on different architectures ({listing}); one layer cannot serve both"
        )
    architecture = chosen[0]
    problems = []
    for name, compatible in sorted(found.layers.items()):
        declared = [normalise(arch, name) for arch in compatible]
        if declared and architecture not in declared:
            problems.append(f"{name}: CompatibleArchitectures {compatible} lacks the functions' {architecture}")
    for name, build_architecture in sorted(found.build_architectures.items()):
        if normalise(build_architecture, name) != architecture:
            problems.append(
                f"{name}: Metadata BuildArchitecture {build_architecture} is not the functions' {architecture}"
            )
    if problems:
        raise ArchitectureError("; ".join(problems))
    if explicit:
        wanted = normalise(explicit, "LAMBDA_ARCH")
        if wanted != architecture and not override:
            raise ArchitectureError(
                f"LAMBDA_ARCH={explicit} but the template's functions run on {architecture}: unset LAMBDA_ARCH "
                "(the build follows the template) or change the template's Architectures"
            )
        return wanted
    return architecture


def wheel_architecture(tag: str) -> str | None:
    """``arm64``/``x86_64`` for a Linux wheel tag's platform, None for a pure one, ``tag`` otherwise."""
    platforms = tag.rsplit("-", 1)[-1].split(".")
    if platforms == ["any"]:
        return None
    found = {
        arch
        for platform in platforms
        for suffix, arch in (("_aarch64", "arm64"), ("_x86_64", "x86_64"))
        if "linux" in platform and platform.endswith(suffix)
    }
    return found.pop() if len(found) == 1 else tag


def elf_architecture(path: Path) -> str | None:
    """``arm64``/``x86_64`` (or ``machine N``) for an ELF file, None when it is not one."""
    with open(path, "rb") as stream:
        header = stream.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    machine = int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")
    return ELF_MACHINES.get(machine, f"machine {machine}")


def build_problems(build_dir: Path, architecture: str) -> list[str]:
    """What under ``build_dir`` was built for another architecture (empty when everything fits)."""
    problems: list[str] = []
    for wheel in sorted(build_dir.rglob("*.dist-info/WHEEL")):
        for line in wheel.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("Tag:"):
                tag = line.partition(":")[2].strip()
                found = wheel_architecture(tag)
                if found is not None and found != architecture:
                    problems.append(f"{wheel.parent.relative_to(build_dir)}: wheel tag {tag} is not {architecture}")
    for shared in sorted(path for path in build_dir.rglob("*.so*") if path.is_file()):
        found = elf_architecture(shared)
        if found is not None and found != architecture:
            problems.append(f"{shared.relative_to(build_dir)}: compiled for {found}, not {architecture}")
    return problems


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="lambda_arch.py", description=__doc__.strip().splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    platform = commands.add_parser("platform", help="print the pip platform of the template's architecture")
    platform.add_argument("--lambda-arch", default="", help="an explicit architecture (LAMBDA_ARCH); must agree")
    platform.add_argument("--override", action="store_true", help="build --lambda-arch whatever the template says")
    check = commands.add_parser("check-build", help="fail when a built wheel is not for the functions' architecture")
    check.add_argument("build_dir", type=Path)
    for command in (platform, check):
        command.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE)
    args = parser.parse_args(argv)
    try:
        found = read_architectures(args.template.read_text(encoding="utf-8"))
        if args.command == "platform":
            architecture = select_architecture(found, args.lambda_arch or None, args.override)
            print(f"lambda_arch: {args.template.name}: building for {architecture}", file=sys.stderr)
            print(PLATFORMS[architecture])
            return 0
        architecture = select_architecture(found)
    except (ArchitectureError, OSError) as error:
        print(f"lambda_arch: {args.template}: {error}", file=sys.stderr)
        return 1
    problems = build_problems(args.build_dir, architecture)
    for problem in problems[:20]:
        print(f"lambda_arch: {problem}", file=sys.stderr)
    if problems:
        print(f"lambda_arch: {len(problems)} built file(s) cannot load on {architecture} Lambda", file=sys.stderr)
        return 1
    print(f"lambda_arch: {args.build_dir}: every compiled wheel and .so is {architecture}, as the functions")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
