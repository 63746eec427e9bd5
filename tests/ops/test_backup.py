"""Backups: a pg_dump/pg_restore round trip loses no payment, refund or event (docs/operations/backup.md).

The data is made through the API on the test database, with tasks run inline (refunds are submitted,
events relayed). The dump and the restore are the shipped scripts, deploy/postgres/backup.sh and
restore.sh: `pg_dump -Fc`, `pg_restore` into a new database. The comparison is of every table (row
count and a hash of its rows in order), every sequence, index and constraint, and of what the API
serves from the restored database.
"""

import secrets
import subprocess
from pathlib import Path

import psycopg
import pytest

from events.models import Event
from payments.models import Payment
from refunds.models import Refund
from tests.ops import pg

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("tasks_inline")]

SCRIPTS = Path(__file__).resolve().parents[2] / "deploy" / "postgres"


def make_history(create_payment, storefront) -> None:
    """Payments in every outcome, refunds, currencies with 0, 2 and 3 decimals, and their events.

    One customer per payment: the velocity rule would hold a customer's sixth payment for review.
    """
    assert create_payment(customer_id="cus_1", payment_method="pm_card_visa", confirm=True).status_code == 201
    assert (
        create_payment(
            customer_id="cus_2", amount=500, currency="jpy", payment_method="pm_card_visa", confirm=True
        ).status_code
        == 201
    )
    declined = create_payment(customer_id="cus_3", payment_method="pm_card_chargeDeclined", confirm=True)
    assert declined.status_code == 402
    manual = create_payment(
        customer_id="cus_4", amount=5000, payment_method="pm_card_visa", capture_method="manual", confirm=True
    ).json()
    assert (
        storefront.post(f"/api/v1/payments/{manual['id']}/capture/", {"amount": 3000}, format="json").status_code == 200
    )
    canceled = create_payment(
        customer_id="cus_5", amount=1500, currency="kwd", payment_method="pm_card_visa", capture_method="manual"
    )
    assert storefront.post(f"/api/v1/payments/{canceled.json()['id']}/cancel/", {}, format="json").status_code == 200
    refunded = create_payment(customer_id="cus_6", amount=10_000, payment_method="pm_card_visa", confirm=True).json()
    for amount, key in ((2500, "refund-1"), (7500, "refund-2")):
        response = storefront.post(
            f"/api/v1/payments/{refunded['id']}/refunds/", {"amount": amount}, format="json", HTTP_IDEMPOTENCY_KEY=key
        )
        assert response.status_code == 201, response.json()
    assert storefront.get(f"/api/v1/payments/{refunded['id']}/").json()["status"] == "refunded"


def served(client) -> dict:
    """What the API serves: every payment, refund and event of the client, in the API's order."""

    def every(path: str) -> list[dict]:
        items, url = [], f"{path}?page_size=100"
        while url:
            body = client.get(url).json()
            items += body["results"]
            url = body.get("next")
        return items

    return {
        "payments": every("/api/v1/payments/"),
        "refunds": every("/api/v1/refunds/"),
        "events": every("/api/v1/events/"),
    }


def feed_after(client, event_id: str) -> list[str]:
    return [event["id"] for event in client.get(f"/api/v1/events/?after={event_id}&page_size=100").json()["results"]]


def run(*args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - the shipped scripts, our own arguments
        list(args), capture_output=True, text=True, env=pg.client_env(), timeout=120, check=False, **kwargs
    )


def backup(tmp_path: Path) -> Path:
    environment = {**pg.client_env(), "DATABASE_URL": pg.same_server_url()}
    done = subprocess.run(  # noqa: S603
        [str(SCRIPTS / "backup.sh"), str(tmp_path / "backups")],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    dump = Path(done.stdout.strip())
    assert dump.name.startswith("payments-")
    assert dump.suffix == ".dump"
    assert dump.with_suffix(".xid").read_text().strip().isdigit()
    return dump


def test_a_dump_restored_into_a_new_database_holds_every_payment_refund_and_event(create_payment, storefront, tmp_path):
    make_history(create_payment, storefront)
    before = served(storefront)
    source = pg.digest(pg.same_server_url())
    name = f"restored_{secrets.token_hex(4)}"

    dump = backup(tmp_path)
    try:
        restored = run(str(SCRIPTS / "restore.sh"), str(dump), pg.same_server_url(name))
        assert restored.returncode == 0, restored.stderr

        assert pg.digest(pg.same_server_url(name)) == source
        with pg.django_database(name=name):
            assert (Payment.objects.count(), Refund.objects.count(), Event.objects.count()) == (
                len(before["payments"]),
                len(before["refunds"]),
                len(before["events"]),
            )
            assert served(storefront) == before
    finally:
        pg.drop_database(pg.same_server_url("postgres"), name)

    assert len(before["payments"]) == 6
    assert sorted(refund["status"] for refund in before["refunds"]) == ["succeeded", "succeeded"]
    assert {payment["status"] for payment in before["payments"]} == {
        "succeeded",
        "failed",
        "canceled",
        "refunded",
    }
    assert {event["data"]["object"]["id"] for event in before["events"] if event["type"].startswith("payment.")} == {
        payment["id"] for payment in before["payments"]
    }
    assert [event["type"] for event in before["events"]].count("refund.succeeded") == 2


def test_restore_refuses_a_restore_into_the_same_database_name_twice(create_payment, storefront, tmp_path):
    assert create_payment(payment_method="pm_card_visa", confirm=True).status_code == 201
    dump = backup(tmp_path)
    name = f"restored_{secrets.token_hex(4)}"
    try:
        assert run(str(SCRIPTS / "restore.sh"), str(dump), pg.same_server_url(name)).returncode == 0
        with psycopg.connect(pg.same_server_url(name), autocommit=True) as conn:
            conn.execute("DELETE FROM payments_event")

        again = run(str(SCRIPTS / "restore.sh"), str(dump), pg.same_server_url(name))

        assert again.returncode == 2
        assert f"database {name} exists" in again.stderr
        with psycopg.connect(pg.same_server_url(name), autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM payments_event").fetchone() == (0,)
    finally:
        pg.drop_database(pg.same_server_url("postgres"), name)


def burn_transaction_ids(at_least: int) -> None:
    """Use transaction ids on the test server until its counter is past `at_least` (as on a server in service)."""
    with psycopg.connect(pg.same_server_url(), autocommit=True) as conn:
        current = conn.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()[0]  # type: ignore[index]
        if current < at_least:
            loop = f"FOR i IN 1..{at_least - current} LOOP PERFORM pg_current_xact_id(); COMMIT; END LOOP;"
            conn.execute(f"DO $$ BEGIN {loop} END $$")


def test_a_restore_into_another_cluster_needs_its_transaction_ids_moved_past_the_dumps(
    create_payment, storefront, tmp_path
):
    # given: a server in service for a while (its transaction ids well past a new cluster's), and a backup
    burn_transaction_ids(50_000)
    make_history(create_payment, storefront)
    before = served(storefront)
    source = pg.digest(pg.same_server_url())
    dump = backup(tmp_path)

    with pg.new_cluster() as cluster:
        # when: restoring into a new cluster, the script refuses and says what to do
        refused = run(str(SCRIPTS / "restore.sh"), str(dump), cluster.server_url("payments"))
        assert refused.returncode == 3, refused.stderr
        assert "is behind the dump's" in refused.stderr
        step = next(line.strip() for line in refused.stderr.splitlines() if "pg_resetwal --epoch=" in line)
        epoch = step.split("--epoch=")[1].split()[0]
        with psycopg.connect(cluster.server_url(), autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = 'payments'").fetchone() == (0,)

        # the reason: restored as is, the events are all there and the feed shows none of them
        created = run(
            str(pg.pg_bin() / "createdb"), "-h", "127.0.0.1", "-p", str(cluster.port), "-U", "postgres", "as_is"
        )
        assert created.returncode == 0, created.stderr
        as_is = run(
            str(pg.pg_bin() / "pg_restore"),
            "--exit-on-error",
            "--no-owner",
            "-d",
            cluster.server_url("as_is"),
            str(dump),
        )
        assert as_is.returncode == 0, as_is.stderr
        with pg.django_database(name="as_is", host="127.0.0.1", port=cluster.port):
            assert Event.objects.count() == len(before["events"])
            assert storefront.get("/api/v1/events/").json()["results"] == []

        # then: with the epoch moved as the script says, the restore goes through and serves the same data
        cluster.stop()
        cluster.resetwal(f"--epoch={epoch}")
        cluster.start()
        restored = run(str(SCRIPTS / "restore.sh"), str(dump), cluster.server_url("payments"))
        assert restored.returncode == 0, restored.stderr
        assert pg.digest(cluster.server_url("payments")) == source
        with pg.django_database(name="payments", host="127.0.0.1", port=cluster.port):
            assert served(storefront) == before
            # and what happens after the restore comes after it in the feed
            last = before["events"][-1]["id"]
            new = create_payment(payment_method="pm_card_visa", confirm=True).json()
            assert feed_after(storefront, last) == list(
                Event.objects.filter(subject_id=new["id"]).order_by("sequence").values_list("public_id", flat=True)
            )
            assert feed_after(storefront, last) != []
