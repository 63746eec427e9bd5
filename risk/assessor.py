"""The risk app's side of the payment core's port (`payments.ports.RiskAssessor`): the rules engine."""

from gateways.base import Gateway
from payments.models import Payment
from payments.ports import RiskRequest, RiskVerdict
from risk import services


class RulesAssessor:
    """Assesses a new payment with the configured rules (amounts, velocity, blocklists, first-seen customers)."""

    def card_fingerprint(self, *, gateway: Gateway, payment_method: str) -> str:
        return services.risk_card_fingerprint(gateway=gateway, payment_method=payment_method)

    def assess(self, request: RiskRequest) -> RiskVerdict:
        assessment = services.risk_assess(
            client=request.client,
            amount=request.amount,
            currency=request.currency,
            customer_id=request.customer_id,
            email=request.email,
            ip=request.ip,
            card_fingerprint=request.card_fingerprint,
        )
        return RiskVerdict(
            decision=assessment.decision,
            score=assessment.score,
            level=assessment.level,
            reasons=tuple(reason.code for reason in assessment.reasons),
            detail=assessment,
        )

    def record(self, *, payment: Payment, verdict: RiskVerdict, card_fingerprint: str) -> None:
        services.risk_record(payment=payment, assessment=verdict.detail, card_fingerprint=card_fingerprint)

    def hold_ended(self, *, payment: Payment, state: str, note: str) -> None:
        services.review_hold_ended(payment=payment, note=note)
