"""Scheduled changes killed with SIGKILL in the middle of the job, then run again.

Run by a cron worker (not in a test), the job commits each change once applied (see
``flex.subscription.change._cron_apply_scheduled``). A second process (real Python, Odoo
as a library, the cron runner's loop) applies committed due changes and is killed while
its transaction is open, after some changes were committed. Each change is then either
applied whole (new quantity, its credit and charge, its posted invoice of the difference,
its confirmation mail queued) or not at all (old quantity, no item, no document); run
again, every change is applied exactly once, each with one invoice and its own number.

Amounts by hand: the month of May 22 to June 22 (31 days), a change on June 1 (21 days
left): credit of 3 × 7.00 = -21.00 × 21/31 = -14.23, charge of 5 × 7.00 = 35.00 × 21/31
= 23.71, invoice 9.48 (no tax).
"""

import time
import uuid
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from faults import (
    cron_loop_script,
    kill_in_transaction,
    schedule_seat_changes,
    seed_subscriptions,
    start_script,
)

import odoo
from odoo import SUPERUSER_ID, api
from odoo.modules.registry import Registry

SUBSCRIPTIONS = 200
START = date(2026, 5, 22)
TODAY = date(2026, 6, 1)

APPLYING = cron_loop_script(
    'env["flex.subscription.change"]._cron_apply_scheduled(limit=50)', TODAY
)


def _registry():
    return Registry(odoo.tools.config["db_name"])


def _cents(value):
    return Decimal(value).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _seed(registry):
    """Subscriptions invoiced for their month, each with a seat change (3 -> 5) due on
    June 1."""
    sub_ids = seed_subscriptions(registry, uuid.uuid4().hex[:8], SUBSCRIPTIONS, START, 7.0, 3)
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {"tracking_disable": True, "flex_today": START})
        subs = env["flex.subscription"].browse(sub_ids)
        subs._create_recurring_invoices(START)
        changes = schedule_seat_changes(env, subs, TODAY)
        return sub_ids, changes.ids


def _state(registry, change_ids):
    """Per change: (state, quantity, items, documents linked to its items, its document's
    (state, total), confirmation mails logged)."""
    with registry.cursor() as cr:
        cr.execute(
            """
            SELECT c.id, c.state, l.quantity,
                   (SELECT count(*) FROM flex_subscription_change_item i
                     WHERE i.change_id = c.id),
                   (SELECT count(DISTINCT ml.move_id)
                      FROM flex_subscription_change_item i
                      JOIN account_move_line ml ON ml.flex_change_item_id = i.id
                     WHERE i.change_id = c.id),
                   m.state, m.amount_total,
                   (SELECT count(*) FROM flex_reminder_log r
                     WHERE r.trigger = 'change_applied' AND r.subscription_id = c.subscription_id)
              FROM flex_subscription_change c
              JOIN flex_subscription_line l ON l.subscription_id = c.subscription_id
              LEFT JOIN account_move m ON m.id = c.move_id
             WHERE c.id = ANY(%s)
            """,
            [change_ids],
        )
        return {
            row[0]: (row[1], row[2], row[3], row[4], row[5], row[6] and _cents(row[6]), row[7])
            for row in cr.fetchall()
        }


def _applied(registry, change_ids):
    with registry.cursor() as cr:
        cr.execute(
            "SELECT count(*) FROM flex_subscription_change WHERE id = ANY(%s)"
            " AND state = 'applied'",
            [change_ids],
        )
        return cr.fetchone()[0]


def _documents(registry, sub_ids):
    """(documents, posted, distinct numbers) of the subscriptions."""
    with registry.cursor() as cr:
        cr.execute(
            "SELECT count(*), count(*) FILTER (WHERE state = 'posted'), count(DISTINCT name)"
            " FROM account_move WHERE flex_subscription_id = ANY(%s)",
            [sub_ids],
        )
        return cr.fetchone()


def test_changes_killed_mid_run_then_run_again_apply_exactly_once(tmp_path):
    registry = _registry()
    sub_ids, change_ids = _seed(registry)
    script = tmp_path / "applying.py"
    script.write_text(APPLYING)
    days, left = (
        (START + timedelta(days=31) - START).days,
        (START + timedelta(days=31) - TODAY).days,
    )
    expected = -_cents(Decimal(21) * left / days) + _cents(Decimal(35) * left / days)
    assert expected == Decimal("9.48")  # the docstring's figures
    applied_whole = ("applied", 5.0, 2, 1, "posted", expected, 1)
    untouched = ("scheduled", 3.0, 0, 0, None, None, 0)
    try:
        process = start_script(registry, script)
        # Some changes committed one by one, then killed inside the next one's transaction.
        deadline = time.monotonic() + 300
        seen = set()  # the counts of committed changes, as another session sees them
        while (applied := _applied(registry, change_ids)) < 20:
            seen.add(applied)
            assert process.poll() is None, process.stderr.read()
            assert time.monotonic() < deadline, "no change applied"
            time.sleep(0.05)
        seen.add(applied)
        # One commit per change, not per batch of 50: the count grows in small steps.
        assert min(seen - {0}) < 20 and len(seen - {0}) >= 3, sorted(seen)
        kill_in_transaction(registry, process, wait=0.05)
        after_kill = _state(registry, change_ids)
        outcomes = set(after_kill.values())
        assert outcomes <= {applied_whole, untouched}, outcomes
        done = sum(1 for value in after_kill.values() if value == applied_whole)
        assert 20 <= done < SUBSCRIPTIONS
        # The seeding invoices and one per applied change, all posted, each its own number.
        assert _documents(registry, sub_ids) == (SUBSCRIPTIONS + done,) * 3
        # Run again (the next cron run): the rest, and nothing twice.
        rerun = start_script(registry, script)
        out, err = rerun.communicate(timeout=600)
        assert rerun.returncode == 0 and "done" in out, err
        final = _state(registry, change_ids)
        assert len(final) == SUBSCRIPTIONS
        assert set(final.values()) == {applied_whole}
        assert _documents(registry, sub_ids) == (2 * SUBSCRIPTIONS,) * 3
    finally:
        with registry.cursor() as cr:
            cr.execute(
                "UPDATE flex_subscription_change SET state = 'cancelled'"
                " WHERE id = ANY(%s) AND state = 'scheduled'",
                [change_ids],
            )
            cr.execute(
                "UPDATE flex_subscription SET state = 'closed' WHERE id = ANY(%s)", [sub_ids]
            )
