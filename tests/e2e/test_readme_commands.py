"""Issue 21: every shell block of README.md and docs/*.md a reader may paste keeps working.

Blocks are marked in their fence's info string (docs/development.md, "The commands the docs show
are tested"): ```` ```sh dev ```` blocks run with bash against the dev stack the e2e tests start
in-process (its free ports rewritten in), ```` ```sh aws ```` blocks must be well-formed shell
(`bash -n`) whose every `orb-bridge ...` command parses with its command's parser.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from orb_bridge_dev import cli
from orb_bridge_dev.commands import rejected, replay, status
from orb_bridge_dev.commands.backfill import command as backfill
from orb_bridge_dev.commands.webhook import event as webhook_event
from orb_bridge_dev.devstack.stack import DEV_ORB_API_KEY, DevStack
from orb_bridge_dev.orb_sandbox import cli as sandbox_cli

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# A fence (possibly indented, as inside a list item), its info string and its body.
FENCE = re.compile(r"^(?P<indent>[ ]*)```(?P<info>[^`\n]*)\n(?P<body>.*?)^(?P=indent)```[ ]*$", re.M | re.S)
SHELL_LANGUAGES = {"sh", "bash", "shell"}
MARKERS = {"dev", "aws"}
MAKE_TARGETS = set(re.findall(r"(?m)^([a-z][a-z0-9-]*):", (ROOT / "Makefile").read_text(encoding="utf-8")))
# Commands that parse their whole command line themselves (cli.main delegates to them).
OWN_PARSERS: dict[tuple[str, ...], Callable[[], argparse.ArgumentParser]] = {
    ("replay",): replay.build_parser,
    ("rejected",): rejected.build_parser,
    ("backfill",): backfill.build_parser,
    ("status",): status.build_parser,
    ("sandbox",): sandbox_cli.build_parser,
    ("webhook", "sign"): webhook_event.build_parser,
}


@dataclass(frozen=True)
class Block:
    document: str
    line: int
    marker: str
    text: str

    def __str__(self) -> str:
        return f"{self.document}:{self.line}"


def marked_blocks() -> list[Block]:
    blocks = []
    for path in DOCUMENTS:
        text = path.read_text(encoding="utf-8")
        for fence in FENCE.finditer(text):
            words = fence["info"].split()
            if len(words) >= 2 and words[0] in SHELL_LANGUAGES and words[1] in MARKERS:
                body = "\n".join(line.removeprefix(fence["indent"]) for line in fence["body"].splitlines())
                line = text.count("\n", 0, fence.start()) + 1
                blocks.append(Block(str(path.relative_to(ROOT)), line, words[1], body + "\n"))
    return blocks


BLOCKS = marked_blocks()
DEV_BLOCKS = [block for block in BLOCKS if block.marker == "dev"]
AWS_BLOCKS = [block for block in BLOCKS if block.marker == "aws"]


def without_comments(script: str) -> str:
    """The script less its comments: a `#` starting a word outside quotes, to the end of its line."""
    kept, quote, previous, skipping = [], "", "\n", False
    for char in script:
        if skipping:
            skipping = char != "\n"
        elif quote:
            quote = "" if char == quote and previous != "\\" else quote
        elif char in "'\"" and previous != "\\":
            quote = char
        elif char == "#" and previous in " \t\n;&|(":
            skipping = True
            continue
        if not skipping:
            kept.append(char)
        previous = char
    return "".join(kept)


def commands(script: str) -> Iterator[list[str]]:
    """Each simple command of a shell script, as words (comments, continuations and operators handled)."""
    lexer = shlex.shlex(without_comments(script).replace("\\\n", " "), posix=True, punctuation_chars="();<>|&\n")
    lexer.whitespace = " \t\r"  # newlines separate commands
    lexer.whitespace_split = True
    lexer.commenters = ""
    words: list[str] = []
    for token in lexer:
        if set(token) <= set(";&|()\n"):
            if words:
                yield words
            words = []
        else:
            words.append(token)
    if words:
        yield words


def orb_bridge_arguments(words: list[str]) -> list[str] | None:
    for index, word in enumerate(words):
        if word == "orb-bridge" or word.endswith("/orb-bridge"):
            return words[index + 1 :]
    return None


def parse_problem(argv: list[str]) -> str | None:
    """Why ``orb-bridge argv`` would not parse, or None. Parses only: nothing runs."""
    prefix = next((prefix for prefix in OWN_PARSERS if tuple(argv[: len(prefix)]) == prefix), ())
    parser = OWN_PARSERS[prefix]() if prefix else cli.build_parser()
    rest = argv[len(prefix) :]
    try:
        parser.parse_args(rest)
    except SystemExit as exit_:
        return f"`orb-bridge {shlex.join(argv)}` does not parse (exit {exit_.code})"
    return None


def make_problem(words: list[str]) -> str | None:
    """``make TARGET [ARGS="..."]``: the target exists; ``make dev``'s ARGS parse as `orb-bridge dev`'s."""
    targets = [word for word in words[1:] if "=" not in word]
    missing = [target for target in targets if target not in MAKE_TARGETS]
    if missing:
        return f"`{shlex.join(words)}`: no make target {missing}"
    args = [word.split("=", 1)[1] for word in words[1:] if word.startswith("ARGS=")]
    if targets == ["dev"] and args:
        return parse_problem(["dev", *shlex.split(args[0])])
    return None


# Links to files of this repository: absolute (the README's, shown on SAR) or relative (between docs pages).
ABSOLUTE_LINK = re.compile(r"https://github\.com/segment-orb-bridge/segment-orb-bridge/blob/main/([^)#\s]+)")
RELATIVE_LINK = re.compile(r"\]\((?![a-z]+:|#)([^)#\s]+)")


def test_every_page_the_readme_and_docs_link_exists() -> None:
    missing = []
    for path in DOCUMENTS:
        text = re.sub(
            r"```.*?```|`[^`\n]*`", "", path.read_text(encoding="utf-8"), flags=re.DOTALL
        )  # code is not links
        missing += [f"{path.name}: {target}" for target in ABSOLUTE_LINK.findall(text) if not (ROOT / target).is_file()]
        missing += [
            f"{path.name}: {target}" for target in RELATIVE_LINK.findall(text) if not (path.parent / target).is_file()
        ]
    assert not missing
    readme_pages = set(re.findall(r"/blob/main/(docs/[\w-]+\.md)", (ROOT / "README.md").read_text(encoding="utf-8")))
    assert {"docs/configuration.md", "docs/deploy.md", "docs/rejected-events.md", "docs/proof.md"} <= readme_pages
    assert {"docs/measured.md", "docs/development.md"} <= readme_pages


def test_the_docs_mark_their_dev_and_aws_commands() -> None:
    # The README's own commands are among them, and every page with commands is searched.
    documents = {block.document for block in BLOCKS}
    assert "README.md" in {block.document for block in DEV_BLOCKS}
    assert {"README.md", "docs/deploy.md", "docs/rejected-events.md"} <= documents
    assert len(DEV_BLOCKS) >= 5 and len(AWS_BLOCKS) >= 5


def test_the_block_reader_finds_commands_through_continuations_comments_and_operators() -> None:
    script = 'ID=x; echo "$ID" # a comment\ncurl -s \\\n  -d \'{"a": 1}\' http://h | head && make dev ARGS="--port 1"\n'
    assert list(commands(script)) == [
        ["ID=x"],
        ["echo", "$ID"],
        ["curl", "-s", "-d", '{"a": 1}', "http://h"],
        ["head"],
        ["make", "dev", "ARGS=--port 1"],
    ]
    assert parse_problem(["replay", "--dev", "--yes"]) is None
    assert parse_problem(["replay", "--dev", "--no-such-flag"]) is not None
    assert parse_problem(["webhook", "send", "invoice.issued", "--times", "2"]) is None
    assert make_problem(["make", "dev", "ARGS=--port 3100 --name second"]) is None
    assert make_problem(["make", "dev", "ARGS=--no-such-flag"]) is not None
    assert make_problem(["make", "no-such-target"]) is not None


@pytest.mark.parametrize("block", AWS_BLOCKS, ids=str)
def test_aws_block_is_well_formed_and_its_orb_bridge_commands_parse(block: Block) -> None:
    syntax = subprocess.run(
        ["bash", "-n"],  # noqa: S607 (bash from PATH, as a reader runs the block)
        input=block.text,
        capture_output=True,
        text=True,
        check=False,
    )
    assert syntax.returncode == 0, f"{block}: not well-formed shell: {syntax.stderr}"
    problems = [
        problem
        for words in commands(block.text)
        if (argv := orb_bridge_arguments(words)) is not None and (problem := parse_problem(argv))
    ]
    problems += [problem for words in commands(block.text) if words[0] == "make" and (problem := make_problem(words))]
    assert not problems, f"{block}: {problems}"


# Bash runs the block as a reader would, with curl failing on an HTTP error, and `orb-bridge` being
# this checkout's CLI. `status` answers 1 when the stack needs attention (the shared test stack
# keeps other tests' rejected records): only 2, cannot tell, or a crash is a failure.
PRELUDE = """set -euo pipefail
orb-bridge() {
  local rc=0
  "$BRIDGE_PYTHON" -m orb_bridge_dev.cli "$@" || rc=$?
  if [ "$1" = status ] && [ "$rc" -eq 1 ]; then rc=0; fi
  return "$rc"
}
curl() { command curl --fail-with-body --max-time 30 "$@"; }
"""
# The developer's settings must not reach the commands (a real ORB_API_BASE_URL, another mapping).
FOREIGN_SETTINGS = re.compile(
    r"^(ORB_|SEGMENT_|AWS_|EXTERNAL_CUSTOMER_ID_FIELD|PROPERTIES_MAPPING|EVENT_NAME_FIELD|IDEMP)"
)


def for_the_test_stack(block: Block, stack: DevStack) -> tuple[str, list[str]]:
    """The block with the test stack's ports and CLI, its `make` lines checked (not run)."""
    assert stack.gateway is not None and stack.sandbox is not None
    gateway, sandbox = f"127.0.0.1:{stack.gateway.port}", stack.sandbox.base_url.split("//", 1)[1].split("/", 1)[0]
    problems = [problem for words in commands(block.text) if words[0] == "make" and (problem := make_problem(words))]
    script = "\n".join(line for line in block.text.splitlines() if not line.lstrip().startswith("make "))
    script = script.replace("127.0.0.1:3000", gateway).replace("127.0.0.1:3001", sandbox)
    script = script.replace(".venv/bin/orb-bridge", "orb-bridge")
    script = script.replace("orb-bridge webhook send", f"orb-bridge webhook send --url http://{gateway}/orb/webhook")
    return script, problems


@pytest.mark.parametrize("block", DEV_BLOCKS, ids=str)
def test_dev_block_runs_against_the_running_dev_stack(block: Block, stack: DevStack) -> None:
    script, problems = for_the_test_stack(block, stack)
    assert not problems, f"{block}: {problems}"
    assert stack.sandbox is not None
    env = {name: value for name, value in os.environ.items() if not FOREIGN_SETTINGS.match(name)}
    env |= {
        "BRIDGE_PYTHON": sys.executable,
        # `--dev` reaches this stack (not one of the developer's) and its sandbox.
        "AWS_ENDPOINT_URL": stack.resources.endpoint_url,
        "ORB_API_BASE_URL": stack.sandbox.base_url,
        "ORB_API_KEY": DEV_ORB_API_KEY,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "layers" / "orb_bridge"), str(ROOT / "dev"), str(ROOT)]),
    }
    result = subprocess.run(
        ["bash", "-c", PRELUDE + script],  # noqa: S607 (bash from PATH, as a reader runs the block)
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, (
        f"{block}: exit {result.returncode}\n--- script\n{script}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )
