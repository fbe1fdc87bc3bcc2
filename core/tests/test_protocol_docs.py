"""Every protocol a backend author may implement says what it is for, and every method its rule."""

from __future__ import annotations

import inspect
from typing import Protocol

import pytest
from resultstore.plugin import protocols

PROTOCOLS = [
    obj
    for name, obj in vars(protocols).items()
    if inspect.isclass(obj) and issubclass(obj, Protocol) and obj.__module__ == protocols.__name__
]


def test_the_protocols_are_found() -> None:
    names = {cls.__name__ for cls in PROTOCOLS}
    assert {"ResultBackend", "SupportsChords", "PushListener", "AsyncResultBackend"} <= names


@pytest.mark.parametrize("cls", PROTOCOLS, ids=lambda cls: cls.__name__)
def test_every_protocol_has_a_docstring(cls: type) -> None:
    assert inspect.getdoc(cls), f"{cls.__name__} has no docstring"


@pytest.mark.parametrize(
    "cls",
    [
        cls
        for cls in PROTOCOLS
        if cls.__name__.startswith("Supports") or cls.__name__ == "PushListener"
    ],
    ids=lambda cls: cls.__name__,
)
def test_every_capability_method_has_a_docstring(cls: type) -> None:
    missing = [
        name
        for name, member in vars(cls).items()
        if not name.startswith("_") and callable(member) and not inspect.getdoc(member)
    ]
    assert missing == [], f"{cls.__name__}: {missing} have no docstring"
