"""packaging/lambda_arch.py: the layer's wheels follow the template's architecture; a mismatch is refused.

A template switched to x86_64 must build an x86_64 layer (before this, packaging/Makefile picked
arm64 wheels from LAMBDA_ARCH's default whatever the functions ran on, and every invocation failed
on pydantic_core's arm64 .so); a built layer of another architecture must fail `make template-check`.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from orb_bridge_dev.devstack.template import load_template, resources_of_type

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = ROOT / "template.yaml"
spec = importlib.util.spec_from_file_location("lambda_arch", ROOT / "packaging" / "lambda_arch.py")
assert spec is not None and spec.loader is not None
lambda_arch = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = lambda_arch  # dataclasses look their module up while being defined
spec.loader.exec_module(lambda_arch)

MINIMAL = """\
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Runtime: python3.13
{globals_arch}
Resources:
  Layer:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: layers/orb_bridge/
{layer_arch}
  One:
    Type: AWS::Serverless::Function
    Properties:
      Description: >-
        Architectures: [x86_64] in a folded description is text, not a setting
      Handler: app.lambda_handler
{one_arch}
  Two:
    Type: AWS::Serverless::Function
    Properties:
      Handler: app.lambda_handler
"""


def minimal(globals_arch: str = "    Architectures: [arm64]", layer_arch: str = "", one_arch: str = "") -> str:
    return MINIMAL.format(globals_arch=globals_arch, layer_arch=layer_arch, one_arch=one_arch)


def switched_to_x86_64() -> str:
    """The real template with every arm64 (Globals, the layer's CompatibleArchitectures and BuildArchitecture) as x86_64."""
    return TEMPLATE.read_text(encoding="utf-8").replace("arm64", "x86_64")


def select(text: str, explicit: str | None = None, override: bool = False) -> str:
    return lambda_arch.select_architecture(lambda_arch.read_architectures(text), explicit, override)


# --- reading the template --------------------------------------------------------------------


def test_the_real_template_reads_as_the_yaml_parser_sees_it():
    template = load_template()
    found = lambda_arch.read_architectures(TEMPLATE.read_text(encoding="utf-8"))
    functions = resources_of_type(template, "AWS::Serverless::Function")
    globals_arch = template["Globals"]["Function"]["Architectures"]
    assert found.functions == {
        name: resource["Properties"].get("Architectures", globals_arch) for name, resource in functions.items()
    }
    layers = resources_of_type(template, "AWS::Serverless::LayerVersion")
    assert found.layers == {name: layer["Properties"]["CompatibleArchitectures"] for name, layer in layers.items()}
    assert found.build_architectures == {
        name: layer["Metadata"]["BuildArchitecture"] for name, layer in layers.items() if "Metadata" in layer
    }
    assert select(TEMPLATE.read_text(encoding="utf-8")) == "arm64"


def test_a_template_switched_to_x86_64_selects_x86_64_wheels():
    architecture = select(switched_to_x86_64())
    assert architecture == "x86_64"
    assert lambda_arch.PLATFORMS[architecture] == "manylinux2014_x86_64"


def test_functions_without_architectures_run_on_lambdas_default_x86_64():
    assert select(minimal(globals_arch="")) == "x86_64"


def test_a_block_list_and_a_plain_scalar_read_like_a_flow_list():
    assert select(minimal(globals_arch="    Architectures:\n      - arm64  # Graviton")) == "arm64"
    assert select(minimal(layer_arch="      CompatibleArchitectures:\n      - arm64")) == "arm64"
    assert select(minimal(globals_arch='    Architectures: ["arm64"]')) == "arm64"


def test_an_intrinsic_architecture_is_refused_rather_than_guessed():
    with pytest.raises(lambda_arch.ArchitectureError, match=r"Globals\.Function\.Architectures.*not a literal"):
        lambda_arch.read_architectures(minimal(globals_arch="    Architectures: !Ref Architecture"))


def test_a_json_template_is_refused():
    with pytest.raises(lambda_arch.ArchitectureError, match="JSON"):
        lambda_arch.read_architectures('{"Resources": {}}')


# --- refusing disagreements ------------------------------------------------------------------


def test_functions_on_two_architectures_are_refused_naming_each():
    text = minimal(one_arch="      Architectures: [x86_64]")
    with pytest.raises(lambda_arch.ArchitectureError, match=r"One=x86_64, Two=arm64.*one layer cannot serve both"):
        select(text)


def test_a_layer_not_compatible_with_the_functions_is_refused():
    half_switched = TEMPLATE.read_text(encoding="utf-8").replace("Architectures: [arm64]", "Architectures: [x86_64]", 1)
    with pytest.raises(lambda_arch.ArchitectureError, match=r"OrbBridgeLayer: CompatibleArchitectures.*lacks"):
        select(half_switched)


def test_a_build_architecture_other_than_the_functions_is_refused():
    text = switched_to_x86_64().replace("BuildArchitecture: x86_64", "BuildArchitecture: arm64")
    with pytest.raises(lambda_arch.ArchitectureError, match="OrbBridgeLayer: Metadata BuildArchitecture arm64"):
        select(text)


def test_an_explicit_lambda_arch_must_agree_with_the_template():
    text = TEMPLATE.read_text(encoding="utf-8")
    assert select(text, "aarch64") == "arm64"
    with pytest.raises(
        lambda_arch.ArchitectureError, match="LAMBDA_ARCH=x86_64 but the template's functions run on arm64"
    ):
        select(text, "x86_64")
    assert select(text, "x86_64", override=True) == "x86_64"
    with pytest.raises(lambda_arch.ArchitectureError, match="unknown architecture 'sparc'"):
        select(text, "sparc")


# --- packaging/Makefile follows the template --------------------------------------------------

FAKE_PYTHON = """#!/bin/sh
# python3.13 stand-in: runs lambda_arch.py for real, records pip's argv instead of downloading.
case "$1" in
  -c) exit 0 ;;
  -m) if [ "$2" = pip ]; then
        echo "$@" >> "$PIP_LOG"
        while [ $# -gt 0 ]; do if [ "$1" = --target ]; then mkdir -p "$2"; fi; shift; done
      fi
      exit 0 ;;
  *) exec "$REAL_PYTHON" "$@" ;;
esac
"""


def run_layer_build(tmp_path: Path, template_text: str, **env: str) -> tuple[subprocess.CompletedProcess[str], str]:
    """`make build-OrbBridgeLayer` as sam runs it (scratch copy as cwd), pip replaced by a recorder."""
    scratch = tmp_path / "scratch"
    (scratch / "orb_bridge").mkdir(parents=True)
    shutil.copy(ROOT / "layers" / "orb_bridge" / "requirements.txt", scratch)
    template = tmp_path / "template.yaml"
    template.write_text(template_text, encoding="utf-8")
    fake = tmp_path / "python3.13"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    pip_log = tmp_path / "pip.log"
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in {"LAMBDA_ARCH", "LAMBDA_ARCH_OVERRIDE", "MAKEFLAGS"}
    }
    environment.update(
        ARTIFACTS_DIR=str(tmp_path / "artifacts"),
        BRIDGE_TEMPLATE=str(template),
        PYTHON313=str(fake),
        REAL_PYTHON=sys.executable,
        PIP_LOG=str(pip_log),
        **env,
    )
    result = subprocess.run(
        ["make", "--makefile", str(ROOT / "packaging" / "Makefile"), "build-OrbBridgeLayer"],  # noqa: S607
        cwd=scratch,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    return result, pip_log.read_text() if pip_log.exists() else ""


def test_the_makefile_installs_the_wheels_of_a_template_switched_to_x86_64(tmp_path):
    result, pip = run_layer_build(tmp_path, switched_to_x86_64())
    assert result.returncode == 0, result.stderr
    assert "--platform manylinux2014_x86_64" in pip
    result, pip = run_layer_build(tmp_path / "arm", TEMPLATE.read_text(encoding="utf-8"))
    assert result.returncode == 0, result.stderr
    assert "--platform manylinux2014_aarch64" in pip


def test_the_makefile_refuses_a_disagreeing_lambda_arch_before_installing_anything(tmp_path):
    result, pip = run_layer_build(tmp_path, TEMPLATE.read_text(encoding="utf-8"), LAMBDA_ARCH="x86_64")
    assert result.returncode != 0
    assert "LAMBDA_ARCH=x86_64 but the template's functions run on arm64" in result.stderr
    assert pip == ""


def test_the_bench_override_builds_this_machines_architecture(tmp_path):
    result, pip = run_layer_build(
        tmp_path, TEMPLATE.read_text(encoding="utf-8"), LAMBDA_ARCH="x86_64", LAMBDA_ARCH_OVERRIDE="1"
    )
    assert result.returncode == 0, result.stderr
    assert "--platform manylinux2014_x86_64" in pip


# --- checking a built layer ------------------------------------------------------------------

ELF_MACHINE = {"arm64": 183, "x86_64": 62}


def elf(machine: int) -> bytes:
    """The first 20 bytes of a little-endian ELF64 shared object for ``machine`` (e_machine at 18)."""
    return b"\x7fELF\x02\x01\x01" + bytes(9) + (3).to_bytes(2, "little") + machine.to_bytes(2, "little")


def built_layer(tmp_path: Path, tag: str, so_arch: str) -> Path:
    """A fake `sam build` output: a compiled wheel's dist-info and .so, a pure wheel, a function."""
    python = tmp_path / "build" / "OrbBridgeLayer" / "python"
    (python / "pydantic_core").mkdir(parents=True)
    (python / "pydantic_core-2.41.5.dist-info").mkdir()
    (python / "pydantic_core-2.41.5.dist-info" / "WHEEL").write_text(
        f"Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: {tag}\n"
    )
    so = python / "pydantic_core" / "_pydantic_core.cpython-313-linux-gnu.so"
    so.write_bytes(elf(ELF_MACHINE[so_arch]) + bytes(64))
    (python / "httpx-0.28.1.dist-info").mkdir()
    (python / "httpx-0.28.1.dist-info" / "WHEEL").write_text("Wheel-Version: 1.0\nTag: py3-none-any\n")
    (tmp_path / "build" / "TrackIntakeFunction").mkdir()
    (tmp_path / "build" / "TrackIntakeFunction" / "app.py").write_text("")
    return tmp_path / "build"


ARM_TAG = "cp313-cp313-manylinux_2_17_aarch64.manylinux2014_aarch64"
X86_TAG = "cp313-cp313-manylinux_2_17_x86_64.manylinux2014_x86_64"


def test_a_layer_built_for_the_functions_architecture_passes(tmp_path):
    build = built_layer(tmp_path, ARM_TAG, "arm64")
    assert lambda_arch.build_problems(build, "arm64") == []
    assert lambda_arch.main(["check-build", str(build), "--template", str(TEMPLATE)]) == 0


def test_a_layer_of_x86_64_wheels_under_arm64_functions_fails_naming_them(tmp_path, capsys):
    build = built_layer(tmp_path, X86_TAG, "x86_64")
    problems = lambda_arch.build_problems(build, "arm64")
    assert len(problems) == 2
    assert "pydantic_core-2.41.5.dist-info: wheel tag" in problems[0] and "is not arm64" in problems[0]
    assert "_pydantic_core.cpython-313-linux-gnu.so: compiled for x86_64, not arm64" in problems[1]
    assert lambda_arch.main(["check-build", str(build), "--template", str(TEMPLATE)]) == 1
    assert "cannot load on arm64 Lambda" in capsys.readouterr().err


def test_the_check_follows_a_template_switched_to_x86_64(tmp_path):
    template = tmp_path / "template.yaml"
    template.write_text(switched_to_x86_64(), encoding="utf-8")
    arm_build = built_layer(tmp_path / "arm", ARM_TAG, "arm64")
    assert lambda_arch.main(["check-build", str(arm_build), "--template", str(template)]) == 1
    x86_build = built_layer(tmp_path / "x86", X86_TAG, "x86_64")
    assert lambda_arch.main(["check-build", str(x86_build), "--template", str(template)]) == 0


def test_a_shared_object_without_a_wheel_record_is_still_checked(tmp_path):
    build = built_layer(tmp_path, ARM_TAG, "arm64")
    stray = build / "OrbBridgeLayer" / "python" / "vendored.libs" / "libz-1a2b.so.1.3"
    stray.parent.mkdir()
    stray.write_bytes(elf(ELF_MACHINE["x86_64"]))
    assert lambda_arch.build_problems(build, "arm64") == [
        "OrbBridgeLayer/python/vendored.libs/libz-1a2b.so.1.3: compiled for x86_64, not arm64"
    ]


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("py3-none-any", None),
        (ARM_TAG, "arm64"),
        ("cp313-cp313-musllinux_1_2_x86_64", "x86_64"),
        ("cp313-cp313-macosx_11_0_arm64", "cp313-cp313-macosx_11_0_arm64"),
        ("cp313-cp313-win_amd64", "cp313-cp313-win_amd64"),
    ],
)
def test_wheel_tags_map_to_lambda_architectures(tag, expected):
    assert lambda_arch.wheel_architecture(tag) == expected
