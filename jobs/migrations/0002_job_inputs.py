"""Job inputs generalise: models by role (JobModel), an optional eval dataset; kinds are
code, so ``type`` loses its fixed choices. Existing base models become role ``base``."""

import django.db.models.deletion
from django.db import migrations, models


def base_model_to_links(apps, schema_editor):
    Job = apps.get_model("jobs", "Job")
    JobModel = apps.get_model("jobs", "JobModel")
    JobModel.objects.bulk_create(
        [
            JobModel(job_id=job_id, model_id=model_id, role="base", position=0)
            for job_id, model_id in Job.objects.values_list("pk", "base_model_id")
            if model_id is not None
        ],
        batch_size=1000,
    )


def links_to_base_model(apps, schema_editor):
    Job = apps.get_model("jobs", "Job")
    JobModel = apps.get_model("jobs", "JobModel")
    for link in JobModel.objects.filter(position=0):
        Job.objects.filter(pk=link.job_id).update(base_model_id=link.model_id)


class Migration(migrations.Migration):
    dependencies = [
        ("catalog", "0002_initial"),
        ("jobs", "0001_initial"),
    ]

    operations = [
        migrations.AlterField(
            model_name="job",
            name="type",
            field=models.CharField(max_length=40),
        ),
        migrations.AddField(
            model_name="job",
            name="eval_dataset",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="eval_jobs",
                to="catalog.dataset",
            ),
        ),
        migrations.AlterField(
            model_name="job",
            name="dataset",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="jobs",
                to="catalog.dataset",
            ),
        ),
        migrations.CreateModel(
            name="JobModel",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("role", models.CharField(max_length=20)),
                ("position", models.PositiveSmallIntegerField(default=0)),
                (
                    "job",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="job_models",
                        to="jobs.job",
                    ),
                ),
                (
                    "model",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="job_links",
                        to="catalog.registeredmodel",
                    ),
                ),
            ],
            options={"ordering": ["job_id", "position"]},
        ),
        migrations.AddConstraint(
            model_name="jobmodel",
            constraint=models.UniqueConstraint(
                fields=("job", "position"), name="job_model_position_unique"
            ),
        ),
        migrations.AlterField(
            model_name="job",
            name="base_model",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="catalog.registeredmodel",
            ),
        ),
        migrations.RunPython(base_model_to_links, links_to_base_model),
        migrations.RemoveField(model_name="job", name="base_model"),
    ]
