"""Two cron workers invoice the same due subscriptions at the same time.

Each worker is a thread with its own database cursor and transaction, as two Odoo cron
processes would be: committed data, real row locks, Odoo's REPEATABLE READ isolation.
Every subscription must be invoiced exactly once per period, none missed, and both
workers must have taken part of the work (FOR UPDATE SKIP LOCKED shares it).
"""

import threading
import uuid
from datetime import date

import odoo
from odoo import SUPERUSER_ID, Command, api
from odoo.modules.registry import Registry

SUBSCRIPTIONS = 120
TODAY = date(2026, 3, 15)  # three monthly periods due: Jan, Feb, Mar


def _registry():
    return Registry(odoo.tools.config["db_name"])


def _seed(registry, tag):
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        product = env["product.product"].create(
            {
                "name": f"Parallel seat {tag}",
                "type": "service",
                "flex_is_subscription": True,
                "lst_price": 10.0,
                "taxes_id": [Command.clear()],
            }
        )
        plan = env["flex.plan"].create({"name": f"Parallel {tag}", "invoicing_mode": "post"})
        partner = env["res.partner"].create({"name": f"Parallel customer {tag}"})
        subs = env["flex.subscription"].create(
            [
                {
                    "partner_id": partner.id,
                    "plan_id": plan.id,
                    "start_date": date(2026, 1, 1),
                    "line_ids": [
                        Command.create(
                            {
                                "product_id": product.id,
                                "quantity": 2,
                                "price_unit": 10.0,
                                "price_overridden": True,
                            }
                        )
                    ],
                }
                for _i in range(SUBSCRIPTIONS)
            ]
        )
        subs.action_confirm()
        return subs.ids


def _worker(registry, barrier, processed, errors):
    try:
        barrier.wait(timeout=60)
        for _round in range(200):
            with registry.cursor() as cr:
                env = api.Environment(cr, SUPERUSER_ID, {"flex_today": TODAY})
                batch = env["flex.subscription"]._cron_create_invoices(batch_size=10)
                processed.extend(batch.ids)
                if not batch:
                    return
        errors.append("did not finish in 200 rounds")
    except Exception as error:  # noqa: BLE001 - reported by the test
        errors.append(repr(error))


def _cleanup(registry, sub_ids):
    """Leave nothing due behind for the other tests of the run."""
    with registry.cursor() as cr:
        cr.execute("UPDATE flex_subscription SET state = 'closed' WHERE id = ANY(%s)", [sub_ids])


def test_two_workers_invoice_each_period_exactly_once():
    registry = _registry()
    sub_ids = _seed(registry, uuid.uuid4().hex[:8])
    try:
        barrier = threading.Barrier(2)
        processed = [[], []]
        errors = []
        threads = [
            threading.Thread(target=_worker, args=(registry, barrier, processed[i], errors))
            for i in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=600)
        assert not errors, errors
        with registry.cursor() as cr:
            cr.execute(
                """
                SELECT s.id, count(m.id), count(DISTINCT m.flex_period_start),
                       sum(m.amount_total), bool_and(m.state = 'posted')
                  FROM flex_subscription s
                  LEFT JOIN account_move m ON m.flex_subscription_id = s.id
                 WHERE s.id = ANY(%s)
                 GROUP BY s.id
                """,
                [sub_ids],
            )
            rows = cr.fetchall()
            cr.execute(
                "SELECT count(*) FROM flex_subscription"
                " WHERE id = ANY(%s) AND invoicing_error IS NOT NULL",
                [sub_ids],
            )
            failed = cr.fetchone()[0]
        assert len(rows) == SUBSCRIPTIONS
        # 3 invoices each, 3 distinct periods, 3 x 2 x 10.00 = 60.00, all posted.
        assert {
            (count, periods, float(total), posted) for _id, count, periods, total, posted in rows
        } == {(3, 3, 60.0, True)}
        assert failed == 0
        mine = [set(ids) & set(sub_ids) for ids in processed]
        assert mine[0] and mine[1], "both workers must have invoiced some subscriptions"
        assert not (mine[0] & mine[1]), "a subscription was processed by both workers"
        assert mine[0] | mine[1] == set(sub_ids)
    finally:
        _cleanup(registry, sub_ids)


def test_busy_subscription_is_not_changed_and_waits_for_the_next_cron_run():
    """A subscription locked by another transaction (the invoicing cron at work): a change
    asked now gets a clear message and writes nothing; the scheduled-change cron leaves
    it for its next run instead of waiting."""
    registry = _registry()
    seeded = _seed(registry, uuid.uuid4().hex[:8])
    sub_ids = seeded[:1]
    try:
        with registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {"flex_today": date(2026, 1, 10)})
            sub = env["flex.subscription"].browse(sub_ids)
            change = env["flex.subscription.change"].create(
                {
                    "subscription_id": sub.id,
                    "timing": "date",
                    "date": date(2026, 1, 20),
                    "line_ids": [
                        Command.create({"subscription_line_id": sub.line_ids.id, "quantity": 3})
                    ],
                }
            )
            change.action_confirm()
            assert change.state == "scheduled"
            change_id = change.id
        with registry.cursor() as holder, registry.cursor() as cr:
            holder.execute("SELECT id FROM flex_subscription WHERE id = %s FOR UPDATE", sub_ids)
            env = api.Environment(cr, SUPERUSER_ID, {"flex_today": date(2026, 1, 20)})
            sub = env["flex.subscription"].browse(sub_ids)
            assert sub._lock_for_change(raise_if_busy=False) is False
            try:
                sub._lock_for_change()
                raise AssertionError("a busy subscription must not be changed")
            except odoo.exceptions.UserError as error:
                assert "being invoiced or changed" in str(error)
            applied = env["flex.subscription.change"]._cron_apply_scheduled()
            assert change_id not in applied.ids
            assert env["flex.subscription.change"].browse(change_id).state == "scheduled"
            holder.rollback()
            cr.rollback()
        with registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {"flex_today": date(2026, 1, 20)})
            applied = env["flex.subscription.change"]._cron_apply_scheduled()
            assert change_id in applied.ids
            assert env["flex.subscription"].browse(sub_ids).line_ids.quantity == 3
    finally:
        _cleanup(registry, seeded)
