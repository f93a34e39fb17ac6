"""Load a SAM template and transform it into CloudFormation offline, the way `sam deploy` would.

The transformed template is the only description of the backend the runtime uses: tables,
queues, functions, routes and state machines are all read from it, never listed here.

samtranslator needs S3 locations for local code (`CodeUri`, `ContentUri`, `DefinitionUri`), so
each local path is rewritten to ``s3://<CODE_BUCKET>/<LogicalId>`` before the transform and kept
in :attr:`TransformedTemplate.code_paths`, keyed by that logical id (which survives as the S3 key
even when SAM renames the resource, as it does for layers).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CODE_BUCKET = "paycore-local-code"

log = logging.getLogger("local_runtime.template")

# Which property of which SAM resource type points at local files.
_LOCAL_URI_PROPERTIES: dict[str, str] = {
    "AWS::Serverless::Function": "CodeUri",
    "AWS::Serverless::LayerVersion": "ContentUri",
    "AWS::Serverless::StateMachine": "DefinitionUri",
}


class TemplateError(Exception):
    """The template cannot be loaded, transformed or run locally."""


class _CfnLoader(yaml.SafeLoader):  # type: ignore[misc]  # yaml is untyped here
    """A YAML loader that understands CloudFormation short-form tags (``!Ref``, ``!Sub``...)."""


def _construct_intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> Any:
    tag = node.tag[1:]
    name = tag if tag in ("Ref", "Condition") else f"Fn::{tag}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if tag == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_intrinsic)


def load_yaml(text: str) -> Any:
    """Parse CloudFormation YAML (or JSON) including short-form intrinsic tags."""
    return yaml.load(text, Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass


@dataclass(frozen=True)
class TransformedTemplate:
    """A SAM template after the offline transform, plus what is needed to run it locally."""

    path: Path
    sam: dict[str, Any]
    cfn: dict[str, Any]
    parameters: dict[str, str]
    code_paths: dict[str, Path] = field(default_factory=dict)

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        resources: dict[str, dict[str, Any]] = self.cfn.get("Resources", {})
        return resources

    def local_path(self, location: Any) -> Path | None:
        """The local folder or file behind an S3 location produced by the URI rewrite.

        Accepts the shapes CloudFormation uses: ``{"S3Bucket", "S3Key"}`` (Lambda code and
        layers) and ``{"Bucket", "Key"}`` (state machine definitions).
        """
        if not isinstance(location, Mapping):
            return None
        bucket = location.get("S3Bucket", location.get("Bucket"))
        key = location.get("S3Key", location.get("Key"))
        if bucket != CODE_BUCKET or not isinstance(key, str):
            return None
        return self.code_paths.get(key)


class _EmptyPolicyLoader:
    """samtranslator asks for the AWS managed policy map; locally no policy is ever enforced."""

    def load(self) -> dict[str, str]:
        return {}


def _is_local_uri(value: Any) -> bool:
    return isinstance(value, str) and not value.startswith("s3://")


def _rewrite_local_uris(sam: dict[str, Any], root: Path) -> dict[str, Path]:
    """Point every local code/definition path at a fake S3 object; return the way back."""
    code_paths: dict[str, Path] = {}
    globals_function = sam.get("Globals", {}).get("Function", {})
    global_code_uri = globals_function.pop("CodeUri", None) if globals_function else None
    for logical_id, resource in sam.get("Resources", {}).items():
        if not isinstance(resource, dict):
            continue
        prop = _LOCAL_URI_PROPERTIES.get(resource.get("Type", ""))
        properties = resource.setdefault("Properties", {})
        if prop is None or not isinstance(properties, dict):
            continue
        value = properties.get(prop)
        if value is None and prop == "CodeUri" and "InlineCode" not in properties:
            value = global_code_uri
        if _is_local_uri(value):
            code_paths[logical_id] = (root / str(value)).resolve()
            properties[prop] = f"s3://{CODE_BUCKET}/{logical_id}"
        elif value is not None:
            properties[prop] = value
    return code_paths


def _inline_api_definitions(sam: dict[str, Any], root: Path) -> None:
    """Inline a local ``DefinitionUri`` OpenAPI file of an Api as its ``DefinitionBody``."""
    for resource in sam.get("Resources", {}).values():
        if not isinstance(resource, dict) or resource.get("Type") != "AWS::Serverless::Api":
            continue
        properties = resource.get("Properties", {})
        uri = properties.get("DefinitionUri")
        if _is_local_uri(uri):
            properties["DefinitionBody"] = load_yaml((root / str(uri)).read_text("utf-8"))
            del properties["DefinitionUri"]


def _parameter_text(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _check_parameter(name: str, spec: Mapping[str, Any], value: str) -> None:
    """Apply CloudFormation's parameter constraints so a bad override fails like a deploy would."""
    if spec.get("Type") == "Number":
        try:
            number = float(value)
        except ValueError:
            raise TemplateError(f"parameter {name}={value!r} is not a number") from None
        if "MinValue" in spec and number < float(spec["MinValue"]):
            raise TemplateError(f"parameter {name}={value} is below MinValue {spec['MinValue']}")
        if "MaxValue" in spec and number > float(spec["MaxValue"]):
            raise TemplateError(f"parameter {name}={value} is above MaxValue {spec['MaxValue']}")
    allowed = spec.get("AllowedValues")
    if allowed is not None and value not in [_parameter_text(item) for item in allowed]:
        raise TemplateError(f"parameter {name}={value!r} is not one of {allowed}")
    pattern = spec.get("AllowedPattern")
    if pattern is not None and not re.fullmatch(str(pattern), value):
        raise TemplateError(f"parameter {name}={value!r} does not match {pattern!r}")


def effective_parameters(sam: Mapping[str, Any], overrides: Mapping[str, str]) -> dict[str, str]:
    """Template defaults overridden by ``overrides``; overrides of unknown names are ignored."""
    declared: Mapping[str, Any] = sam.get("Parameters", {}) or {}
    values: dict[str, str] = {}
    for name, spec in declared.items():
        if name in overrides:
            values[name] = overrides[name]
        elif "Default" in spec:
            values[name] = _parameter_text(spec["Default"])
        else:
            raise TemplateError(f"parameter {name} has no Default and no local value")
        _check_parameter(name, spec, values[name])
    ignored = sorted(set(overrides) - set(declared))
    if ignored:
        log.debug("template declares no parameter(s) %s; local values ignored", ignored)
    return values


def _silence_samtranslator() -> None:
    logging.getLogger("samtranslator").setLevel(logging.WARNING)
    logging.getLogger("samtranslator.metrics").setLevel(logging.CRITICAL)


def transform_template(
    path: Path, overrides: Mapping[str, str], region: str = "us-east-1"
) -> TransformedTemplate:
    """Read the SAM template at ``path`` and transform it with samtranslator, offline."""
    from samtranslator.translator.transform import transform

    _silence_samtranslator()
    path = path.resolve()
    try:
        sam = load_yaml(path.read_text("utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise TemplateError(f"cannot read {path}: {exc}") from exc
    if not isinstance(sam, dict) or not isinstance(sam.get("Resources"), dict):
        raise TemplateError(f"{path} has no Resources")
    parameters = effective_parameters(sam, overrides)
    working = copy.deepcopy(sam)
    code_paths = _rewrite_local_uris(working, path.parent)
    _inline_api_definitions(working, path.parent)
    # samtranslator reads the region from the default boto session.
    previous_region = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = region
    try:
        cfn = transform(working, dict(parameters), _EmptyPolicyLoader())
    except Exception as exc:
        raise TemplateError(f"SAM transform of {path} failed: {exc}") from exc
    finally:
        if previous_region is None:
            os.environ.pop("AWS_DEFAULT_REGION", None)
        else:
            os.environ["AWS_DEFAULT_REGION"] = previous_region
    # Round-trip through JSON: plain dicts/lists/str only from here on.
    cfn = json.loads(json.dumps(cfn))
    return TransformedTemplate(
        path=path, sam=sam, cfn=cfn, parameters=parameters, code_paths=code_paths
    )
