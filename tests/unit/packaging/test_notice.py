"""LICENSE, NOTICE, pyproject.toml and the SAR metadata agree on what may be deployed under which license.

NOTICE must credit every package the built layer bundles (requirements.txt and what those require,
as their installed metadata says) with the license that metadata declares, and the Orb spec subset
the contract tests copy from Orb's SDK repository.
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from orb_bridge_dev.devstack.template import load_template

ROOT = Path(__file__).resolve().parents[3]
REQUIREMENTS = ROOT / "layers" / "orb_bridge" / "requirements.txt"
# The python3.13 Lambda runtime on arm64, against which requirement markers are evaluated
# (Marker.evaluate fills in the rest from this interpreter).
LAMBDA_ENVIRONMENT: dict[str, str] = {
    "python_version": "3.13",
    "python_full_version": "3.13.0",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "aarch64",
    "platform_python_implementation": "CPython",
    "implementation_name": "cpython",
    "os_name": "posix",
    "extra": "",
}
# Trove classifiers as SPDX identifiers (for packages whose License field is free text).
CLASSIFIERS = {
    "License :: OSI Approved :: MIT License": "MIT",
    "License :: OSI Approved :: MIT No Attribution License (MIT-0)": "MIT-0",
    "License :: OSI Approved :: Apache Software License": "Apache-2.0",
    "License :: OSI Approved :: Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "License :: OSI Approved :: BSD License": "BSD-3-Clause",
    "License :: OSI Approved :: Python Software Foundation License": "PSF-2.0",
}
NOTICE_ENTRY = re.compile(r"^\* (?P<name>[A-Za-z0-9._-]+): (?P<license>[A-Za-z0-9.-]+)\.", re.MULTILINE)


def notice_section(title: str) -> str:
    text = (ROOT / "NOTICE").read_text(encoding="utf-8")
    start = text.index(title)
    following = text.find("\n\n\n", start)
    return text[start : following if following != -1 else len(text)]


def bundled_licenses() -> dict[str, str]:
    """NOTICE's layer section as {canonical name: SPDX id}."""
    section = notice_section("Bundled in the deployed Lambda layer")
    return {canonicalize_name(m["name"]): m["license"] for m in NOTICE_ENTRY.finditer(section)}


def layer_closure() -> set[str]:
    """requirements.txt and, transitively, what each installed package requires on Lambda (no extras)."""
    pending = [
        Requirement(line.split("#")[0].strip())
        for line in REQUIREMENTS.read_text(encoding="utf-8").splitlines()
        if line.split("#")[0].strip()
    ]
    seen: set[str] = set()
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        if name in seen or (requirement.marker and not requirement.marker.evaluate(LAMBDA_ENVIRONMENT)):
            continue
        seen.add(name)
        pending += [Requirement(text) for text in metadata.requires(name) or []]
    return seen


def declared_licenses(name: str) -> set[str]:
    """Every SPDX id the installed distribution's metadata gives (expression, field, classifiers)."""
    meta = metadata.metadata(name)
    declared = {value.strip() for field in ("License-Expression", "License") for value in meta.get_all(field) or []}
    declared |= {CLASSIFIERS[c] for c in meta.get_all("Classifier") or [] if c in CLASSIFIERS}
    return {value for value in declared if value and len(value) < 40}


def test_license_is_the_apache_2_0_text():
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.lstrip().startswith("Apache License\n                           Version 2.0, January 2004")
    for heading in ("1. Definitions.", "4. Redistribution.", "9. Accepting Warranty or Additional Liability."):
        assert heading in text
    assert "END OF TERMS AND CONDITIONS" in text


def test_license_pyproject_and_sar_metadata_name_the_same_license():
    with open(ROOT / "pyproject.toml", "rb") as stream:
        project = tomllib.load(stream)["project"]
    license_ = project["license"]
    pyproject_license = license_["text"] if isinstance(license_, dict) else license_
    sar = load_template()["Metadata"]["AWS::ServerlessRepo::Application"]
    assert pyproject_license == sar["SpdxLicenseId"] == "Apache-2.0"
    assert sar["LicenseUrl"] == "LICENSE"
    assert "Licensed under the Apache License, Version 2.0 (see LICENSE)" in (ROOT / "NOTICE").read_text(
        encoding="utf-8"
    )


def test_notice_credits_exactly_what_the_layer_bundles():
    closure = layer_closure()
    assert {"aws-lambda-powertools", "httpx", "pydantic", "pydantic-core", "certifi"} <= closure
    assert "boto3" not in closure  # the Lambda runtime's, never bundled
    assert set(bundled_licenses()) == closure


@pytest.mark.parametrize("name", sorted(layer_closure()))
def test_each_bundled_license_is_what_the_package_metadata_declares(name):
    assert bundled_licenses()[name] in declared_licenses(name)


def test_notice_credits_the_orb_spec_subset_and_its_origin():
    section = notice_section("In the repository's tests")
    contract_readme = (ROOT / "tests" / "contract" / "README.md").read_text(encoding="utf-8")
    release = re.search(r"release (\d+\.\d+\.\d+)", contract_readme)
    assert release is not None
    assert "tests/contract/orb-openapi-subset.json" in section
    assert "https://github.com/orbcorp/orb-python" in section and "orbcorp/orb-python" in contract_readme
    assert f"release {release[1]}" in section
    assert "Apache-2.0" in section and "Modified" in section
