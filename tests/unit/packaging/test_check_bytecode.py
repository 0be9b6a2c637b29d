"""packaging/check_bytecode.py: the assertion `make template-check` runs on the built artifact."""

from __future__ import annotations

import compileall
import importlib.util
import py_compile
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
spec = importlib.util.spec_from_file_location("check_bytecode", ROOT / "packaging" / "check_bytecode.py")
assert spec is not None and spec.loader is not None
check_bytecode = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_bytecode)


def _artifact(tmp_path: Path) -> Path:
    layer = tmp_path / "build" / "OrbBridgeLayer" / "python" / "pkg"
    layer.mkdir(parents=True)
    (layer / "__init__.py").write_text("")
    (layer / "mod.py").write_text("VALUE = 1\n")
    function = tmp_path / "build" / "TrackIntakeFunction"
    function.mkdir()
    (function / "app.py").write_text("def lambda_handler(event, context):\n    return event\n")
    return tmp_path / "build"


def _compile(directory: Path, mode: py_compile.PycInvalidationMode) -> None:
    assert compileall.compile_dir(str(directory), quiet=1, invalidation_mode=mode)


def test_every_py_with_its_unchecked_hash_pyc_passes(tmp_path):
    build = _artifact(tmp_path)
    _compile(build, py_compile.PycInvalidationMode.UNCHECKED_HASH)
    assert check_bytecode.main([str(build)]) == 0


def test_a_missing_pyc_fails_naming_the_file(tmp_path, capsys):
    build = _artifact(tmp_path)
    _compile(build, py_compile.PycInvalidationMode.UNCHECKED_HASH)
    (build / "OrbBridgeLayer" / "python" / "pkg" / "late.py").write_text("X = 2\n")
    assert check_bytecode.main([str(build)]) == 1
    assert "late.py" in capsys.readouterr().err


def test_timestamp_pyc_is_refused(tmp_path):
    build = _artifact(tmp_path)
    _compile(build, py_compile.PycInvalidationMode.TIMESTAMP)
    problems = check_bytecode.problems(build / "TrackIntakeFunction")
    assert problems and "not unchecked-hash" in problems[0]


def test_pyc_of_another_python_version_is_refused(tmp_path):
    build = _artifact(tmp_path)
    _compile(build, py_compile.PycInvalidationMode.UNCHECKED_HASH)
    compiled = Path(importlib.util.cache_from_source(str(build / "TrackIntakeFunction" / "app.py")))
    data = bytearray(compiled.read_bytes())
    data[0] ^= 0xFF  # another magic number
    compiled.write_bytes(bytes(data))
    assert "another Python version" in check_bytecode.problems(build / "TrackIntakeFunction")[0]


def test_an_empty_build_directory_fails(tmp_path):
    (tmp_path / "build").mkdir()
    assert check_bytecode.main([str(tmp_path / "build")]) == 1
    assert sys.implementation.cache_tag  # the .pyc names the checker expects come from the running interpreter
