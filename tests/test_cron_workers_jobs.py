"""Two real Odoo servers (``odoo-bin`` processes, one cron worker each, one database) run
the other two jobs that share their work between workers, at the same time, on 2,000
subscriptions: the scheduled changes and the reminders. Each is done exactly once, none
is missing, and both servers do part of the work (as ``test_cron_workers.py`` does for
invoicing; the servers are started by ``faults.cron_servers``).

- Changes: a seat increase (3 -> 5 at 7.00) asked for tomorrow, then moved to today, so
  that the servers (which use the real date) apply it on its day: the line gets the new
  quantity, and the prorated difference is invoiced at once (posted, numbered without a
  gap or a double by either server; see ``_seed_due_changes``), one invoice per change,
  to the cent as computed here.
- Reminders: a renewal reminder rule whose window covers today for every subscription:
  one log and one queued mail each (Odoo's mail queue job stays off: nothing leaves).

FLEX_WORKERS_SUBSCRIPTIONS (default 2,000) sets the size.
"""

import os
import time
import uuid
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

from dateutil.relativedelta import relativedelta
from faults import logged_by_pid, run_on_servers, schedule_seat_changes, seed_subscriptions

import odoo
from odoo import SUPERUSER_ID, api, fields
from odoo.modules.registry import Registry

SUBSCRIPTIONS = int(os.environ.get("FLEX_WORKERS_SUBSCRIPTIONS", "2000"))
MODELS = "odoo.addons.subscription_flex.models"


def _registry():
    return Registry(odoo.tools.config["db_name"])


def _close(registry, sub_ids):
    """The seeded subscriptions are closed afterwards: no later test sees them due."""
    with registry.cursor() as cr:
        cr.execute("UPDATE flex_subscription SET state = 'closed' WHERE id = ANY(%s)", [sub_ids])


def _cents(amount):
    return Decimal(amount).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _seed_due_changes(registry, count, today):
    """``count`` subscriptions started 10 to 13 days ago (3 seats at 7.00, no tax), each
    with a seat increase to 5 scheduled for tomorrow, then made due today."""
    start = today - timedelta(days=10)
    while start.day > 28:  # the period is then one calendar month, whatever the month
        start -= timedelta(days=1)
    sub_ids = seed_subscriptions(registry, uuid.uuid4().hex[:8], count, start, 7.0, 3)
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {"tracking_disable": True})
        subs = env["flex.subscription"].browse(sub_ids)
        # Posted documents (the plans' default): posting numbers them in one journal,
        # and Odoo's gapless sequence lets one transaction at a time post there, until
        # it commits. The job commits each change once applied, so the two servers still
        # work side by side (see the shares per server below).
        assert set(subs.plan_id.mapped("invoicing_mode")) == {"post"}
        # Its day has come (the servers run on the real date).
        changes = schedule_seat_changes(env, subs, today + timedelta(days=1), due=today)
        return sub_ids, changes.ids, start


def _changes_done(registry, change_ids):
    with registry.cursor() as cr:
        cr.execute(
            "SELECT count(*) FROM flex_subscription_change WHERE id = ANY(%s)"
            " AND state != 'scheduled'",
            [change_ids],
        )
        return cr.fetchone()[0]


def test_two_odoo_servers_apply_each_scheduled_change_exactly_once(tmp_path):
    registry = _registry()
    today = fields.Date.today()  # the servers' day (UTC, as the cron's user has no tz)
    seeded_at = time.monotonic()
    sub_ids, change_ids, start = _seed_due_changes(registry, SUBSCRIPTIONS, today)
    seeded = time.monotonic() - seeded_at
    job = "subscription_flex.ir_cron_flex_apply_changes"
    try:
        logs, elapsed = run_on_servers(
            registry, tmp_path, job, lambda: _changes_done(registry, change_ids) >= SUBSCRIPTIONS
        )
    finally:
        with registry.cursor() as cr:  # what a failed run left is never applied later
            cr.execute(
                "UPDATE flex_subscription_change SET state = 'cancelled'"
                " WHERE id = ANY(%s) AND state = 'scheduled'",
                [change_ids],
            )
        _close(registry, sub_ids)
    # The prorated difference of today to the period's end, one rounding per line, half
    # away from zero: credit of 3 x 7.00, charge of 5 x 7.00.
    end = start + relativedelta(months=1)
    left, days = (end - today).days, (end - start).days
    credit = -_cents(Decimal(21) * left / days)
    charge = _cents(Decimal(35) * left / days)
    expected = credit + charge
    assert 0 < left < days
    with registry.cursor() as cr:
        cr.execute(
            """
            SELECT c.state, c.effective_date, c.applied_on IS NOT NULL, c.amount_total,
                   l.quantity, m.move_type, m.state, m.amount_total,
                   (SELECT count(DISTINCT ml.move_id)
                      FROM flex_subscription_change_item i
                      JOIN account_move_line ml ON ml.flex_change_item_id = i.id
                     WHERE i.change_id = c.id),
                   (SELECT count(*) FROM flex_subscription_change_item i
                     WHERE i.change_id = c.id),
                   (SELECT array_agg(am.amount_total ORDER BY am.id)
                      FROM account_move am
                     WHERE am.flex_subscription_id = c.subscription_id
                       AND am.id != c.move_id)
              FROM flex_subscription_change c
              JOIN flex_subscription_line l ON l.subscription_id = c.subscription_id
              LEFT JOIN account_move m ON m.id = c.move_id
             WHERE c.id = ANY(%s)
            """,
            [change_ids],
        )
        rows = cr.fetchall()
        cr.execute(
            "SELECT count(*) FROM flex_reminder_log WHERE trigger = 'change_applied'"
            " AND subscription_id = ANY(%s)",
            [sub_ids],
        )
        confirmations = cr.fetchone()[0]
        # Gapless numbering held under two servers: every posted document its own number.
        cr.execute(
            "SELECT count(*), count(DISTINCT name) FROM account_move"
            " WHERE flex_subscription_id = ANY(%s) AND state = 'posted'",
            [sub_ids],
        )
        posted, numbers = cr.fetchone()
    assert posted == numbers == 2 * SUBSCRIPTIONS  # the catch-up invoice and the change's
    assert len(rows) == SUBSCRIPTIONS  # one line each
    outcomes = {
        (
            state,
            effective,
            applied_on,
            _cents(amount),
            quantity,
            move_type,
            move_state,
            _cents(move_total),
            documents,
            items,
            tuple(_cents(total) for total in others or ()),
        )
        for (
            state,
            effective,
            applied_on,
            amount,
            quantity,
            move_type,
            move_state,
            move_total,
            documents,
            items,
            others,
        ) in rows
    }
    # Each change applied once, on its day: 5 seats, one credit and one charge, one
    # invoice of the difference linked to it; and the one other document of the
    # subscription, the invoice of its running period (3 x 7.00) that the change
    # caught up with first (nothing had invoiced it: the invoicing job is off).
    assert outcomes == {
        (
            "applied",
            today,
            True,
            expected,
            5.0,
            "out_invoice",
            "posted",
            expected,
            1,
            2,
            (Decimal("21.00"),),
        )
    }, sorted(outcomes, key=str)[:5]
    assert confirmations == SUBSCRIPTIONS  # one "change applied" mail each, queued
    by_pid = logged_by_pid(
        logs, f"{MODELS}.flex_subscription_change", r"Scheduled changes: (\d+) applied"
    )
    assert len(by_pid) == 2 and all(by_pid.values()), f"both servers must apply: {dict(by_pid)}"
    assert sum(by_pid.values()) >= SUBSCRIPTIONS, dict(by_pid)  # and any other change due
    print(
        f"\n{SUBSCRIPTIONS:,} scheduled changes (seeded in {seeded:.0f} s) applied by two "
        f"Odoo servers in {elapsed:.1f} s: {dict(by_pid)} per server (pid), {expected} each"
    )


def _seed_due_reminders(registry, count, today):
    """``count`` subscriptions started today, and a renewal reminder rule on their plan
    whose window (40 days before the renewal, a month from now) covers today."""
    sub_ids = seed_subscriptions(registry, uuid.uuid4().hex[:8], count, today, 7.0, 3)
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        subs = env["flex.subscription"].browse(sub_ids)
        rule = env["flex.reminder.rule"].create(
            {
                "name": "Renewal (parallel workers)",
                "plan_id": subs[0].plan_id.id,
                "trigger": "period_end",
                "offset_days": 40,
                "template_id": env.ref("subscription_flex.mail_template_flex_renewal").id,
            }
        )
        return sub_ids, rule.id


def _reminders(registry, rule_id):
    with registry.cursor() as cr:
        cr.execute(
            """
            SELECT count(*), count(DISTINCT subscription_id), count(DISTINCT key),
                   count(mail_id), count(DISTINCT mail_id)
              FROM flex_reminder_log WHERE rule_id = %s
            """,
            [rule_id],
        )
        return cr.fetchone()


def test_two_odoo_servers_send_each_reminder_exactly_once(tmp_path):
    registry = _registry()
    today = fields.Date.today()
    seeded_at = time.monotonic()
    sub_ids, rule_id = _seed_due_reminders(registry, SUBSCRIPTIONS, today)
    seeded = time.monotonic() - seeded_at
    job = "subscription_flex.ir_cron_flex_send_reminders"
    try:
        logs, elapsed = run_on_servers(
            registry, tmp_path, job, lambda: _reminders(registry, rule_id)[3] >= SUBSCRIPTIONS
        )
    finally:
        _close(registry, sub_ids)
        with registry.cursor() as cr:
            cr.execute("UPDATE flex_reminder_rule SET active = FALSE WHERE id = %s", [rule_id])
    renewal = today + relativedelta(months=1)
    with registry.cursor() as cr:
        cr.execute(
            """
            SELECT l.subscription_id, l.key, msg.model, msg.res_id, m.state,
                   (SELECT count(*) FROM mail_mail other
                      JOIN mail_message other_msg ON other_msg.id = other.mail_message_id
                     WHERE other_msg.model = 'flex.subscription'
                       AND other_msg.res_id = l.subscription_id)
              FROM flex_reminder_log l
              JOIN mail_mail m ON m.id = l.mail_id
              JOIN mail_message msg ON msg.id = m.mail_message_id
             WHERE l.rule_id = %s
            """,
            [rule_id],
        )
        rows = cr.fetchall()
    # One log per subscription for its renewal, one queued mail each, about it, and no
    # other mail about it (nothing was sent: still outgoing).
    assert len(rows) == SUBSCRIPTIONS
    assert sorted(row[0] for row in rows) == sorted(sub_ids)
    outcomes = {
        (key, model, res_id == sub_id, state, mails)
        for sub_id, key, model, res_id, state, mails in rows
    }
    assert outcomes == {(renewal.isoformat(), "flex.subscription", True, "outgoing", 1)}, outcomes
    by_pid = logged_by_pid(logs, f"{MODELS}.flex_reminder", r"Reminders: (\d+) queued")
    assert len(by_pid) == 2 and all(by_pid.values()), f"both servers must send: {dict(by_pid)}"
    assert sum(by_pid.values()) >= SUBSCRIPTIONS, dict(by_pid)
    print(
        f"\n{SUBSCRIPTIONS:,} reminders (seeded in {seeded:.0f} s) queued by two Odoo "
        f"servers in {elapsed:.1f} s: {dict(by_pid)} per server (pid)"
    )
