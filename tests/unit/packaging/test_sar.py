"""The Serverless Application Repository listing: metadata SAR accepts, agreeing with the project.

packaging/check_sar.py holds the checks (`make template-check` runs them with the `serverlessrepo`
library `sam publish` uses); here each is shown to pass on the real template and to refuse what
SAR or the project would refuse.
"""

from __future__ import annotations

import copy
import importlib.util
import re
import shutil
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from orb_bridge_dev.devstack.template import load_template

ROOT = Path(__file__).resolve().parents[3]
spec = importlib.util.spec_from_file_location("check_sar", ROOT / "packaging" / "check_sar.py")
assert spec is not None and spec.loader is not None
check_sar = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = check_sar
spec.loader.exec_module(check_sar)

SUPPORTED_LIST_URL = "https://docs.aws.amazon.com/serverlessrepo/latest/devguide/list-supported-resources.html"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def sar(template: dict[str, Any]) -> dict[str, Any]:
    return template["Metadata"]["AWS::ServerlessRepo::Application"]


def with_metadata(template: dict[str, Any], **changes: Any) -> dict[str, Any]:
    changed = copy.deepcopy(template)
    sar(changed).update(changes)
    return changed


def project_copy(tmp_path: Path, readme: str | None = None, version: str | None = None) -> Path:
    """A repository root holding copies of what the checks read (pyproject, LICENSE, README)."""
    for name in ("pyproject.toml", "LICENSE", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    if readme is not None:
        (tmp_path / "README.md").write_text(readme, encoding="utf-8")
    if version is not None:
        pyproject = (tmp_path / "pyproject.toml").read_text(encoding="utf-8")
        (tmp_path / "pyproject.toml").write_text(re.sub(r'(?m)^version = ".*"$', f'version = "{version}"', pyproject))
    return tmp_path


# --- the metadata ----------------------------------------------------------------------------


def test_the_templates_sar_metadata_passes_every_check(template):
    assert check_sar.metadata_problems(template) == []
    assert check_sar.main(["--template", str(ROOT / "template.yaml")]) == 0


def test_semantic_version_is_pyprojects_version(template, tmp_path):
    with open(ROOT / "pyproject.toml", "rb") as stream:
        version = tomllib.load(stream)["project"]["version"]
    assert sar(template)["SemanticVersion"] == version
    assert sar(template)["SourceCodeUrl"].endswith(f"/tree/v{version}")
    bumped = project_copy(tmp_path, version="0.2.0")
    assert "SemanticVersion 0.1.0 is not pyproject.toml's version 0.2.0" in check_sar.metadata_problems(
        template, bumped
    )


def test_what_sam_publish_requires_is_present(template):
    # The serverlessrepo library's create (author, description, name) and version (semantic_version) checks.
    for field in ("Author", "Description", "Name", "SemanticVersion"):
        assert sar(template)[field]
    assert not {"LicenseBody", "ReadmeBody"} & set(sar(template))
    assert (ROOT / sar(template)["LicenseUrl"]).is_file() and (ROOT / sar(template)["ReadmeUrl"]).is_file()


@pytest.mark.parametrize(
    ("changes", "refusal"),
    [
        ({"Author": "Segment Orb Bridge"}, "Author: 'Segment Orb Bridge' does not match SAR's pattern"),
        ({"Author": "segment--orb"}, "Author: 'segment--orb' does not match"),
        ({"Name": "segment orb bridge"}, "Name: 'segment orb bridge' does not match"),
        ({"Description": "x" * 257}, "Description: required, 1 to 256 characters"),
        ({"Labels": [f"label{n}" for n in range(11)]}, "Labels: a list of at most 10"),
        ({"Labels": ["usage metering"]}, "Labels: 'usage metering' is not 1-127"),
        ({"SemanticVersion": "0.1"}, "SemanticVersion: '0.1' is not a semantic version"),
        ({"SpdxLicenseId": "MIT"}, "SpdxLicenseId MIT is not pyproject.toml's license Apache-2.0"),
        (
            {"HomePageUrl": "github.com/segment-orb-bridge"},
            "HomePageUrl: 'github.com/segment-orb-bridge' is not an absolute",
        ),
        (
            {"SourceCodeUrl": "https://example.com/src"},
            "SourceCodeUrl: https://example.com/src is not https://github.com/",
        ),
        ({"LicenseUrl": "LICENSE.txt"}, "LicenseUrl: LICENSE.txt is not a file"),
        ({"ReadmeBody": "# hi"}, "ReadmeBody: give ReadmeUrl"),
    ],
)
def test_what_sar_or_the_project_refuses_is_named(template, changes, refusal):
    problems = check_sar.metadata_problems(with_metadata(template, **changes))
    assert any(refusal in problem for problem in problems), problems


def test_the_readme_the_sar_page_shows_has_only_absolute_links(template, tmp_path):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    links = check_sar.readme_links(readme)
    assert links and all(check_sar.ABSOLUTE.match(link) for link in links)
    relative = project_copy(
        tmp_path,
        readme=readme + "\nSee [the facts](docs/facts.md), ![chart](bench/chart.png) and `[not](a-link)`.\n"
        "[ref]: ../BENCHMARKS.md\n",
    )
    problems = check_sar.metadata_problems(template, relative)
    assert problems == [
        "ReadmeUrl README.md: link ../BENCHMARKS.md is relative (broken on the SAR page)",
        "ReadmeUrl README.md: link bench/chart.png is relative (broken on the SAR page)",
        "ReadmeUrl README.md: link docs/facts.md is relative (broken on the SAR page)",
    ]


def test_without_metadata_the_check_says_so(template):
    bare = copy.deepcopy(template)
    del bare["Metadata"]
    assert check_sar.metadata_problems(bare) == ["the template has no Metadata AWS::ServerlessRepo::Application"]


# --- resource types --------------------------------------------------------------------------


def test_the_supported_list_is_awss_published_list_with_its_source():
    header = [
        line for line in check_sar.SUPPORTED_LIST.read_text(encoding="utf-8").splitlines() if line.startswith("#")
    ]
    assert any(SUPPORTED_LIST_URL in line for line in header)
    supported = check_sar.supported_types()
    assert len(supported) >= 100 and all(re.fullmatch(r"AWS::\w+::\w+", kind) for kind in supported)
    assert {"AWS::Serverless::Function", "AWS::Serverless::HttpApi", "AWS::SQS::Queue"} <= supported


def test_every_resource_type_of_the_template_is_on_sars_list(template):
    assert check_sar.resource_type_problems(template, check_sar.supported_types()) == []


def test_the_unverified_types_are_exactly_the_ones_the_held_list_lacks(template):
    """When the list is refreshed and names them, this fails: drop them from UNVERIFIED_TYPES."""
    used = {resource["Type"] for resource in template["Resources"].values()}
    assert used - check_sar.supported_types() == set(check_sar.UNVERIFIED_TYPES)


def test_a_type_sar_does_not_support_is_refused(template):
    changed = copy.deepcopy(template)
    changed["Resources"]["EdgeFunction"] = {"Type": "AWS::CloudFront::Function", "Properties": {}}
    assert check_sar.resource_type_problems(changed, check_sar.supported_types()) == [
        "EdgeFunction: AWS::CloudFront::Function is not on SAR's supported list (sar-supported-resources.txt)"
    ]


# --- deploying from the SAR console ----------------------------------------------------------


def docs_section(title: str, document: str = "docs/deploy.md") -> str:
    """A section of the docs (SAR publishing moved from the README's front page to docs/deploy.md)."""
    readme = (ROOT / document).read_text(encoding="utf-8")
    start = readme.index(title)
    following = re.search(r"^## ", readme[start + len(title) :], re.MULTILINE)
    return readme[start : start + len(title) + following.start() if following else len(readme)]


def test_the_deploy_docs_name_the_capabilities_a_sar_deployment_acknowledges(template):
    capabilities = check_sar.required_capabilities(template)
    assert capabilities == {"CAPABILITY_IAM", "CAPABILITY_RESOURCE_POLICY"}
    section = docs_section("## Publish to the Serverless Application Repository")
    for capability in capabilities:
        assert f"`{capability}`" in section
    for step in ("sam package", "sam publish", "serverlessrepo.amazonaws.com", *check_sar.UNVERIFIED_TYPES):
        assert step in section


def test_a_nested_application_would_need_auto_expand(template):
    changed = copy.deepcopy(template)
    changed["Resources"]["Nested"] = {"Type": "AWS::Serverless::Application", "Properties": {}}
    assert "CAPABILITY_AUTO_EXPAND" in check_sar.required_capabilities(changed)
