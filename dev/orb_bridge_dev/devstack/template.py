"""Read ``template.yaml`` as data: a YAML loader that accepts CloudFormation short-form tags.

Tests assert the template's invariants with it, and the dev stack reads queue, table, bus and
batch settings from it, so local runs follow the deployed configuration.

``!Ref X`` becomes ``{"Ref": "X"}``, ``!GetAtt A.B`` becomes ``{"Fn::GetAtt": ["A", "B"]}``,
``!Condition C`` becomes ``{"Condition": "C"}`` and every other ``!Name v`` becomes
``{"Fn::Name": v}``. ``resolve`` evaluates the intrinsics a template like ours uses, given
parameter values and stand-ins for resource references.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_TEMPLATE = REPO_ROOT / "template.yaml"

# The value ``resolve`` returns for ``!Ref AWS::NoValue``: the enclosing key or item is dropped.
NO_VALUE = object()

PSEUDO_PARAMETERS = {
    "AWS::AccountId": "123456789012",
    "AWS::Region": "us-east-1",
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "segment-orb-bridge",
    "AWS::StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/segment-orb-bridge/00000000",
}


class TemplateError(ValueError):
    """The template uses something ``resolve`` cannot evaluate, or refers to an unknown name."""


class CloudFormationLoader(yaml.SafeLoader):
    """SafeLoader plus CloudFormation tags; dates stay strings (e.g. AWSTemplateFormatVersion)."""


CloudFormationLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_tag(loader: CloudFormationLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "Condition":
        return {"Condition": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        resource, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [resource, attribute]}
    return {f"Fn::{tag_suffix}": value}


CloudFormationLoader.add_multi_constructor("!", _construct_tag)


def load_template(path: str | Path = DEFAULT_TEMPLATE) -> dict[str, Any]:
    """Parse a CloudFormation/SAM template (YAML or JSON) into plain dicts and lists."""
    with open(path, encoding="utf-8") as stream:
        template = yaml.load(stream, Loader=CloudFormationLoader)  # noqa: S506 - SafeLoader subclass
    if not isinstance(template, dict) or not isinstance(template.get("Resources"), dict):
        raise TemplateError(f"{path} is not a CloudFormation template (no Resources)")
    return template


def parameter_values(template: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Every parameter's value as CloudFormation passes it: the default unless overridden, as a string."""
    values: dict[str, str] = {}
    for name, spec in template.get("Parameters", {}).items():
        if overrides and name in overrides:
            values[name] = str(overrides[name])
        elif "Default" in spec:
            values[name] = str(spec["Default"])
    unknown = set(overrides or ()) - set(template.get("Parameters", {}))
    if unknown:
        raise TemplateError(f"unknown parameters: {sorted(unknown)}")
    return values


class _Resolver:
    def __init__(self, template: Mapping[str, Any], parameters: Mapping[str, str], refs: Mapping[str, Any]):
        self.template = template
        self.parameters = parameters
        self.refs = refs

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.parameters:
            return self.parameters[name]
        if name in self.template.get("Parameters", {}):
            raise TemplateError(f"parameter {name} has no default and no value was given")
        if name in self.refs:
            return self.refs[name]
        if name in PSEUDO_PARAMETERS:
            return PSEUDO_PARAMETERS[name]
        raise TemplateError(f"no value for Ref {name} (pass it in refs)")

    def get_att(self, resource: str, attribute: str) -> Any:
        key = f"{resource}.{attribute}"
        if key not in self.refs:
            raise TemplateError(f"no value for GetAtt {key} (pass it in refs)")
        return self.refs[key]

    def condition(self, name: str) -> bool:
        conditions = self.template.get("Conditions", {})
        if name not in conditions:
            raise TemplateError(f"unknown condition {name}")
        return bool(self.resolve(conditions[name]))

    def sub(self, argument: Any) -> str:
        if isinstance(argument, list):
            text, variables = argument[0], {k: self.resolve(v) for k, v in argument[1].items()}
        else:
            text, variables = argument, {}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name:
                resource, _, attribute = name.partition(".")
                return str(self.get_att(resource, attribute))
            return str(self.ref(name))

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self.resolve(item) for item in value]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return self.ref(argument)
            if key == "Condition":
                return self.condition(argument)
            if key.startswith("Fn::"):
                return self._function(key, argument)
        resolved = {key: self.resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not NO_VALUE}

    def _function(self, key: str, argument: Any) -> Any:
        if key == "Fn::GetAtt":
            resource, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
            return self.get_att(resource, attribute)
        if key == "Fn::Sub":
            return self.sub(argument)
        if key == "Fn::If":
            name, if_true, if_false = argument
            return self.resolve(if_true if self.condition(name) else if_false)
        if key == "Fn::Equals":
            left, right = (self.resolve(item) for item in argument)
            return str(left) == str(right)
        if key == "Fn::Not":
            return not self.resolve(argument[0])
        if key == "Fn::And":
            return all(self.resolve(item) for item in argument)
        if key == "Fn::Or":
            return any(self.resolve(item) for item in argument)
        if key == "Fn::Join":
            separator, items = argument
            return str(separator).join(str(item) for item in self.resolve(items))
        if key == "Fn::Select":
            index, items = argument
            return self.resolve(items)[int(self.resolve(index))]
        raise TemplateError(f"resolve does not evaluate {key}")


def resolve(
    value: Any,
    template: Mapping[str, Any],
    parameters: Mapping[str, str] | None = None,
    refs: Mapping[str, Any] | None = None,
) -> Any:
    """Evaluate intrinsics in ``value``.

    ``parameters``: values by parameter name (defaults to ``parameter_values(template)``).
    ``refs``: what ``Ref Resource`` and ``GetAtt Resource.Attribute`` stand for, keyed
    ``"Resource"`` and ``"Resource.Attribute"`` (e.g. the dev stack's queue URLs and ARNs).
    ``Ref AWS::NoValue`` entries are dropped from dicts and lists.
    """
    values = parameter_values(template) if parameters is None else parameters
    return _Resolver(template, values, refs or {}).resolve(value)


def resources_of_type(template: Mapping[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    """Logical id -> resource, for every resource of ``resource_type`` (e.g. ``AWS::SQS::Queue``)."""
    return {name: spec for name, spec in template["Resources"].items() if spec.get("Type") == resource_type}


def function_properties(template: Mapping[str, Any], logical_id: str) -> dict[str, Any]:
    """A function's properties with ``Globals.Function`` applied as SAM does (maps merged, lists added, rest overridden)."""
    resource = template["Resources"][logical_id]
    if resource.get("Type") != "AWS::Serverless::Function":
        raise TemplateError(f"{logical_id} is not an AWS::Serverless::Function")
    merged = dict(template.get("Globals", {}).get("Function", {}))
    for key, value in resource.get("Properties", {}).items():
        if key == "Environment":
            variables = {
                **merged.get("Environment", {}).get("Variables", {}),
                **value.get("Variables", {}),
            }
            merged["Environment"] = {"Variables": variables}
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        elif isinstance(value, list) and isinstance(merged.get(key), list):
            merged[key] = merged[key] + value  # SAM: lists in Globals are additive
        else:
            merged[key] = value
    return merged


def function_environment(
    template: Mapping[str, Any],
    logical_id: str,
    parameters: Mapping[str, str] | None = None,
    refs: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """The environment variables a deployed function gets, resolved (Lambda passes strings)."""
    variables = function_properties(template, logical_id).get("Environment", {}).get("Variables", {})
    resolved = resolve(variables, template, parameters, refs)
    return {name: str(value) for name, value in resolved.items()}


def sqs_event_source(template: Mapping[str, Any], logical_id: str) -> dict[str, Any]:
    """The (unresolved) properties of a function's single SQS event source."""
    events = function_properties(template, logical_id).get("Events", {})
    sources = [event["Properties"] for event in events.values() if event.get("Type") == "SQS"]
    if len(sources) != 1:
        raise TemplateError(f"{logical_id} has {len(sources)} SQS event sources, expected 1")
    return sources[0]
