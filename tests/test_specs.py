"""One specification per registered optimizer, and everything derived from the one list."""

from __future__ import annotations

from optimizer_table import CASES, REFERENCES

import optarena
from optarena import optim
from optarena.spec import Spec


def test_every_exported_optimizer_is_registered_and_every_spec_exported():
    classes = {spec.cls for spec in optim.SPECS}
    assert classes == set(optim.OPTIMIZERS)
    for cls in optim.OPTIMIZERS:
        assert getattr(optarena, cls.__name__) is cls
    assert [spec.name for spec in optarena.available()] == [spec.name for spec in optim.SPECS]


def test_the_test_table_and_the_references_cover_every_spec():
    assert [case.name for case in CASES] == [spec.name for spec in optim.SPECS]
    assert set(REFERENCES) == {spec.name for spec in optim.SPECS}


def test_specs_are_complete():
    for spec in optim.SPECS:
        assert isinstance(spec, Spec)
        assert spec.description and spec.kind in ("elementwise", "per-tensor", "wrapper")
        assert spec.tests.configs, spec.name
        ids = [config.id for config in spec.tests.configs]
        assert len(set(ids)) == len(ids), f"{spec.name}: repeated config ids {ids}"
        assert "lr" in spec.search_space
        # a preset sets only what its class takes
        for key in spec.preset:
            assert key in spec.cls.defaults_from_signature(), (spec.name, key)


def test_presets_are_their_class_with_settings():
    amsbound = optarena.registry.lookup("amsbound")
    assert amsbound.cls is optarena.AdaBound and amsbound.preset == {"amsbound": True}
    assert optarena.registry.lookup("amsgrad").cls is optarena.Adam
