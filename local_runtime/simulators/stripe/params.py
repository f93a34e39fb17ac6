"""Stripe's request parameters: form-encoded, nested with brackets, read strictly.

The SDK encodes ``{"line_items": [{"price_data": {"unit_amount": 1999}}]}`` as
``line_items[0][price_data][unit_amount]=1999`` (arrays always indexed, booleans as
``true``/``false``, ``None`` left out, the brackets not percent-encoded); ``expand[]=x`` is
accepted too. ``decode`` turns the pairs back into nested dicts and lists; ``Params`` reads
them the way Stripe does: a missing required parameter, an unknown one, an empty string, a
malformed integer or a value outside its enumeration is a 400 naming the parameter
(``line_items[0][quantity]``), and the first problem found is the answer.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from typing import Any
from urllib.parse import urlsplit

from local_runtime.simulators.stripe.errors import missing_param, param_error, unknown_param

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_SEGMENT = re.compile(r"\[([^\[\]]*)\]")
_INTEGER = re.compile(r"^-?\d{1,18}$")
_APPEND = object()  # the "[]" segment: the next free index

# Where a hash's keys are the merchant's own (metadata), digits are keys, not indexes.
_FREE_FORM = {"metadata"}

METADATA_MAX_KEYS = 50
METADATA_KEY_MAX = 40
METADATA_VALUE_MAX = 500


def decode(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Nested parameters from form pairs; a malformed key is a 400."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        match = _KEY.match(key)
        if match is None:
            raise param_error(f"Invalid parameter name: {key}", key)
        path: list[Any] = [match.group(1)]
        path += [part if part else _APPEND for part in _SEGMENT.findall(match.group(2))]
        _put(root, path, value, key)
    decoded: dict[str, Any] = _arrays(root, None)
    return decoded


def _put(node: dict[str, Any], path: list[Any], value: str, key: str) -> None:
    for position, part in enumerate(path):
        last = position == len(path) - 1
        name = str(len(node)) if part is _APPEND else part
        if last:
            if isinstance(node.get(name), dict):
                raise param_error(f"Invalid parameter: {key} is both a hash and a value", key)
            node[name] = value
            return
        child = node.setdefault(name, {})
        if not isinstance(child, dict):
            raise param_error(f"Invalid parameter: {key} is both a hash and a value", key)
        node = child


def _arrays(node: dict[str, Any], name: str | None) -> Any:
    """A hash whose keys are all indexes becomes a list (in index order)."""
    converted = {
        key: _arrays(value, key) if isinstance(value, dict) else value
        for key, value in node.items()
    }
    if name in _FREE_FORM or not converted or not all(key.isdigit() for key in converted):
        return converted
    return [converted[key] for key in sorted(converted, key=int)]


def join(prefix: str, name: str | int) -> str:
    """``line_items[0][quantity]`` from ``line_items[0]`` and ``quantity``."""
    return f"{prefix}[{name}]" if prefix else str(name)


class Params:
    """One level of a request's parameters, read once each; ``done()`` refuses the rest.

    ``known_elsewhere`` names parameters real Stripe has at this level that the simulator
    does not support: they are refused with a message that says so.
    """

    def __init__(
        self,
        data: dict[str, Any],
        prefix: str = "",
        *,
        known_elsewhere: Collection[str] = (),
    ) -> None:
        self._data = data
        self._prefix = prefix
        self._read: set[str] = set()
        self._known_elsewhere = known_elsewhere
        self._children: list[Params] = []

    def name(self, key: str) -> str:
        return join(self._prefix, key)

    def has(self, key: str) -> bool:
        return key in self._data

    def raw(self, key: str) -> Any:
        self._read.add(key)
        return self._data.get(key)

    def string(self, key: str, *, required: bool = False, max_length: int = 5000) -> str | None:
        value = self.raw(key)
        if value is None:
            if required:
                raise missing_param(self.name(key))
            return None
        if not isinstance(value, str):
            raise param_error(f"Invalid string: {self.name(key)} must be a string", self.name(key))
        if value == "":
            raise _empty(self.name(key))
        if len(value) > max_length:
            raise param_error(
                f"Invalid {self.name(key)}: must be at most {max_length} characters",
                self.name(key),
            )
        return value

    def required_string(self, key: str, *, max_length: int = 5000) -> str:
        value = self.string(key, required=True, max_length=max_length)
        assert value is not None
        return value

    def integer(
        self,
        key: str,
        *,
        required: bool = False,
        minimum: int | None = None,
        maximum: int | None = None,
    ) -> int | None:
        text = self.string(key, required=required)
        if text is None:
            return None
        if not _INTEGER.match(text):
            raise param_error(
                f"Invalid integer: {text}", self.name(key), code="parameter_invalid_integer"
            )
        value = int(text)
        if minimum is not None and value < minimum:
            raise param_error(
                f"Invalid {self.name(key)}: must be at least {minimum}",
                self.name(key),
                code="parameter_invalid_integer",
            )
        if maximum is not None and value > maximum:
            raise param_error(
                f"Invalid {self.name(key)}: must be at most {maximum}",
                self.name(key),
                code="parameter_invalid_integer",
            )
        return value

    def choice(self, key: str, values: Collection[str], *, required: bool = False) -> str | None:
        value = self.string(key, required=required)
        if value is not None and value not in values:
            options = ", ".join(sorted(values))
            raise param_error(f"Invalid {self.name(key)}: must be one of {options}", self.name(key))
        return value

    def url(self, key: str, *, required: bool = False) -> str | None:
        value = self.string(key, required=required, max_length=5000)
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise param_error("Not a valid URL", self.name(key), code="url_invalid")
        return value

    def child(self, key: str, *, known_elsewhere: Collection[str] = ()) -> Params | None:
        value = self.raw(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise param_error(f"Invalid object: {self.name(key)} must be a hash", self.name(key))
        child = Params(value, self.name(key), known_elsewhere=known_elsewhere)
        self._children.append(child)
        return child

    def children(
        self, key: str, *, required: bool = False, known_elsewhere: Collection[str] = ()
    ) -> list[Params]:
        value = self.raw(key)
        if value is None:
            if required:
                raise missing_param(self.name(key))
            return []
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise param_error(
                f"Invalid array: {self.name(key)} must be an array of hashes", self.name(key)
            )
        items = [
            Params(item, join(self.name(key), index), known_elsewhere=known_elsewhere)
            for index, item in enumerate(value)
        ]
        self._children += items
        return items

    def strings(self, key: str) -> list[str]:
        value = self.raw(key)
        if value is None:
            return []
        if isinstance(value, str):  # expand=x, as a lenient server reads it
            value = [value]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise param_error(
                f"Invalid array: {self.name(key)} must be an array of strings", self.name(key)
            )
        return list(value)

    def metadata(self, key: str = "metadata") -> dict[str, str]:
        """Stripe's metadata: at most 50 keys of up to 40 characters, values of up to 500."""
        value = self.raw(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise param_error(f"Invalid object: {self.name(key)} must be a hash", self.name(key))
        if len(value) > METADATA_MAX_KEYS:
            raise param_error(
                f"Invalid {self.name(key)}: at most {METADATA_MAX_KEYS} keys", self.name(key)
            )
        result: dict[str, str] = {}
        for name, item in value.items():
            where = join(self.name(key), name)
            if len(name) > METADATA_KEY_MAX:
                raise param_error(
                    f"Invalid {where}: metadata keys are at most {METADATA_KEY_MAX} characters",
                    where,
                )
            if not isinstance(item, str):
                raise param_error(f"Invalid {where}: metadata values are strings", where)
            if len(item) > METADATA_VALUE_MAX:
                raise param_error(
                    f"Invalid {where}: metadata values are at most {METADATA_VALUE_MAX} characters",
                    where,
                )
            if item != "":  # an empty value unsets the key
                result[name] = item
        return result

    def done(self) -> None:
        """Refuse the first parameter nobody read (Stripe's ``parameter_unknown``), here or
        in the hashes read from here."""
        for key in self._data:
            if key not in self._read:
                raise unknown_param(
                    self.name(key), supported_by_stripe=key in self._known_elsewhere
                )
        for child in self._children:
            child.done()


def _empty(name: str) -> Exception:
    return param_error(
        f"You passed an empty string for '{name}'. We assume empty values are an attempt to "
        f"unset a parameter; however '{name}' cannot be unset. You should remove '{name}' "
        "from your request or supply a non-empty value.",
        name,
        code="parameter_invalid_empty",
    )
