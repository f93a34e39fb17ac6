"""The API's answers are named (paycore.api.resources.ResourceName) and each name finds its
model in the module the index says (tests/infra/test_import_graph.py: none is loaded at INIT)."""

from __future__ import annotations

from typing import get_args

import pytest

from paycore.api import resources
from paycore.api.resources.common import Resource


def test_every_answer_has_its_module() -> None:
    assert set(resources.MODULES) == set(get_args(resources.ResourceName))


@pytest.mark.parametrize("name", get_args(resources.ResourceName))
def test_each_name_is_the_model_of_that_name_in_its_module(name: resources.ResourceName) -> None:
    model = resources.model(name)

    assert issubclass(model, Resource)
    assert model.__name__ == name
    assert model.__module__ == f"paycore.api.resources.{resources.MODULES[name]}"


def test_serialize_checks_the_payload_against_the_model() -> None:
    assert resources.serialize("Health", {"status": "ok"}) == '{"status":"ok"}'
    with pytest.raises(ValueError, match="extra"):
        resources.serialize("Health", {"status": "ok", "more": 1})
