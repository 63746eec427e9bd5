"""The risk app's side of the payment core's port (`payments.ports.RiskAssessor`): the rules engine."""

from dataclasses import dataclass

from accounts.models import User
from gateways.base import Gateway
from payments.models import Payment
from payments.ports import RiskPreparation, RiskRequest, RiskVerdict
from risk import services
from risk.engine import Rules
from risk.locks import identity_lock_keys


@dataclass(frozen=True)
class _Prepared:
    """The assessor's own part of a `RiskPreparation`: the rules it knew, and whether it looked the card up."""

    rules: Rules
    fingerprint_asked: bool


class RulesAssessor:
    """Assesses a new payment with the configured rules (amounts, velocity, blocklists, first-seen customers)."""

    def prepare(
        self,
        *,
        gateway: Gateway,
        payment_method: str,
        currency: str,
        client: User | None = None,
        customer_id: str = "",
        email: str = "",
        ip: str | None = None,
    ) -> RiskPreparation:
        """The rules (settings, the currency's thresholds) as this process knows them (read once; `assess` reads
        them again with the counts and decides with those); the card's fingerprint when a rule needs it; with a
        `client`, the identity locks the velocity counts need (`risk.locks.identity_lock_keys`)."""
        rules, fingerprints_blocked = services.risk_rules_known(currency)
        fingerprint = ""
        if fingerprints_blocked:
            fingerprint = services.risk_fingerprint_lookup(gateway=gateway, payment_method=payment_method)
        keys = identity_lock_keys(client=client, customer_id=customer_id, email=email, ip=ip) if client else ()
        asked = fingerprints_blocked or not payment_method
        return RiskPreparation(card_fingerprint=fingerprint, lock_keys=keys, detail=_Prepared(rules, asked))

    def assess(self, request: RiskRequest) -> RiskVerdict:
        """The verdict (the rules as stored now: see `risk_assess`).

        :raises RiskPreparationStale: a card fingerprint was blocklisted since `prepare`, which did not look this
            card's up: the caller prepares again.
        """
        prepared = request.prepared.detail if request.prepared is not None else None
        assessment = services.risk_assess(
            client=request.client,
            amount=request.amount,
            currency=request.currency,
            customer_id=request.customer_id,
            email=request.email,
            ip=request.ip,
            card_fingerprint=request.card_fingerprint,
            rules=prepared.rules if prepared is not None else None,
            identities_locked=request.locks_held and request.prepared is not None and bool(request.prepared.lock_keys),
            fingerprint_asked=prepared.fingerprint_asked if prepared is not None else True,
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
