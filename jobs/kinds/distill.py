"""Distill: a teacher with a task head teaches a smaller student on a dataset.

The result is a new model "distilled from" the teacher, with a report that measures
teacher and student on the same test split (quality retained, parameters, size and
latency at batch 1 and 32). Classification is built; sequence-level KD for causal and
seq2seq teachers is refused with a message until it is.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from jobs.engine.distill import DistillConfig
from jobs.engine.schemas import CLASSIFICATION_TASKS
from jobs.engine.students import LAYER_ATTRS, PRESET_FAMILY, estimate_student
from jobs.errors import JobError
from jobs.kinds.base import Checked, Input, Inputs, JobKind, Outcome, register
from jobs.kinds.compress import refuse_bitsandbytes_without_gpu

if TYPE_CHECKING:
    from jobs.models import Job

HEADLESS = ("", "encoder", "masked-lm")
LM_TASKS = ("causal-lm", "seq2seq")
STUDENT_TASKS = ("classification", "encoder", "masked-lm")
# Same rough CPU training speed the training kinds assume before they have measured.
DEVICE_FLOPS = {"cpu": 1.5e11, "cuda": 2e14}


def same_tokenizer(a: Any, b: Any) -> bool:
    """Whether two model records tokenize alike: algorithm, vocabulary size, special ids.

    Token-level KD compares the two models' distributions token by token, which only
    means something when token i is the same string for both.
    """
    ta, tb = a.tokenizer or {}, b.tokenizer or {}
    keys = ("type", "vocab_size")
    if not ta or not tb or any(ta.get(k) != tb.get(k) for k in keys):
        return False
    ids = lambda t: {k: v.get("id") for k, v in (t.get("special_tokens") or {}).items()}  # noqa: E731
    return ids(ta) == ids(tb)


@register
class Distill(JobKind):
    name = "distill"
    label = "Distill"
    description = (
        "Teach a smaller student from a teacher with a task head: the teacher with every "
        "other layer, a smaller preset of its family, or one of your models. Reports quality "
        "retained, size and latency against the teacher."
    )
    queue_setting = "LLMWEB_TRAIN_QUEUE"
    config_class = DistillConfig
    engine = "jobs.engine.distill:run_distill"
    produces = "model"
    lineage_edge = "distilled from"
    inputs = (
        Input("teacher_model", "model", "teacher", label="Teacher"),
        Input("dataset", "dataset", "train", label="Dataset"),
        Input(
            "student_model",
            "model",
            "student",
            required=False,
            label="Student model",
            help="Only with student=model: a model of the team to distill into.",
        ),
    )

    def check(self, *, team: Any, inputs: Inputs, params: dict[str, Any]) -> Checked:
        teacher, dataset = inputs.get("teacher_model"), inputs.get("dataset")
        student_model = inputs.get("student_model")
        self._check_teacher(teacher, student_model)
        if dataset.schema not in CLASSIFICATION_TASKS:
            raise JobError(
                f"Dataset {dataset} is for {dataset.schema}; a classification teacher is "
                "distilled on classification data.",
                code="task_mismatch",
                param="dataset",
            )
        if sorted(dataset.label_names or []) != sorted(teacher.label_names or []):
            raise JobError(
                f"The teacher classifies into {teacher.label_names} but the dataset's labels "
                f"are {dataset.label_names}.",
                code="label_mismatch",
                param="dataset",
            )
        checked = super().check(team=team, inputs=inputs, params=params)
        refuse_bitsandbytes_without_gpu(checked.config.teacher_precision, param="teacher_precision")
        self._check_student(checked.config, teacher, student_model)
        return checked

    @staticmethod
    def _check_teacher(teacher: Any, student_model: Any) -> None:
        if teacher.task in HEADLESS:
            raise JobError(
                f"{teacher} has no task head ({teacher.task or 'unknown'} model): a teacher "
                "must be a model trained for the task, e.g. a fine-tuned classifier.",
                code="teacher_without_head",
                param="teacher_model",
            )
        if teacher.task in LM_TASKS:
            if student_model is not None and not same_tokenizer(teacher, student_model):
                raise JobError(
                    f"Token-level distillation compares next-token distributions, so the "
                    f"student needs the teacher's tokenizer; {student_model} tokenizes "
                    "differently. Use a student with the teacher's tokenizer.",
                    code="tokenizer_mismatch",
                    param="student_model",
                )
            raise JobError(
                f"Distilling {teacher.task} teachers (sequence- and token-level KD) is not "
                "built yet; classification teachers are.",
                code="not_built",
                param="teacher_model",
            )

    @staticmethod
    def _check_student(config: Any, teacher: Any, student_model: Any) -> None:
        if config.student == "model" and student_model is None:
            raise JobError(
                "student=model needs a student model.", code="invalid_model", param="student_model"
            )
        if config.student != "model" and student_model is not None:
            raise JobError(
                f"A student model was chosen but student={config.student}; choose "
                "student=model or clear the student model.",
                code="invalid_param",
                param="student",
            )
        if config.student == "half-layers" and teacher.model_type not in LAYER_ATTRS:
            raise JobError(
                f"Keeping every other layer is built for {', '.join(LAYER_ATTRS)} models, "
                f"not {teacher.model_type}; choose student=preset or student=model.",
                code="student_unsupported",
                param="student",
            )
        if config.student == "preset" and teacher.model_type not in PRESET_FAMILY:
            raise JobError(
                f"There is no preset of the {teacher.model_type} family.",
                code="student_unsupported",
                param="student",
            )
        if student_model is not None and student_model.task not in STUDENT_TASKS:
            raise JobError(
                f"{student_model} is a {student_model.task} model; a classifier student needs "
                "an encoder (or a classifier).",
                code="task_mismatch",
                param="student_model",
            )

    def fixed_fields(self, *, inputs: Inputs, job: Job | None) -> dict[str, Any]:
        teacher, dataset = inputs.get("teacher_model"), inputs.get("dataset")
        student_model = inputs.get("student_model")
        fields: dict[str, Any] = {
            "task": dataset.schema,
            "teacher_key": f"model{teacher.pk}-v{teacher.version}",
        }
        if job is None:
            paths = dict.fromkeys(
                ("teacher_dir", "data_dir", "output_dir", "checkpoint_dir", "cache_dir"), "."
            )
            return {**fields, **paths}
        fields.update(
            teacher_dir=teacher.artifact_dir,
            data_dir=dataset.processed_dir,
            output_dir=job.work_dir / "output",
            checkpoint_dir=job.checkpoint_dir,
            # Next to the dataset version (immutable), so every later job reuses it.
            cache_dir=dataset.storage_dir / "kd-cache",
        )
        if student_model is not None:  # a fixed field is never None (params.from_params)
            fields["student_dir"] = student_model.artifact_dir
        return fields

    def estimate(self, *, config: Any, inputs: Inputs) -> dict[str, Any]:
        """Student size and speed-up before launch, plus the training cost."""
        teacher, dataset = inputs.get("teacher_model"), inputs.get("dataset")
        student_model = inputs.get("student_model")
        summary = dict(teacher.config_summary or {})
        summary["num_parameters"] = teacher.num_parameters
        summary["family"] = PRESET_FAMILY.get(teacher.model_type or "", "bert")
        out = estimate_student(student=config.student, teacher=summary, size=config.student_preset)
        if student_model is not None and student_model.num_parameters:
            out = {"student_parameters": student_model.num_parameters}
            if teacher.num_parameters:
                out["speedup_about"] = round(
                    teacher.num_parameters / student_model.num_parameters, 2
                )
        rows = int((dataset.num_rows or {}).get("train") or 0)
        steps = (
            config.max_steps
            if config.max_steps > 0
            else math.ceil(math.ceil(rows / config.batch_size) * config.epochs)
        )
        n = int(out.get("student_parameters") or teacher.num_parameters or 0)
        tokens = min(config.max_length, 64)
        # Student training (6·N per token) plus one teacher forward per row (2·N_teacher).
        flops = (
            6 * n * steps * config.batch_size * tokens
            + 2 * int(teacher.num_parameters or 0) * rows * tokens
        )
        return {
            **out,
            "teacher_parameters": teacher.num_parameters,
            "steps": steps,
            "train_rows": rows,
            "seconds_cpu": round(10 + flops / DEVICE_FLOPS["cpu"], 1),
            "seconds_gpu": round(10 + flops / DEVICE_FLOPS["cuda"], 1),
            "source": "rough: FLOP count at a typical speed",
        }

    def finish(self, job: Job, result: Any) -> Outcome:
        """A new model "distilled from" the teacher, with the teacher-vs-student report."""
        from llmweb.catalog.services.models import model_register_from_job

        teacher = self.inputs_of(job).get("teacher_model")
        metrics = {**result.metrics, "global_step": result.global_step}
        metrics["train_runtime"] = result.train_runtime
        model = model_register_from_job(
            job=job,
            output_dir=result.output_dir,
            metrics=metrics,
            parent=teacher,
            edge=self.lineage_edge,
            report=result.report,
        )
        return Outcome(metrics=metrics, result_model=model)
