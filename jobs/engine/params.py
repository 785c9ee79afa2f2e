"""Parameter tables: each user-settable parameter is declared once, on its config field.

A config dataclass declares a parameter with :func:`param`; its type, default, bounds,
choices and help live in the field's metadata. Validation (``validate``), the web form
and the API schema (``schema_of``) are all read from those fields, so a parameter cannot
exist in one place and be missing in another. Torch-free: the web process imports it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from jobs.engine.base import EngineError

TYPES = ("int", "float", "bool", "str", "list[str]")


@dataclass(frozen=True)
class Param:
    """One row of a parameter table.

    ``min``/``max`` are inclusive unless ``min_exclusive``; ``nullable`` lets None through
    (an empty form field); ``basic`` shows the field up front in the form.
    ``options_from`` names the input whose chosen record lists the allowed values (an
    evaluation's ``slice_column`` comes from its dataset's extra columns): the form offers
    them in a select and the kind's ``check`` refuses others, since they are not known here.
    """

    type: str
    default: Any
    help: str
    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False
    choices: tuple[str, ...] | None = None
    nullable: bool = False
    basic: bool = False
    options_from: str | None = None
    # What the form calls it, when the name alone says it badly ("max minutes").
    label: str | None = None

    def spec(self) -> dict[str, Any]:
        """The JSON schema row the API and the form read."""
        out: dict[str, Any] = {"type": self.type, "default": self.default, "help": self.help}
        for key in ("min", "max"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.min_exclusive:
            out["min_exclusive"] = True
        if self.choices:
            out["choices"] = list(self.choices)
        if self.nullable:
            out["nullable"] = True
        if self.basic:
            out["basic"] = True
        if self.options_from:
            out["options_from"] = self.options_from
        if self.label:
            out["label"] = self.label
        return out

    def clean(self, name: str, value: Any) -> Any:
        """Coerce (forms post strings, JSON posts numbers) and bound-check one value."""
        value = self._coerce(name, value)
        if value is None:
            return None
        if self.choices and value not in self.choices:
            raise invalid(name, f"must be one of {', '.join(self.choices)}, got {value!r}")
        low, high = self.min, self.max
        if low is not None and (value < low or (self.min_exclusive and value == low)):
            bound = "greater than" if self.min_exclusive else "at least"
            raise invalid(name, f"must be {bound} {low}, got {value}")
        if high is not None and value > high:
            raise invalid(name, f"must be at most {high}, got {value}")
        return value

    def _coerce(self, name: str, value: Any) -> Any:
        type_ = self.type
        if value is None or (isinstance(value, str) and value.strip() == "" and type_ != "str"):
            if self.nullable:
                return None
            raise invalid(name, "is required")
        try:
            if type_ == "bool":
                if isinstance(value, bool):
                    return value
                if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on"):
                    return True
                if isinstance(value, str) and value.strip().lower() in ("false", "0", "no", "off"):
                    return False
                if isinstance(value, int) and value in (0, 1):
                    return bool(value)
                raise ValueError
            if type_ == "int":
                if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                    raise ValueError
                return int(str(value).strip()) if isinstance(value, str) else int(value)
            if type_ == "float":
                if isinstance(value, bool):
                    raise ValueError
                number = float(value)
                if not math.isfinite(number):
                    raise ValueError
                return number
            if type_ == "list[str]":
                items = value.split(",") if isinstance(value, str) else list(value)
                cleaned = [str(item).strip() for item in items if str(item).strip()]
                return cleaned or None
            if not isinstance(value, str):
                raise ValueError
            return value.strip()
        except (TypeError, ValueError, OverflowError):
            raise invalid(name, f"must be {type_}, got {value!r}") from None


def param(type_: str, default: Any, help_: str, **extra: Any) -> Any:
    """Declare a config field as a user-settable parameter (use as the field's default)."""
    if type_ not in TYPES:
        raise ValueError(f"unknown parameter type {type_!r}")
    if "choices" in extra and extra["choices"] is not None:
        extra["choices"] = tuple(extra["choices"])
    spec = Param(type_, default, help_, **extra)
    return dataclasses.field(default=default, metadata={"param": spec})


def invalid(name: str, message: str) -> EngineError:
    return EngineError(f"{name}: {message}", code="invalid_param", param=name)


def table(config_cls: type) -> dict[str, Param]:
    """The parameter table of a config class, in declaration order."""
    return {
        f.name: f.metadata["param"] for f in dataclasses.fields(config_cls) if "param" in f.metadata
    }


def schema_of(config_cls: type) -> dict[str, dict[str, Any]]:
    return {name: spec.spec() for name, spec in table(config_cls).items()}


def validate(config: Any) -> None:
    """Clean every parameter field in place; call from ``__post_init__``.

    Programmatic callers pass typed values; this still rejects 1.5 for an int or "3" for a
    float rather than fail deep inside a Trainer.
    """
    for name, spec in table(type(config)).items():
        setattr(config, name, spec.clean(name, getattr(config, name)))


def from_params(config_cls: type, params: dict[str, Any], **fixed: Any) -> Any:
    """Build a config from user params plus the fixed fields the job supplies.

    Unknown keys are refused, not ignored: a typo like ``learning_rat`` would otherwise
    silently run with the default. Fixed fields cannot be set through ``params``.
    """
    if not isinstance(params, dict):
        raise EngineError(
            "params must be a JSON object of parameter names to values.",
            code="invalid_param",
            param="params",
        )
    names = table(config_cls)
    for key in params:
        if key not in names:
            if key in fixed:
                raise EngineError(
                    f"{key!r} is set by the job and its inputs, not in params.",
                    code="unknown_param",
                    param=key,
                )
            raise EngineError(f"Unknown parameter {key!r}.", code="unknown_param", param=key)
    for name, value in fixed.items():
        if value in (None, ""):
            raise invalid(name, "is required")
    return config_cls(**fixed, **params)


def user_params(config: Any) -> dict[str, Any]:
    """The parameter values of a config (what a job record stores), without fixed fields."""
    return {name: getattr(config, name) for name in table(type(config))}
