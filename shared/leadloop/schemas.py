"""JSON Schemas of the event contract, exported from the pydantic models and proven by
examples (in the spirit of getsentry/sentry-kafka-schemas).

Layout, next to this module (shipped as package data)::

    schemas/<topic>.json                     one schema per registered topic with a model
    schemas/examples/<topic>/<name>.json     at least one example payload per topic

``export()`` writes the schemas; ``check()`` is what CI runs. It reports:

- a schema file that is missing, or differs from what the models export now (stale);
- a breaking change of the models against the committed schema file
  (``breaking_changes``), unless ``x-schema-version`` was raised;
- a topic without an example, and an example that fails either the exported JSON
  Schema (``jsonschema``, Draft 2020-12, with formats asserted) or the pydantic model.
  Both validators run because they are the two ways the contract is read: outside
  producers and consumers use the JSON Schema, leadloop uses the model.

Which JSON Schema mode: a topic that an outside system writes (``channels``, ``crm``)
is exported in pydantic's *validation* mode, because its schema tells that system what
leadloop accepts (defaults are optional, unknown fields of ``extra="ignore"`` models
pass). A topic only leadloop writes is exported in *serialization* mode, because its
schema tells consumers what leadloop emits (serializers and computed fields apply).
For today's models both modes give the same schema; the choice matters as soon as a
model gains a serializer. The mode is recorded as ``x-leadloop-json-schema-mode``.

``leads.rejected`` has no schema: its value is the original bytes of a record that
failed intake (possibly not JSON, not UTF-8, or over the size limit), carried untouched
so it can be replayed after a fix; its contract is the ``reject-*`` headers, which
DESIGN.md documents. A schema would claim a shape the topic deliberately does not have.

What ``check()`` cannot see: once a breaking schema is re-exported, the file on disk
is the new baseline. Review the schema diff, and raise ``x-schema-version``
(``events.SCHEMA_VERSION``) for an intended break.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError
from pydantic import ValidationError

from leadloop.events import SCHEMA_VERSION
from leadloop.topics import REGISTRY, Service, TopicSpec

__all__ = [
    "EXAMPLES_DIR",
    "SCHEMA_DIR",
    "breaking_changes",
    "check",
    "export",
    "render",
    "schema_for",
]

SCHEMA_DIR: Final = Path(__file__).with_name("schemas")
EXAMPLES_DIR: Final = SCHEMA_DIR / "examples"

JsonSchemaMode = Literal["validation", "serialization"]

# Producers outside leadloop: their topics are input to us (see the module docstring).
_EXTERNAL_PRODUCERS: Final[frozenset[Service]] = frozenset({"channels", "crm", "humans"})

# Cross-field rules of the contract that pydantic cannot express in JSON Schema (a
# model validator, or an intake check in ingest). Without them an outside producer
# validating against our schema would pass records that leadloop then rejects.
_CROSS_FIELD_RULES: Final[Mapping[str, tuple[Mapping[str, Any], ...]]] = {
    "leads.raw": (
        {
            # DESIGN.md: at least one of email / phone; ingest rejects the rest as
            # missing_contact, which RawLead alone (shape only) does not.
            "anyOf": [
                {"properties": {"email": {"type": "string"}}, "required": ["email"]},
                {"properties": {"phone": {"type": "string"}}, "required": ["phone"]},
            ],
        },
    ),
    "crm.stage-changes": (
        {
            # StageChanged._lost_needs_reason: loss attribution needs a reason code.
            "if": {"properties": {"stage": {"const": "lost"}}, "required": ["stage"]},
            "then": {
                "properties": {"loss_reason": {"$ref": "#/$defs/LossReason"}},
                "required": ["loss_reason"],
            },
        },
    ),
}


# --- export -------------------------------------------------------------------------


def _modelled_topics() -> Iterator[TopicSpec]:
    return (spec for spec in REGISTRY if spec.model is not None)


def _mode(spec: TopicSpec) -> JsonSchemaMode:
    return "validation" if _EXTERNAL_PRODUCERS.intersection(spec.producers) else "serialization"


def schema_for(spec: TopicSpec) -> dict[str, Any]:
    """The JSON Schema document of a topic's value, with leadloop's registry metadata."""
    if spec.model is None:
        raise ValueError(f"topic {spec.name} has no model and therefore no schema")
    mode = _mode(spec)
    schema: dict[str, Any] = spec.model.model_json_schema(mode=mode)
    rules = _CROSS_FIELD_RULES.get(spec.name)
    if rules:
        schema["allOf"] = [dict(rule) for rule in rules]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        # A URN, not a URL: the schema is identified, not hosted anywhere.
        "$id": f"urn:leadloop:schema:{spec.name}",
        **schema,
        "title": spec.model.__name__,
        "x-leadloop-topic": spec.name,
        "x-schema-version": SCHEMA_VERSION,
        "x-leadloop-json-schema-mode": mode,
        "x-leadloop-key": spec.key,
        "x-leadloop-producers": list(spec.producers),
        "x-leadloop-consumers": list(spec.consumers),
        "x-leadloop-contains-pii": spec.contains_pii,
    }


def render(schema: Mapping[str, Any]) -> str:
    """The committed text of a schema: stable, so a diff shows only real changes."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def export(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Write ``<topic>.json`` for every registered topic with a model; returns the paths.

    A schema of a topic that left the registry is not deleted: removing a topic breaks
    its consumers, so ``check()`` reports it and a human decides.
    """
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for spec in _modelled_topics():
        path = directory / f"{spec.name}.json"
        # newline="\n": the same bytes on every platform, or check() would call it stale.
        path.write_text(render(schema_for(spec)), encoding="utf-8", newline="\n")
        written.append(path)
    return written


# --- check --------------------------------------------------------------------------


def check(directory: Path = SCHEMA_DIR) -> list[str]:
    """Every problem with the committed schemas and examples; empty when all is well."""
    problems: list[str] = []
    known: set[str] = set()
    for spec in _modelled_topics():
        known.add(spec.name)
        assert spec.model is not None  # _modelled_topics() yields only modelled specs
        model_topic = getattr(spec.model, "topic", None)
        if model_topic != spec.name:
            problems.append(
                f"{spec.name}: model {spec.model.__name__} declares topic {model_topic!r}"
            )
        current = schema_for(spec)
        problems.extend(_check_schema_file(spec.name, directory / f"{spec.name}.json", current))
        problems.extend(_check_examples(spec, current, directory / "examples" / spec.name))

    for path in sorted(directory.glob("*.json")):
        if path.stem not in known:
            problems.append(
                f"{path.stem}: schema {path.name} belongs to no registered topic with a model"
                " (removing a topic breaks its consumers; delete the file deliberately)"
            )
    examples_root = directory / "examples"
    if examples_root.is_dir():
        for sub in sorted(p for p in examples_root.iterdir() if p.is_dir()):
            if sub.name not in known:
                problems.append(f"{sub.name}: examples for a topic without a schema")
    return problems


def _check_schema_file(topic: str, path: Path, current: dict[str, Any]) -> list[str]:
    try:
        Draft202012Validator.check_schema(current)
    except SchemaError as exc:
        return [f"{topic}: the exported schema is not valid Draft 2020-12: {exc.message}"]
    if not path.exists():
        return [f"{topic}: schema {path.name} is missing; run `leadloop schemas export`"]
    text = path.read_text(encoding="utf-8")
    try:
        committed = json.loads(text)
    except json.JSONDecodeError as exc:
        return [f"{topic}: schema {path.name} is not valid JSON: {exc}"]
    problems: list[str] = []
    if text != render(current):
        problems.append(
            f"{topic}: schema {path.name} is stale (the models changed);"
            " run `leadloop schemas export` and review the diff"
        )
    old_version = committed.get("x-schema-version", 0)
    # Raising the version is how an intended break is declared; anything else must stay
    # compatible with what producers and consumers were promised.
    if current["x-schema-version"] <= old_version:
        problems.extend(
            f"{topic}: breaking change: {change}" for change in breaking_changes(committed, current)
        )
    return problems


def _check_examples(spec: TopicSpec, schema: dict[str, Any], folder: Path) -> list[str]:
    assert spec.model is not None
    paths = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not paths:
        return [f"{spec.name}: no examples in examples/{spec.name}/"]
    validator = Draft202012Validator(schema, format_checker=_FORMAT_CHECKER)
    problems: list[str] = []
    for path in paths:
        where = f"examples/{spec.name}/{path.name}"
        text = path.read_text(encoding="utf-8")
        try:
            instance = json.loads(text)
        except json.JSONDecodeError as exc:
            problems.append(f"{where}: not valid JSON: {exc}")
            continue
        for error in sorted(validator.iter_errors(instance), key=lambda e: e.json_path):
            problems.append(f"{where}: JSON Schema: {error.json_path}: {error.message}")
        try:
            spec.model.model_validate_json(text)
        except ValidationError as exc:
            for err in exc.errors(include_input=False, include_url=False):
                loc = ".".join(str(part) for part in err["loc"]) or "(value)"
                problems.append(f"{where}: model {spec.model.__name__}: {loc}: {err['msg']}")
    return problems


# RFC 3339 section 5.6 date-time, offset mandatory. jsonschema asserts "date-time" only
# when the optional rfc3339-validator package is installed; the contract requires
# offsets on every timestamp, so the check must not depend on an optional extra.
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$", re.ASCII
)
_FORMAT_CHECKER = FormatChecker()


@_FORMAT_CHECKER.checks("date-time", raises=ValueError)
def _is_rfc3339(value: object) -> bool:
    if not isinstance(value, str):
        return True  # formats constrain strings only; "type" rejects the rest
    if not _RFC3339.match(value):
        return False
    # The pattern accepts month 13 or hour 25; the parser does not.
    datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    return True


# --- breaking changes ---------------------------------------------------------------

_UPPER_BOUNDS: Final = ("maxLength", "maxItems", "maxProperties", "maximum", "exclusiveMaximum")
_LOWER_BOUNDS: Final = ("minLength", "minItems", "minProperties", "minimum", "exclusiveMinimum")


def breaking_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What ``new`` accepts or promises less than ``old`` did; empty when compatible.

    Breaking: a property removed, a property newly required, a type narrowed (including
    enum values removed, unknown properties newly forbidden, a bound tightened, a
    pattern changed), anywhere in the document. Adding an optional property, widening
    a type or adding enum values is compatible. Pattern and bound changes are judged
    conservatively: any change that might reject an old value counts.
    """
    changes: list[str] = []
    _compare(old, new, _Roots(old, new), "", changes)
    return changes


class _Roots:
    """The two documents that ``$ref`` pointers in each side resolve against."""

    __slots__ = ("new", "old")

    def __init__(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        self.old = old
        self.new = new


def _compare(
    old: Mapping[str, Any], new: Mapping[str, Any], roots: _Roots, path: str, out: list[str]
) -> None:
    at = f"{path}: " if path else ""
    old_alts = _alternatives(old, roots.old)
    new_alts = _alternatives(new, roots.new)

    new_types = _types(new_alts)
    lost = sorted(t for t in _types(old_alts) if not _covered(t, new_types))
    if lost:
        out.append(f"{at}type narrowed: {', '.join(lost)} no longer allowed")

    old_open, new_open = _open_types(old_alts), _open_types(new_alts)
    new_values = _enum_values(new_alts)
    removed = sorted(
        repr(v)
        for v in _enum_values(old_alts)
        if v not in new_values and not _covered(_json_type(v), new_open)
    )
    if removed:
        out.append(f"{at}allowed values removed: {', '.join(removed)}")
    restricted = sorted(t for t in old_open if not _covered(t, new_open) and t in new_types)
    if restricted:
        out.append(f"{at}{', '.join(restricted)} now restricted to listed values")

    for json_type in sorted(old_open & new_open):
        o, n = _first_of_type(old_alts, json_type), _first_of_type(new_alts, json_type)
        if o is not None and n is not None:
            _compare_constraints(o, n, at, out)
            _compare_containers(o, n, roots, path, out)


def _compare_constraints(
    old: Mapping[str, Any], new: Mapping[str, Any], at: str, out: list[str]
) -> None:
    for key in _UPPER_BOUNDS:
        if key in new and (key not in old or new[key] < old[key]):
            out.append(f"{at}{key} tightened from {old.get(key, 'none')} to {new[key]}")
    for key in _LOWER_BOUNDS:
        if key in new and (key not in old or new[key] > old[key]):
            out.append(f"{at}{key} tightened from {old.get(key, 'none')} to {new[key]}")
    if "pattern" in new and new["pattern"] != old.get("pattern"):
        out.append(f"{at}pattern changed from {old.get('pattern')!r} to {new['pattern']!r}")


def _compare_containers(
    old: Mapping[str, Any], new: Mapping[str, Any], roots: _Roots, path: str, out: list[str]
) -> None:
    at = f"{path}: " if path else ""
    old_props: Mapping[str, Any] = old.get("properties", {})
    new_props: Mapping[str, Any] = new.get("properties", {})
    for name in sorted(old_props):
        if name not in new_props:
            out.append(f"{at}property {name!r} removed")
        else:
            _compare(old_props[name], new_props[name], roots, _join(path, name), out)
    for name in sorted(set(new.get("required", ())) - set(old.get("required", ()))):
        out.append(f"{at}property {name!r} is now required")
    if new.get("additionalProperties") is False and old.get("additionalProperties") is not False:
        out.append(f"{at}unknown properties are no longer allowed")
    for key, suffix in (("additionalProperties", ".*"), ("propertyNames", ".<name>")):
        if isinstance(old.get(key), Mapping) and isinstance(new.get(key), Mapping):
            _compare(old[key], new[key], roots, f"{path or '(value)'}{suffix}", out)
    if isinstance(old.get("items"), Mapping) and isinstance(new.get("items"), Mapping):
        _compare(old["items"], new["items"], roots, f"{path or '(value)'}[]", out)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _resolve(node: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    """Follow local ``$ref`` pointers; sibling keywords (pydantic puts ``default`` and
    ``description`` beside a ``$ref``) are kept."""
    seen: set[str] = set()
    while isinstance(ref := node.get("$ref"), str) and ref.startswith("#/"):
        if ref in seen:
            break  # a recursive model; comparing one level of it is enough
        seen.add(ref)
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _alternatives(node: Mapping[str, Any], root: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The union members a value may match (``anyOf``/``oneOf`` flattened)."""
    node = _resolve(node, root)
    for key in ("anyOf", "oneOf"):
        if key in node:
            return [alt for member in node[key] for alt in _alternatives(member, root)]
    return [node]


def _is_enumerated(alt: Mapping[str, Any]) -> bool:
    return "enum" in alt or "const" in alt


def _declared_types(alt: Mapping[str, Any]) -> set[str]:
    declared = alt.get("type")
    if isinstance(declared, str):
        return {declared}
    if isinstance(declared, list):
        return set(declared)
    if _is_enumerated(alt):
        return {_json_type(v) for v in _values(alt)}
    if "properties" in alt:
        return {"object"}
    return {"any"}  # no type keyword: anything goes


def _types(alts: Iterable[Mapping[str, Any]]) -> set[str]:
    return {t for alt in alts for t in _declared_types(alt)}


def _open_types(alts: Iterable[Mapping[str, Any]]) -> set[str]:
    """Types a member accepts without listing the values."""
    return {t for alt in alts if not _is_enumerated(alt) for t in _declared_types(alt)}


def _values(alt: Mapping[str, Any]) -> list[Any]:
    return [alt["const"]] if "const" in alt else list(alt.get("enum", ()))


def _enum_values(alts: Iterable[Mapping[str, Any]]) -> list[Any]:
    return [v for alt in alts if _is_enumerated(alt) for v in _values(alt)]


def _json_type(value: Any) -> str:
    # bool before int: True is an int in Python but a boolean in JSON.
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _covered(json_type: str, allowed: set[str]) -> bool:
    return (
        "any" in allowed
        or json_type in allowed
        # every JSON integer is a number, so number → integer is a narrowing, not this
        or (json_type == "integer" and "number" in allowed)
    )


def _first_of_type(alts: Iterable[Mapping[str, Any]], json_type: str) -> Mapping[str, Any] | None:
    return next(
        (a for a in alts if not _is_enumerated(a) and json_type in _declared_types(a)), None
    )
