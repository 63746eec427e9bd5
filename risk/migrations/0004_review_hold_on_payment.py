"""Each assessment's verdict and review state move onto its payment, which now owns the review hold."""

from django.db import migrations

COPY_VERDICT = """
UPDATE payments_payment
   SET risk_score = risk_riskassessment.score,
       risk_level = risk_riskassessment.level,
       review_state = risk_riskassessment.review_state
  FROM risk_riskassessment
 WHERE risk_riskassessment.payment_id = payments_payment.id
"""


def copy_to_payments(apps, schema_editor):  # noqa: ANN001, ARG001
    schema_editor.execute(COPY_VERDICT)
    assessments = apps.get_model("risk", "RiskAssessment")
    payments = apps.get_model("payments", "Payment")
    held = assessments.objects.exclude(review_state="").values_list("payment_id", "reasons")
    for payment_id, reasons in held.iterator(chunk_size=1000):
        codes = [reason["code"] for reason in reasons]
        payments.objects.filter(pk=payment_id).update(review_reasons=codes)


def copy_back(apps, schema_editor):  # noqa: ANN001, ARG001
    schema_editor.execute(
        "UPDATE risk_riskassessment SET review_state = payments_payment.review_state "
        "FROM payments_payment WHERE payments_payment.id = risk_riskassessment.payment_id"
    )


class Migration(migrations.Migration):
    dependencies = [
        ("risk", "0003_review_queue"),
        ("payments", "0007_review_hold"),
    ]

    operations = [
        migrations.RunPython(copy_to_payments, copy_back),
        migrations.RemoveIndex(model_name="riskassessment", name="risk_pending_review_idx"),
        migrations.RemoveConstraint(model_name="riskassessment", name="risk_review_only_when_decided"),
        migrations.RemoveField(model_name="riskassessment", name="review_state"),
    ]
