"""Recurring invoicing killed with SIGKILL in the middle of a batch, then run again.

A second process (real Python, Odoo as a library, the cron runner's loop: one batch,
commit, again) invoices committed due subscriptions and is killed while a batch is open
in its transaction, after earlier batches were committed. What was committed stays, once;
the open batch vanishes whole (no invoice without its lines, no draft, no journal item
without its invoice, no period marked invoiced without its invoice); run again, every
subscription ends with exactly one invoice for the period.
"""

import uuid
from datetime import date

from faults import cron_loop_script, kill_in_transaction, seed_subscriptions, start_script

import odoo
from odoo.modules.registry import Registry

SUBSCRIPTIONS = 600
TODAY = date(2026, 6, 1)

INVOICING = cron_loop_script('env["flex.subscription"]._cron_create_invoices(batch_size=25)', TODAY)


def _registry():
    return Registry(odoo.tools.config["db_name"])


def _state(registry, sub_ids):
    """Per subscription: (invoices, posted invoices with 18.00, next invoice date moved)."""
    with registry.cursor() as cr:
        cr.execute(
            """
            SELECT s.id, s.next_invoice_date,
                   count(m.id),
                   count(m.id) FILTER (WHERE m.state = 'posted' AND m.amount_total = 18.0),
                   count(m.id) FILTER (WHERE NOT EXISTS (
                       SELECT 1 FROM account_move_line l
                        WHERE l.move_id = m.id AND l.display_type = 'product'))
              FROM flex_subscription s
              LEFT JOIN account_move m
                ON m.flex_subscription_id = s.id AND m.move_type = 'out_invoice'
             WHERE s.id = ANY(%s)
             GROUP BY s.id
            """,
            [sub_ids],
        )
        return {row[0]: row[1:] for row in cr.fetchall()}


def _run(registry, script, kill_after_batches=None):
    process = start_script(registry, script)
    if kill_after_batches is None:
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, err
        return out
    for _batch in range(kill_after_batches):
        line = process.stdout.readline()
        assert line.startswith("batch"), (line, process.stderr.read())
    # The next batch is open: killed once its transaction has written a little.
    kill_in_transaction(registry, process, wait=0.3)
    return kill_after_batches


def test_invoicing_killed_mid_batch_then_run_again_invoices_exactly_once(tmp_path):
    registry = _registry()
    sub_ids = seed_subscriptions(registry, uuid.uuid4().hex[:8], SUBSCRIPTIONS, TODAY, 9.0, 2)
    script = tmp_path / "invoicing.py"
    script.write_text(INVOICING)
    try:
        _run(registry, script, kill_after_batches=6)
        after_kill = _state(registry, sub_ids)
        invoiced = [sid for sid, (_next, count, _ok, _empty) in after_kill.items() if count]
        # The committed batches of 25 (the database's other due subscriptions, if any,
        # come first), nothing of the one killed, and most still to do.
        assert 0 < len(invoiced) <= 6 * 25
        for _next, count, good, empty in after_kill.values():
            assert count in (0, 1) and good == count and empty == 0
        # A subscription is marked invoiced (its next date moved on) exactly when its
        # invoice exists: the killed batch left no half state behind.
        moved = {sid for sid, (next_date, *_rest) in after_kill.items() if next_date > TODAY}
        assert moved == set(invoiced)
        with registry.cursor() as cr:
            cr.execute(
                "SELECT count(*) FROM account_move m WHERE m.flex_subscription_id = ANY(%s)"
                " AND m.state != 'posted'",
                [sub_ids],
            )
            assert cr.fetchone()[0] == 0
        # Run again (the next cron run): the rest, and nothing twice.
        assert "done" in _run(registry, script)
        final = _state(registry, sub_ids)
        assert len(final) == SUBSCRIPTIONS
        assert {values[1:] for values in final.values()} == {(1, 1, 0)}
        assert all(values[0] > TODAY for values in final.values())
    finally:
        with registry.cursor() as cr:
            cr.execute(
                "UPDATE flex_subscription SET state = 'closed' WHERE id = ANY(%s)", [sub_ids]
            )
