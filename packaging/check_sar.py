"""Check the template's Serverless Application Repository (SAR) metadata before `sam publish` does.

    python packaging/check_sar.py [--template template.yaml] [--require-library]

Checks, each naming what is wrong:
- the ``AWS::ServerlessRepo::Application`` metadata with the ``serverlessrepo`` library `sam publish`
  runs (vendored in aws-sam-cli as ``samcli.vendor.serverlessrepo``; the PyPI release of the same
  library is used when that is absent): the properties creating an application and a version need;
- what SAR's CreateApplication API refuses at publish time (lengths, patterns, at most 10 labels);
- that the metadata agrees with the project: SemanticVersion and SpdxLicenseId with pyproject.toml,
  HomePageUrl and SourceCodeUrl with its [project.urls], LICENSE is the Apache-2.0 text;
- that every link the SAR page shows is absolute (the URLs, and each link in the README it shows);
- that every resource type is on SAR's list of supported types (tests/data/sar-supported-resources.txt).

`make template-check` runs it with the SAM CLI's venv and ``--require-library``; the unit tests run
the same checks without the library (aws-sam-cli pins too much for the dev venv, and the PyPI
``serverlessrepo`` 0.1.10 pins PyYAML 5, which no longer builds).
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
SUPPORTED_LIST = REPO_ROOT / "tests" / "data" / "sar-supported-resources.txt"
SAR_METADATA = "AWS::ServerlessRepo::Application"
# Types this template uses that the list we hold (AWS's 2021 revision) does not name. SAR may accept
# them today (its live list is longer): verify on the live page before publishing (README, "Publish
# to the Serverless Application Repository"). Kept explicit so that a new unlisted type still fails.
UNVERIFIED_TYPES = {
    "AWS::Events::EventBus": "the Orb webhook bus (OrbWebhookEventBus)",
    "AWS::Events::Archive": "the webhook bus's replay archive (OrbWebhookArchive)",
}
# SAR's CreateApplication request (API reference, "Applications" resource): length and pattern.
API_FIELDS: dict[str, tuple[int, str | None]] = {
    "Name": (140, r"[a-zA-Z0-9\-]+"),
    "Description": (256, None),
    "Author": (127, r"[a-z0-9](([a-z0-9]|-(?!-))*[a-z0-9])?"),
}
LABEL_PATTERN = r"[a-zA-Z0-9+\-_:/@]+"
MAX_LABELS = 10
MAX_FILE_BYTES = 5 * 1024 * 1024
# semver.org's suggested regular expression.
SEMVER = (
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?"
)
ABSOLUTE = re.compile(r"^(https?://|mailto:)", re.IGNORECASE)
MARKDOWN_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)")
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)
HTML_LINK = re.compile(r"""\b(?:href|src)\s*=\s*["']([^"']+)""", re.IGNORECASE)


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps CloudFormation short-form tags as ``{"Fn::X": value}`` data."""


def _tag(loader: _Loader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        return {suffix if suffix in {"Ref", "Condition"} else f"Fn::{suffix}": loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {f"Fn::{suffix}": loader.construct_sequence(node, deep=True)}
    return {f"Fn::{suffix}": loader.construct_mapping(node, deep=True)}


_Loader.add_multi_constructor("!", _tag)


def load(path: Path) -> dict[str, Any]:
    template = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    if not isinstance(template, dict):
        raise ValueError(f"{path}: not a template")
    return template


def project(root: Path = REPO_ROOT) -> dict[str, Any]:
    with open(root / "pyproject.toml", "rb") as stream:
        return dict(tomllib.load(stream)["project"])


def project_license(meta: Mapping[str, Any]) -> str:
    license_ = meta.get("license")
    return str(license_.get("text", "") if isinstance(license_, dict) else license_ or "")


def supported_types(path: Path = SUPPORTED_LIST) -> set[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def readme_links(text: str) -> list[str]:
    """Every link target in a Markdown document: inline, reference definitions, HTML href/src."""
    code_free = re.sub(r"```.*?```|`[^`\n]*`", "", text, flags=re.DOTALL)
    return [
        *MARKDOWN_LINK.findall(code_free),
        *REFERENCE_LINK.findall(code_free),
        *HTML_LINK.findall(code_free),
    ]


def _local_file(value: str, field: str, root: Path) -> list[str]:
    if ABSOLUTE.match(value) or value.startswith("s3://"):
        return []
    path = root / value
    if not path.is_file():
        return [
            f"{field}: {value} is not a file (sam package uploads a local file; give its path from the repository root)"
        ]
    if path.stat().st_size > MAX_FILE_BYTES:
        return [f"{field}: {value} is over SAR's 5 MB"]
    return []


def metadata_problems(template: Mapping[str, Any], root: Path = REPO_ROOT) -> list[str]:
    """What SAR's API or this project refuses in the template's SAR metadata."""
    metadata = template.get("Metadata", {}).get(SAR_METADATA)
    if not isinstance(metadata, dict):
        return [f"the template has no Metadata {SAR_METADATA}"]
    problems: list[str] = []
    for field, (longest, pattern) in API_FIELDS.items():
        value = metadata.get(field)
        if not isinstance(value, str) or not 1 <= len(value) <= longest:
            problems.append(f"{field}: required, 1 to {longest} characters")
        elif pattern and not re.fullmatch(pattern, value):
            problems.append(f"{field}: {value!r} does not match SAR's pattern {pattern}")
    labels = metadata.get("Labels", [])
    if not isinstance(labels, list) or len(labels) > MAX_LABELS:
        problems.append(f"Labels: a list of at most {MAX_LABELS}")
    else:
        problems += [
            f"Labels: {label!r} is not 1-127 of {LABEL_PATTERN}"
            for label in labels
            if not (isinstance(label, str) and len(label) <= 127 and re.fullmatch(LABEL_PATTERN, label))
        ]
    meta = project(root)
    version = str(metadata.get("SemanticVersion", ""))
    if not re.fullmatch(SEMVER, version):
        problems.append(f"SemanticVersion: {version!r} is not a semantic version (semver.org)")
    if version != meta.get("version"):
        problems.append(f"SemanticVersion {version} is not pyproject.toml's version {meta.get('version')}")
    if metadata.get("SpdxLicenseId") != project_license(meta):
        problems.append(
            f"SpdxLicenseId {metadata.get('SpdxLicenseId')} is not pyproject.toml's license {project_license(meta)}"
        )
    license_text = (root / "LICENSE").read_text(encoding="utf-8") if (root / "LICENSE").is_file() else ""
    if metadata.get("SpdxLicenseId") == "Apache-2.0" and not (
        "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    ):
        problems.append("LICENSE is not the Apache License 2.0 text SpdxLicenseId names")
    for body, url in (("LicenseBody", "LicenseUrl"), ("ReadmeBody", "ReadmeUrl")):
        if metadata.get(body):
            problems.append(f"{body}: give {url} (a file sam package uploads), not the text inline")
        problems += _local_file(str(metadata.get(url, "")), url, root)
    urls = meta.get("urls", {})
    expected = {
        "HomePageUrl": urls.get("Homepage"),
        "SourceCodeUrl": f"{urls.get('Source')}/tree/v{version}",
    }
    for field, wanted in expected.items():
        value = str(metadata.get(field, ""))
        if not value.startswith("https://"):
            problems.append(f"{field}: {value!r} is not an absolute https URL (the SAR page links to it)")
        elif value != wanted:
            problems.append(f"{field}: {value} is not {wanted} (pyproject.toml's [project.urls])")
    readme = root / str(metadata.get("ReadmeUrl", ""))
    if readme.is_file():
        relative = sorted(
            {link for link in readme_links(readme.read_text(encoding="utf-8")) if not ABSOLUTE.match(link)}
        )
        problems += [f"ReadmeUrl {readme.name}: link {link} is relative (broken on the SAR page)" for link in relative]
    return problems


def resource_type_problems(template: Mapping[str, Any], supported: set[str]) -> list[str]:
    """Each resource whose type SAR's list does not name (the known, documented ones aside)."""
    return [
        f"{name}: {resource.get('Type')} is not on SAR's supported list ({SUPPORTED_LIST.name})"
        for name, resource in sorted(template.get("Resources", {}).items())
        if resource.get("Type") not in supported and resource.get("Type") not in UNVERIFIED_TYPES
    ]


def required_capabilities(template: Mapping[str, Any]) -> set[str]:
    """The capabilities a SAR deployment of the template must acknowledge (SAR developer guide)."""
    capabilities: set[str] = set()
    for resource in template.get("Resources", {}).values():
        kind, properties = resource.get("Type", ""), resource.get("Properties", {}) or {}
        if kind.startswith("AWS::IAM::") or (kind == "AWS::Serverless::Function" and "Role" not in properties):
            capabilities.add("CAPABILITY_IAM")  # SAM creates the function's execution role
        events = properties.get("Events", {}) if kind == "AWS::Serverless::Function" else {}
        if kind.endswith(("Policy", "::Permission", "::LayerVersionPermission")) or any(
            event.get("Type") in {"Api", "HttpApi", "S3", "SNS", "Schedule", "EventBridgeRule", "CloudWatchEvent"}
            for event in events.values()
        ):
            capabilities.add("CAPABILITY_RESOURCE_POLICY")  # queue policies; SAM's AWS::Lambda::Permission
        if kind == "AWS::Serverless::Application":
            capabilities.add("CAPABILITY_AUTO_EXPAND")  # nested applications only
    return capabilities


def library_problems(template_path: Path) -> list[str] | None:
    """The ``serverlessrepo`` library's own validation, or None when neither copy is importable."""
    try:
        from samcli.vendor.serverlessrepo.parser import get_app_metadata, parse_template
    except ImportError:
        try:
            from serverlessrepo.parser import get_app_metadata, parse_template
        except ImportError:
            return None
    try:
        metadata = get_app_metadata(parse_template(template_path.read_text(encoding="utf-8")))
        metadata.validate(["author", "description", "name"])  # what CreateApplication needs
        metadata.validate(["semantic_version"])  # what CreateApplicationVersion needs
    except Exception as error:  # noqa: BLE001 - the library's errors are its own classes; report any
        return [f"serverlessrepo: {error}"]
    return []


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--template", type=Path, default=REPO_ROOT / "template.yaml")
    parser.add_argument("--require-library", action="store_true", help="fail when serverlessrepo is not importable")
    args = parser.parse_args(argv)
    template = load(args.template)
    problems = metadata_problems(template) + resource_type_problems(template, supported_types())
    from_library = library_problems(args.template)
    if from_library is None and args.require_library:
        problems.append("serverlessrepo: not importable (run with the SAM CLI's Python: .venv-sam/bin/python)")
    problems += from_library or []
    for problem in problems:
        print(f"check_sar: {problem}", file=sys.stderr)
    if problems:
        return 1
    unverified = sorted(set(UNVERIFIED_TYPES) & {r.get("Type") for r in template["Resources"].values()})
    print(
        f"check_sar: SAR metadata valid{' (serverlessrepo agrees)' if from_library is not None else ''}; "
        f"capabilities {', '.join(sorted(required_capabilities(template)))}; "
        f"not on the held list, check the live one: {', '.join(unverified) or 'none'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
