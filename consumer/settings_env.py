"""How flat `PREFIX_NAME` environment variables fill a settings class made of nested groups.

Each group field's alias is its environment name without the prefix. These helpers map the
flat names onto the nesting, read `.env` files, and turn validation errors into one line per
bad variable, named as the operator wrote it and never echoing a secret's value.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

EnvFields = dict[str, tuple[str, str, FieldInfo]]


def env_fields(settings_cls: type[BaseModel], prefix: str) -> EnvFields:
    """Environment name → (group, attribute, field) for every field of every group."""
    out: EnvFields = {}
    for group, field in settings_cls.model_fields.items():
        model = field.annotation
        assert isinstance(model, type)
        assert issubclass(model, BaseModel)
        for attr, info in model.model_fields.items():
            assert info.alias is not None
            out[prefix + info.alias] = (group, attr, info)
    return out


def read_flat(environ: Mapping[str, str], env_file: Path | None, prefix: str) -> dict[str, str]:
    """The prefixed variables of `env_file` (if it exists), overridden by `environ`."""
    flat: dict[str, str] = {}
    if env_file is not None and env_file.is_file():
        flat.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    flat.update({k: v for k, v in environ.items() if k.startswith(prefix)})
    return flat


def nest(fields: EnvFields, flat: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """`{group: {alias: value}}` for the variables present in `flat`."""
    nested: dict[str, dict[str, str]] = {}
    for env, (group, _, info) in fields.items():
        if env in flat:
            assert info.alias is not None
            nested.setdefault(group, {})[info.alias] = flat[env]
    return nested


class FlatSource(PydanticBaseSettingsSource):
    """A pydantic-settings source that supplies whole groups from flat variables."""

    def __init__(
        self, settings_cls: type[BaseSettings], fields: EnvFields, flat: Mapping[str, str]
    ) -> None:
        super().__init__(settings_cls)
        self._fields = fields
        self._flat = flat

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # whole groups come from __call__

    def __call__(self) -> dict[str, Any]:
        return nest(self._fields, self._flat)


def describe(exc: ValidationError, fields: EnvFields, secret_names: Collection[str]) -> str:
    """One `NAME: problem, got value` line per error (no value for secrets)."""
    by_alias = {(g, i.alias): env for env, (g, _, i) in fields.items()}
    lines = []
    for error in exc.errors(include_url=False):
        loc = error["loc"]
        env = by_alias.get((str(loc[0]), str(loc[1]) if len(loc) > 1 else ""))
        name = env or ".".join(str(p) for p in loc)
        message = error["msg"].removeprefix("Value error, ")
        value = error.get("input")
        hidden = name in secret_names or error["type"] == "missing"
        got = "" if hidden else f", got {value if isinstance(value, str) else repr(value)}"
        lines.append(f"{name}: {message}{got}")
    return "\n".join(lines)
