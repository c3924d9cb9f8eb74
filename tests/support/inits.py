"""Checks for dataclasses whose ``__init__`` is written out rather than generated."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest


def assert_init_matches_fields(cls: type[Any], **samples: Any) -> None:
    """``cls(...)`` takes its fields in order, by position and by name, with their defaults.

    ``samples`` holds a value for every field, none equal to the field's default (a
    compiled ``__init__`` checks its arguments' types, so they must be the right ones).
    A hand-written ``__init__`` (mypyc compiles it; a generated one stays interpreted)
    must accept exactly what the generated one would, and the class stays frozen.
    """
    fields = dataclasses.fields(cls)
    assert [f.name for f in fields] == list(samples), "a sample for each field, in order"
    values = list(samples.values())
    for made in (cls(**samples), cls(*values)):
        assert [getattr(made, f.name) for f in fields] == values
    required = {f.name: samples[f.name] for f in fields
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    defaulted = cls(**required)
    for f in fields:
        assert samples[f.name] != f.default, f"the sample for {f.name} is its default"
        assert getattr(defaulted, f.name) == required.get(f.name, f.default), f.name
    with pytest.raises(TypeError):
        cls(*values, values[0])
    with pytest.raises(TypeError):
        cls(**samples, unknown=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(cls(**samples), fields[0].name, values[0])
