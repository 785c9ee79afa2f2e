"""What a job kind is: inputs, a parameter table, checks, an engine entry point, a result.

A kind is one torch-free module under ``jobs/kinds/`` (or anywhere listed in the
``LLMWEB_JOB_KINDS`` setting) holding a :class:`JobKind` subclass decorated with
:func:`register`. The web process reads its inputs and parameter table to build forms,
the API schema and pre-flight checks; the worker imports its engine entry point lazily
and hands the engine's result to :meth:`JobKind.finish`. One generic task
(``jobs.tasks.run_job_task``) runs every kind, so adding a kind touches no other code.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from jobs.engine import params as engine_params
from jobs.engine.base import EngineError
from jobs.errors import JobError

if TYPE_CHECKING:
    from jobs.models import Job


@dataclass(frozen=True)
class Input:
    """A record a kind reads: a model in a role, or a dataset.

    ``name`` is the key in the API body and the form field (``base_model``, ``dataset``,
    ``teacher_model``, ``eval_dataset``, ``models``); ``role`` is stored on the job.
    ``many`` inputs take a list of ids (at most ``max_items``).
    """

    name: str
    type: str  # "model" | "dataset"
    role: str
    required: bool = True
    many: bool = False
    max_items: int = 1
    label: str = ""
    help: str = ""

    def schema(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "role": self.role,
            "required": self.required,
            "many": self.many,
            "max_items": self.max_items if self.many else 1,
            "label": self.label or self.name.replace("_", " "),
            "help": self.help,
        }


@dataclass
class Inputs:
    """The records a submission named, resolved and scoped, in the kind's input order."""

    specs: list[tuple[Input, Any]] = field(default_factory=list)

    def get(self, name: str) -> Any:
        return next((value for spec, value in self.specs if spec.name == name), None)

    def models(self) -> list[tuple[str, Any]]:
        """(role, model) pairs in input order, for storage on the job."""
        return list(self._pairs("model"))

    def datasets(self) -> list[tuple[str, Any]]:
        return list(self._pairs("dataset"))

    def _pairs(self, type_: str):
        for spec, value in self.specs:
            if spec.type != type_ or value is None:
                continue
            for item in value if spec.many else [value]:
                yield spec.role, item


@dataclass
class Checked:
    """What pre-flight returns: cleaned params to store, the estimate to show."""

    params: dict[str, Any]
    estimate: dict[str, Any]
    config: Any = None
    # (role, record) pairs the job stores; filled by jobs.preflight from the inputs.
    models: list[tuple[str, Any]] = field(default_factory=list)
    datasets: list[tuple[str, Any]] = field(default_factory=list)


@dataclass
class Outcome:
    """What a finished run produced: metrics for the job, and the new model if any."""

    metrics: dict[str, Any]
    result_model: Any = None


class JobKind:
    """Base of every kind. Subclasses set the class attributes and override the hooks."""

    name: ClassVar[str]
    label: ClassVar[str]
    description: ClassVar[str] = ""
    # The Celery queue the job is sent to; ``queue_setting`` (a settings name) overrides it
    # so a deployment can rename the queue without touching the kind.
    queue: ClassVar[str] = "gpu"
    queue_setting: ClassVar[str | None] = None
    inputs: ClassVar[tuple[Input, ...]] = ()
    # The dataclass whose ``param(...)`` fields are this kind's parameter table.
    config_class: ClassVar[type]
    # Fields of ``config_class`` the job fills in (paths, task): not user parameters.
    engine: ClassVar[str]  # "package.module:function", imported on the worker only
    # What the result is: "model" (a new model with a lineage edge), "evaluation", "none".
    produces: ClassVar[str] = "none"
    # For kinds that produce a model: the kind of its lineage edge ("fine-tuned from").
    lineage_edge: ClassVar[str] = ""

    # --- the table ------------------------------------------------------------------

    @classmethod
    def param_table(cls) -> dict[str, engine_params.Param]:
        return engine_params.table(cls.config_class)

    @classmethod
    def schema(cls) -> dict[str, Any]:
        """The kind as ``GET /api/v1/job-kinds/`` lists it."""
        return {
            "name": cls.name,
            "label": cls.label,
            "description": cls.description,
            "queue": cls.queue_name(),
            "produces": cls.produces,
            "inputs": [spec.schema() for spec in cls.inputs],
            "params": engine_params.schema_of(cls.config_class),
        }

    @classmethod
    def queue_name(cls) -> str:
        if cls.queue_setting is None:
            return cls.queue
        from django.conf import settings

        return getattr(settings, cls.queue_setting, cls.queue)

    # --- hooks ----------------------------------------------------------------------

    def check(self, *, team: Any, inputs: Inputs, params: dict[str, Any]) -> Checked:
        """Pre-flight in the web process: refuse with a :class:`JobError` naming ``param``.

        Inputs are already resolved, team-scoped and ready; kinds check how they fit
        together and build the config from ``params``.
        """
        config = self.config(inputs=inputs, params=params, job=None)
        return Checked(
            params=engine_params.user_params(config),
            estimate=self.estimate(config=config, inputs=inputs),
            config=config,
        )

    def check_params(self, *, params: dict[str, Any]) -> dict[str, Any]:
        """The params alone, before the inputs exist (a chain's follow-up is checked at
        submit, when its model is not made yet): names, types, bounds and choices.

        Kinds add checks that need no inputs; the full :meth:`check` runs when the job
        is really submitted.
        """
        if not isinstance(params, dict):
            raise JobError(
                "params must be a JSON object of parameter names to values.", param="params"
            )
        table = self.param_table()
        for key in params:
            if key not in table:
                raise JobError(f"Unknown parameter {key!r}.", code="unknown_param", param=key)
        try:
            return {name: table[name].clean(name, value) for name, value in params.items()}
        except EngineError as exc:
            raise JobError(exc.message, code=exc.code, param=exc.param or "params") from None

    def follow_up_input(self) -> Input | None:
        """The model input a chain fills with the previous job's result: the first one."""
        return next((spec for spec in self.inputs if spec.type == "model"), None)

    def config(self, *, inputs: Inputs, params: dict[str, Any], job: Job | None) -> Any:
        """The engine config; ``job`` is None in pre-flight (paths are placeholders)."""
        return build(self.config_class, params, **self.fixed_fields(inputs=inputs, job=job))

    def fixed_fields(self, *, inputs: Inputs, job: Job | None) -> dict[str, Any]:
        """Config fields the job supplies (paths, task), not the person."""
        return {}

    def estimate(self, *, config: Any, inputs: Inputs) -> dict[str, Any]:
        return {}

    def finish(self, job: Job, result: Any) -> Outcome:
        """Turn the engine's result into the job's metrics and, maybe, a new model."""
        metrics = result if isinstance(result, dict) else {}
        return Outcome(metrics=metrics)

    def inputs_of(self, job: Job) -> Inputs:
        """The inputs a stored job was submitted with (prefetch ``job_models__model``)."""
        resolved = Inputs()
        for spec in self.inputs:
            if spec.type == "model":
                found = job.models_in_role(spec.role)
                value: Any = found if spec.many else (found[0] if found else None)
            else:
                value = job.dataset if spec.role == "train" else job.eval_dataset
            resolved.specs.append((spec, value))
        return resolved

    # --- worker side ----------------------------------------------------------------

    @classmethod
    def entry_point(cls) -> Callable[[Any, Any], Any]:
        return load_entry(cls.engine)


def build(config_class: type, params: dict[str, Any], **fixed: Any) -> Any:
    """A config from params, with engine errors turned into 400s naming the param."""
    try:
        return engine_params.from_params(config_class, params, **fixed)
    except EngineError as exc:
        raise JobError(exc.message, code=exc.code, param=exc.param or "params") from None


def load_entry(path: str) -> Callable[..., Any]:
    module_name, _, attr = path.partition(":")
    return getattr(importlib.import_module(module_name), attr)


# --- the registry ------------------------------------------------------------------------

_KINDS: dict[str, JobKind] = {}


def register(cls: type[JobKind]) -> type[JobKind]:
    """Class decorator: make a kind available to the API, the form and the worker."""
    _KINDS[cls.name] = cls()
    return cls


def unregister(name: str) -> None:
    _KINDS.pop(name, None)


def _load() -> None:
    from django.conf import settings

    for module in getattr(settings, "LLMWEB_JOB_KINDS", ()):
        importlib.import_module(module)


def all_kinds() -> list[JobKind]:
    """Every kind, in the order of the ``LLMWEB_JOB_KINDS`` setting (not import order: a
    module imported early by a page must not become the form's default kind)."""
    from django.conf import settings

    _load()
    order = {module: i for i, module in enumerate(getattr(settings, "LLMWEB_JOB_KINDS", ()))}
    return sorted(_KINDS.values(), key=lambda kind: order.get(type(kind).__module__, len(order)))


def get_kind(name: str) -> JobKind:
    _load()
    try:
        return _KINDS[name]
    except KeyError:
        raise JobError(
            f"Job type {name!r} is not available; choose one of {', '.join(_KINDS)}.",
            code="invalid_type",
            param="type",
        ) from None
