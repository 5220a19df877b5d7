"""The same usage batch delivered three times over HTTP, two of them at the same time.

A customer's system posts a batch; the answer never comes back (the connection drops
while the server is still working), so the client retries, twice, concurrently (two
workers of its queue). Every event must be recorded once and rated once.

Real concurrency needs committed data and real cursors: the requests go to the Odoo HTTP
server the test run starts (pytest-odoo ``--odoo-http``, threaded), not through an
HttpCase, whose test cursor serializes requests. The three deliveries are made to meet
deterministically: a transaction of the test first holds the batch's first key (an
uncommitted delivery, as a worker that is about to crash), the three requests block on
it inside PostgreSQL, and the holder then rolls back. One request records the batch;
the other two collide with it (a serialization failure under REPEATABLE READ) and are
retried by Odoo, and must then answer "duplicate" for every event.
"""

import threading
import time
import uuid
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
import requests

import odoo
from odoo import SUPERUSER_ID, Command, api, fields
from odoo.modules.registry import Registry
from odoo.tests import new_test_user

EVENTS = 40
PRICE = 0.5
URL = "/flex/usage/v1/events"


def _registry():
    return Registry(odoo.tools.config["db_name"])


def _url():
    server = getattr(odoo.service.server, "server", None)
    if server is None:
        pytest.skip("no Odoo HTTP server in this run (pytest --odoo-http)")
    return f"http://127.0.0.1:{odoo.tools.config['http_port']}{URL}"


def _seed(registry, tag):
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        product = env["product.product"].create(
            {
                "name": f"Redelivered calls {tag}",
                "default_code": f"REDELIVER-{tag}",
                "type": "service",
                "flex_is_subscription": True,
                "flex_metered": True,
                "flex_aggregation": "sum",
                "taxes_id": [Command.clear()],
            }
        )
        plan = env["flex.plan"].create({"name": f"Redelivery {tag}"})
        env["flex.price"].create(
            {
                "plan_id": plan.id,
                "product_id": product.id,
                "currency_id": env.company.currency_id.id,
                "date_start": fields.Date.today() - timedelta(days=400),
                "pricing_model": "per_unit",
                "price_unit": PRICE,
            }
        )
        partner = env["res.partner"].create({"name": f"Redelivery customer {tag}"})
        sub = env["flex.subscription"].create(
            {
                "partner_id": partner.id,
                "plan_id": plan.id,
                "start_date": fields.Date.today() - timedelta(days=3),
                "line_ids": [Command.create({"product_id": product.id, "quantity": 1})],
            }
        )
        sub.action_confirm()
        user = new_test_user(
            env,
            login=f"flex_redeliver_{tag}",
            groups="subscription_flex.group_flex_user",
            company_id=env.company.id,
            company_ids=[Command.set(env.company.ids)],
        )
        key = (
            env["res.users.apikeys"]
            .with_user(user)
            ._generate(None, "redelivery", datetime.now() + timedelta(days=1))
        )
        return sub.id, user.id, key


def _batch(tag, sub_name):
    now = datetime.now().replace(microsecond=0)
    return [
        {
            "subscription": sub_name,
            "product": f"REDELIVER-{tag}",
            "quantity": i % 7 + 1,
            "time": (now - timedelta(hours=1, minutes=i)).isoformat(),
            "key": f"{tag}-{i}",
        }
        for i in range(EVENTS)
    ]


def _cleanup(registry, sub_id, user_id):
    with registry.cursor() as cr:
        cr.execute("DELETE FROM flex_usage WHERE subscription_id = %s", [sub_id])
        cr.execute("UPDATE flex_subscription SET state = 'closed' WHERE id = %s", [sub_id])
        cr.execute("DELETE FROM res_users_apikeys WHERE user_id = %s", [user_id])
        cr.execute("UPDATE res_users SET active = FALSE WHERE id = %s", [user_id])


def _waiting_inserts(registry):
    """Backends of this database blocked on a lock while inserting usage."""
    with registry.cursor() as cr:
        cr.execute(
            """
            SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock'
               AND query LIKE '%%INSERT INTO flex_usage%%'
            """
        )
        return cr.fetchone()[0]


def _request_threads():
    """The HTTP server's request threads (as HttpCase waits for them)."""
    return [
        thread
        for thread in threading.enumerate()
        if thread.name.startswith("odoo.service.http.request.")
    ]


def _wait_for(predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_same_batch_three_times_with_concurrent_retries_is_counted_once():
    url = _url()
    registry = _registry()
    tag = uuid.uuid4().hex[:10]
    sub_id, user_id, api_key = _seed(registry, tag)
    try:
        with registry.cursor() as cr:
            sub_name = (
                api.Environment(cr, SUPERUSER_ID, {})["flex.subscription"].browse(sub_id).name
            )
        events = _batch(tag, sub_name)
        headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        payload = {"events": events}

        with registry.cursor() as holder:
            # An uncommitted delivery of the first event: every request blocks on its key.
            env = api.Environment(holder, SUPERUSER_ID, {})
            assert env["flex.usage"]._ingest(events[:1], source="api")["accepted"] == 1

            # Delivery 1: the client gives up waiting (the server goes on working).
            with pytest.raises(requests.exceptions.ReadTimeout):
                requests.post(url, json=payload, headers=headers, timeout=(10, 1))

            # Deliveries 2 and 3: the client's retries, at the same time, each on its
            # own connection.
            answers, errors = [None, None], []
            barrier = threading.Barrier(2)

            def retry(slot):
                try:
                    with requests.Session() as session:
                        barrier.wait(timeout=30)
                        answers[slot] = session.post(
                            url, json=payload, headers=headers, timeout=120
                        )
                except Exception as error:  # noqa: BLE001 - reported by the test
                    errors.append(repr(error))

            threads = [threading.Thread(target=retry, args=(slot,)) for slot in (0, 1)]
            for thread in threads:
                thread.start()
            assert _wait_for(lambda: _waiting_inserts(registry) >= 3), (
                "the three deliveries did not all reach the insert"
            )
            holder.rollback()  # the first holder of the key disappears
        for thread in threads:
            thread.join(timeout=180)
        assert not errors, errors

        bodies = []
        for answer in answers:
            assert answer is not None and answer.status_code == 200, answer is not None and (
                answer.status_code,
                answer.text,
            )
            body = answer.json()
            assert body["rejected"] == 0, body
            assert body["accepted"] + body["duplicates"] == EVENTS, body
            bodies.append(body)
        # Either one retry recorded the batch and the other found duplicates, or the
        # abandoned first delivery did and both retries found duplicates.
        assert sorted(body["accepted"] for body in bodies) in ([0, 0], [0, EVENTS])

        # The abandoned first delivery may still be at work (retrying): let it finish,
        # so that its outcome is in what is counted below.
        assert _wait_for(lambda: not _request_threads()), "HTTP requests still running"

        # A late, fourth delivery: nothing new.
        late = requests.post(url, json=payload, headers=headers, timeout=120)
        assert late.status_code == 200, late.text
        assert (late.json()["accepted"], late.json()["duplicates"]) == (0, EVENTS)

        with registry.cursor() as cr:
            cr.execute(
                "SELECT key, count(*), sum(quantity) FROM flex_usage"
                " WHERE subscription_id = %s GROUP BY key",
                [sub_id],
            )
            rows = {key: (count, float(quantity)) for key, count, quantity in cr.fetchall()}
            expected = {event["key"]: (1, float(event["quantity"])) for event in events}
            assert rows == expected
            env = api.Environment(cr, SUPERUSER_ID, {})
            summary = env["flex.subscription"].browse(sub_id)._get_usage_summary()
        total = sum(event["quantity"] for event in events)
        assert [(row["quantity"], row["amount"]) for row in summary] == [
            (Decimal(total), Decimal(str(total * PRICE)).quantize(Decimal("0.01")))
        ]
    finally:
        _cleanup(registry, sub_id, user_id)
