from __future__ import annotations

import pytest

from retrievekit.core.errors import MissingExtraError
from retrievekit.core.registry import Registry, SpecError, parse_spec, parse_stage


def test_stage_grammar() -> None:
    spec = parse_stage("Gap:1.0:20:ratio=0.3:min=2")
    assert spec.name == "gap"
    assert spec.args == ("1.0", "20")
    assert spec.options == {"ratio": "0.3", "min": "2"}
    assert spec.rest == "1.0:20:ratio=0.3:min=2"
    assert spec.arg(0) == "1.0" and spec.arg(5, "d") == "d"


def test_stages_and_rest() -> None:
    specs = parse_spec("pca:192+int8")
    assert [(s.name, s.args) for s in specs] == [("pca", ("192",)), ("int8", ())]
    (one,) = parse_spec("openai:gpt-x@http://127.0.0.1:8000/v1", stages=False)
    assert one.name == "openai" and one.rest == "gpt-x@http://127.0.0.1:8000/v1"
    for bad in ("", "  ", "a++b", ":x"):
        with pytest.raises(SpecError):
            parse_spec(bad)


def test_registry_lookup_aliases_and_errors() -> None:
    loaded = []
    reg: Registry[int] = Registry("widget", loader=lambda: loaded.append(1))
    reg.register("double", lambda x: 2 * x, usage="double:X", aliases=["twice"])
    assert reg.factory("DOUBLE")(3) == 6 and reg.factory("twice")(2) == 4
    assert "double" in reg and "nope" not in reg and loaded == [1]  # the loader runs once
    with pytest.raises(SpecError, match=r"unknown widget 'nope'; choose one of: double:X"):
        reg.entry("nope")
    assert [(s.name, e.name) for s, e in reg.parse("double:1+twice")] == [("double", "double"), ("twice", "double")]


def test_lazy_entry_names_its_extra() -> None:
    reg: Registry[object] = Registry("thing")
    reg.register("ok", "json:dumps", requires=["json"])
    reg.register("missing", "retrievekit_no_such_module:x", extra="magic", requires=["retrievekit_no_such_module"])
    assert reg.factory("ok")([1]) == "[1]"
    entries = {e.name: e for e in reg}
    assert entries["ok"].installed and not entries["missing"].installed
    with pytest.raises(MissingExtraError, match=r"retrievekit\[magic\]"):
        reg.factory("missing")


def test_parse_errors_use_the_registry_error_and_unregister() -> None:
    class WidgetError(ValueError):
        pass

    reg: Registry[int] = Registry("widget", error=WidgetError)
    reg.register("one", lambda: 1, usage="one[:N]", aliases=["uno"])
    with pytest.raises(WidgetError, match=r"empty stage name; choose one of: one\[:N\]"):
        reg.parse("one++one")
    with pytest.raises(WidgetError, match="unknown widget 'two'"):
        reg.parse("one+two")
    assert next(iter(reg)).aliases == ("uno",)
    reg.unregister("one")
    assert "one" not in reg and "uno" not in reg and reg.names() == []


def test_missing_names_what_is_not_installed() -> None:
    reg: Registry[object] = Registry("thing")
    reg.register("half", "json:dumps", requires=["json", "retrievekit_no_such_module", "retrievekit_no.such"])
    (entry,) = reg
    assert entry.missing == ["retrievekit_no_such_module", "retrievekit_no.such"] and not entry.installed
