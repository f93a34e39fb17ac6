"""A small CloudFormation intrinsic-function resolver, enough to provision a stack locally.

Supports Ref, Fn::GetAtt, Fn::Sub (both forms), Fn::Join, Fn::If, Fn::Select, Fn::Split,
Fn::FindInMap, Fn::Not/Equals/And/Or, Condition, Fn::Base64, Fn::GetAZs, Fn::ToJsonString,
AWS::NoValue and the pseudo-parameters. Resources must be resolved in dependency order
(:func:`dependency_order`); a reference to a resource not provisioned yet is an error.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from local_runtime.template import TemplateError

ACCOUNT_ID: Final = "123456789012"
STACK_NAME: Final = "paycore-local"

_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_LIST_PARAMETER_TYPES = ("CommaDelimitedList", "List<")


class _NoValue:
    """The value of ``Ref: AWS::NoValue``: the property is removed."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE: Final = _NoValue()


class UnresolvedReferenceError(TemplateError):
    """A Ref/GetAtt names something that does not exist (yet)."""


def pseudo_parameters(region: str) -> dict[str, str]:
    """The pseudo-parameters CloudFormation defines, with the local account and stack name."""
    return {
        "AWS::Region": region,
        "AWS::AccountId": ACCOUNT_ID,
        "AWS::StackName": STACK_NAME,
        "AWS::StackId": (
            f"arn:aws:cloudformation:{region}:{ACCOUNT_ID}:stack/{STACK_NAME}/"
            "00000000-0000-0000-0000-000000000000"
        ),
        "AWS::Partition": "aws",
        "AWS::URLSuffix": "amazonaws.com",
        "AWS::NotificationARNs": "",
    }


def _intrinsic(value: Any) -> tuple[str, Any] | None:
    """``(name, argument)`` if ``value`` is a one-key intrinsic-function mapping."""
    if isinstance(value, Mapping) and len(value) == 1:
        (key, argument), *_ = value.items()
        if key in {"Ref", "Condition"} or str(key).startswith("Fn::"):
            return str(key), argument
    return None


class Resolver:
    """Evaluates intrinsic functions against parameters, conditions and provisioned resources.

    ``refs`` and ``attributes`` are filled in by the provisioner as resources are created.
    """

    def __init__(
        self,
        template: Mapping[str, Any],
        parameters: Mapping[str, str],
        region: str,
    ) -> None:
        self.region = region
        self.pseudo = pseudo_parameters(region)
        self.mappings: Mapping[str, Any] = template.get("Mappings", {}) or {}
        self._condition_specs: Mapping[str, Any] = template.get("Conditions", {}) or {}
        self._conditions: dict[str, bool] = {}
        self.parameters: dict[str, Any] = {}
        declared: Mapping[str, Any] = template.get("Parameters", {}) or {}
        for name, value in parameters.items():
            kind = str(declared.get(name, {}).get("Type", "String"))
            is_list = kind.startswith(_LIST_PARAMETER_TYPES)
            self.parameters[name] = value.split(",") if is_list else value
        self.resource_ids: frozenset[str] = frozenset(template.get("Resources", {}) or {})
        self.refs: dict[str, Any] = {}
        self.attributes: dict[str, dict[str, Any]] = {}

    # -- conditions -----------------------------------------------------------------------

    def condition(self, name: str) -> bool:
        """The value of a named condition (evaluated once, then cached)."""
        if name not in self._conditions:
            if name not in self._condition_specs:
                raise UnresolvedReferenceError(f"unknown condition {name}")
            self._conditions[name] = bool(self.resolve(self._condition_specs[name]))
        return self._conditions[name]

    # -- resolution -----------------------------------------------------------------------

    def resolve(self, value: Any) -> Any:
        """Resolve every intrinsic in ``value``; ``AWS::NoValue`` entries are dropped."""
        found = _intrinsic(value)
        if found is not None:
            return self._call(*found)
        if isinstance(value, Mapping):
            resolved = {key: self.resolve(item) for key, item in value.items()}
            return {key: item for key, item in resolved.items() if item is not NO_VALUE}
        if isinstance(value, list):
            items = [self.resolve(item) for item in value]
            return [item for item in items if item is not NO_VALUE]
        return value

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.refs:
            return self.refs[name]
        raise UnresolvedReferenceError(f"Ref to {name}, which is not (yet) provisioned")

    def get_att(self, logical_id: str, attribute: str) -> Any:
        attributes = self.attributes.get(logical_id)
        if attributes is None:
            raise UnresolvedReferenceError(
                f"GetAtt {logical_id}.{attribute}: {logical_id} is not (yet) provisioned"
            )
        if attribute not in attributes:
            raise UnresolvedReferenceError(
                f"GetAtt {logical_id}.{attribute}: unknown attribute (known: {sorted(attributes)})"
            )
        return attributes[attribute]

    def _sub(self, argument: Any) -> str:
        if isinstance(argument, list):
            text, variables = argument[0], self.resolve(argument[1])
        else:
            text, variables = argument, {}
        if not isinstance(text, str):
            raise TemplateError(f"Fn::Sub expects a string, got {text!r}")

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                value = variables[name]
            elif name in self.pseudo or name in self.parameters or "." not in name:
                value = self.ref(name)
            else:
                logical_id, attribute = name.split(".", 1)
                value = self.get_att(logical_id, attribute)
            if isinstance(value, list):
                raise TemplateError(f"Fn::Sub variable {name} is a list")
            return _text(value)

        return _SUB_VARIABLE.sub(replace, text)

    def _call(self, name: str, argument: Any) -> Any:  # noqa: PLR0911, PLR0912 - a dispatch table
        if name == "Ref":
            return self.ref(str(argument))
        if name == "Condition":
            return self.condition(str(argument))
        if name == "Fn::GetAtt":
            parts = argument.split(".", 1) if isinstance(argument, str) else argument
            attribute = self.resolve(parts[1])
            return self.get_att(str(parts[0]), str(attribute))
        if name == "Fn::Sub":
            return self._sub(argument)
        if name == "Fn::Join":
            delimiter, items = argument
            return str(delimiter).join(_text(item) for item in self.resolve(items))
        if name == "Fn::If":
            condition, when_true, when_false = argument
            return self.resolve(when_true if self.condition(condition) else when_false)
        if name == "Fn::Select":
            index, items = self.resolve(argument)
            return items[int(index)]
        if name == "Fn::Split":
            delimiter, text = self.resolve(argument)
            return str(text).split(str(delimiter))
        if name == "Fn::FindInMap":
            map_name, top, second = self.resolve(argument)[:3]
            return self.mappings[map_name][top][second]
        if name == "Fn::Equals":
            left, right = self.resolve(argument)
            return _text(left) == _text(right)
        if name == "Fn::Not":
            return not self.resolve(argument)[0]
        if name == "Fn::And":
            return all(self.resolve(item) for item in argument)
        if name == "Fn::Or":
            return any(self.resolve(item) for item in argument)
        if name == "Fn::Base64":
            return base64.b64encode(_text(self.resolve(argument)).encode()).decode()
        if name == "Fn::GetAZs":
            return [f"{self.region}{zone}" for zone in "abc"]
        if name == "Fn::ToJsonString":
            return json.dumps(self.resolve(argument), separators=(",", ":"))
        raise TemplateError(f"intrinsic function {name} is not supported locally")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# -- dependency order ---------------------------------------------------------------------


def _references(value: Any, found: set[str]) -> None:
    """Collect every logical id ``value`` may refer to (both branches of an Fn::If)."""
    intrinsic = _intrinsic(value)
    if intrinsic is not None:
        name, argument = intrinsic
        if name == "Ref" and isinstance(argument, str):
            found.add(argument)
            return
        if name == "Fn::GetAtt":
            parts = argument.split(".", 1) if isinstance(argument, str) else argument
            found.add(str(parts[0]))
            return
        if name == "Fn::Sub":
            text = argument[0] if isinstance(argument, list) else argument
            if isinstance(argument, list):
                _references(argument[1], found)
            if isinstance(text, str):
                for match in _SUB_VARIABLE.finditer(text):
                    if not match.group(1).startswith("!"):
                        found.add(match.group(1).split(".", 1)[0])
            return
        _references(argument, found)
        return
    if isinstance(value, Mapping):
        for item in value.values():
            _references(item, found)
    elif isinstance(value, list):
        for item in value:
            _references(item, found)


def resource_dependencies(resources: Mapping[str, Any]) -> dict[str, set[str]]:
    """For each resource, the other resources its properties or DependsOn refer to."""
    graph: dict[str, set[str]] = {}
    for logical_id, resource in resources.items():
        found: set[str] = set()
        _references(resource.get("Properties", {}), found)
        depends_on = resource.get("DependsOn", [])
        found.update([depends_on] if isinstance(depends_on, str) else depends_on)
        graph[logical_id] = {name for name in found if name in resources and name != logical_id}
    return graph


def dependency_order(resources: Mapping[str, Any]) -> list[str]:
    """Logical ids so that each comes after everything it depends on (template order kept)."""
    graph = resource_dependencies(resources)
    ordered: list[str] = []
    done: set[str] = set()
    visiting: set[str] = set()

    def visit(logical_id: str, path: Iterable[str]) -> None:
        if logical_id in done:
            return
        if logical_id in visiting:
            cycle = " -> ".join([*path, logical_id])
            raise TemplateError(f"circular dependency between resources: {cycle}")
        visiting.add(logical_id)
        for dependency in sorted(graph[logical_id]):
            visit(dependency, [*path, logical_id])
        visiting.discard(logical_id)
        done.add(logical_id)
        ordered.append(logical_id)

    for logical_id in resources:
        visit(logical_id, [])
    return ordered
