"""Two real Odoo servers (``odoo-bin`` processes, cron workers on, one database) invoice the
same 2,000 due subscriptions at the same time: each exactly once, none missing, and both
servers do part of the work.

Odoo runs one scheduled action in one worker at a time, so the invoicing job is given a
second lane (``ir.cron._flex_set_lanes(2)``, the "Parallel Workers" field of the job):
each server's cron worker takes one lane, and the subscriptions are shared by the job's
``FOR UPDATE SKIP LOCKED``. Every other scheduled action is switched off for the test
(nothing else runs, no mail leaves) and switched back on afterwards.

FLEX_WORKERS_SUBSCRIPTIONS (default 2,000) sets the size.
"""

import os
import time
import uuid

from faults import logged_by_pid, run_on_servers, seed_subscriptions

import odoo
from odoo import fields
from odoo.modules.registry import Registry

SUBSCRIPTIONS = int(os.environ.get("FLEX_WORKERS_SUBSCRIPTIONS", "2000"))


def _invoiced(registry, sub_ids):
    with registry.cursor() as cr:
        cr.execute(
            """
            SELECT count(*), count(DISTINCT flex_subscription_id), sum(amount_total),
                   bool_and(state = 'posted')
              FROM account_move
             WHERE flex_subscription_id = ANY(%s) AND move_type = 'out_invoice'
            """,
            [sub_ids],
        )
        return cr.fetchone()


def test_two_odoo_servers_invoice_each_subscription_exactly_once(tmp_path):
    registry = Registry(odoo.tools.config["db_name"])
    seeded_at = time.monotonic()
    today = fields.Date.today()  # the servers' day (UTC, as the cron's user has no tz)
    sub_ids = seed_subscriptions(registry, uuid.uuid4().hex[:8], SUBSCRIPTIONS, today, 7.0, 3)
    seeded = time.monotonic() - seeded_at
    job = "subscription_flex.ir_cron_flex_create_invoices"
    try:
        logs, elapsed = run_on_servers(
            registry, tmp_path, job, lambda: _invoiced(registry, sub_ids)[1] >= SUBSCRIPTIONS
        )
    finally:
        with registry.cursor() as cr:
            cr.execute(
                "UPDATE flex_subscription SET state = 'closed' WHERE id = ANY(%s)", [sub_ids]
            )
    count, distinct, total, posted = _invoiced(registry, sub_ids)
    # One invoice each, 3 x 7.00 = 21.00, all posted.
    assert (count, distinct, total, posted) == (
        SUBSCRIPTIONS,
        SUBSCRIPTIONS,
        21.0 * SUBSCRIPTIONS,
        True,
    )
    # Both servers invoiced, and what they say they did adds up.
    by_pid = logged_by_pid(
        logs,
        "odoo.addons.subscription_flex.models.flex_subscription",
        r"Recurring invoicing: (\d+) subscriptions invoiced",
    )
    assert len(by_pid) == 2 and all(by_pid.values()), f"both must invoice: {dict(by_pid)}"
    assert sum(by_pid.values()) >= SUBSCRIPTIONS, dict(by_pid)
    print(
        f"\n{SUBSCRIPTIONS:,} subscriptions (seeded in {seeded:.0f} s) invoiced by two Odoo "
        f"servers in {elapsed:.1f} s: {dict(by_pid)} per server (pid)"
    )
