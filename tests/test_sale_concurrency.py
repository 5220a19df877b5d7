"""An upsell quotation confirmed twice at the same moment (two transactions, as two
clicks, two tabs or the portal and a salesperson would) applies its change once.

The data is committed (each confirmation runs in its own database transaction, as in
two HTTP requests); the subscription is closed afterwards."""

import threading
import time
import uuid

import psycopg2.errors
from faults import seed_subscriptions

import odoo
from odoo import SUPERUSER_ID, Command, api, fields
from odoo.exceptions import UserError
from odoo.modules.registry import Registry

# What Odoo's request runner retries (odoo.service.model.PG_CONCURRENCY_ERRORS_TO_RETRY).
RETRIED = (psycopg2.errors.LockNotAvailable, psycopg2.errors.SerializationFailure)


def _registry():
    return Registry(odoo.tools.config["db_name"])


def _upsell_quotation(registry):
    """A running subscription of 5 seats at 10.00 (untaxed), its first period invoiced,
    and a quotation for 8 seats from today; returns (subscription id, order id)."""
    today = fields.Date.today()
    (sub_id,) = seed_subscriptions(registry, uuid.uuid4().hex[:8], 1, today, 10.0, 5)
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        sub = env["flex.subscription"].browse(sub_id)
        sub._create_recurring_invoices(today)
        change = env["flex.subscription.change"].create(
            {
                "subscription_id": sub.id,
                "line_ids": [
                    Command.create({"subscription_line_id": sub.line_ids.id, "quantity": 8})
                ],
            }
        )
        order = env["sale.order"].browse(change.action_flex_create_quotation()["res_id"])
        # Today starts the period: the whole period is credited (5 × 10.00) and
        # charged again at 8 × 10.00, a difference of 30.00.
        assert order.currency_id.compare_amounts(order.amount_total, 30.0) == 0, order.amount_total
        return sub_id, order.id


def _confirm(registry, order_id, outcome, hold=None, holding=None):
    """Confirm in a transaction of its own; with ``hold``, the transaction stays open
    (its row locks taken, ``holding`` set) until ``hold`` is set. Records "confirmed",
    "retry" (a concurrency error Odoo retries) or "refused" (a UserError) in
    ``outcome``."""
    try:
        with registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            env["sale.order"].browse(order_id).action_confirm()
            if hold is not None:
                holding.set()
                assert hold.wait(60)
        outcome.append("confirmed")
    except RETRIED:
        outcome.append("retry")
    except UserError:
        outcome.append("refused")


def _applied(registry, sub_id, order_id):
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        sub = env["flex.subscription"].browse(sub_id)
        order = env["sale.order"].browse(order_id)
        return {
            "order": order.state,
            "change": order.flex_change_id.state,
            "seats": sub.line_ids.quantity,
            "changes applied": env["flex.subscription.change"].search_count(
                [("subscription_id", "=", sub_id), ("state", "=", "applied")]
            ),
            "items": len(order.flex_change_id.item_ids),
            "invoices": sorted(sub.invoice_ids.mapped("amount_total")),
        }


def _close(registry, sub_id):
    with registry.cursor() as cr:
        cr.execute("UPDATE flex_subscription SET state = 'closed' WHERE id = %s", [sub_id])


def _expected():
    return {
        "order": "sale",
        "change": "applied",
        "seats": 8.0,
        "changes applied": 1,
        "items": 2,
        # The first period (5 × 10.00) and the change's invoice (30.00).
        "invoices": [30.0, 50.0],
    }


def test_upsell_confirmed_while_another_confirmation_is_open():
    """The second confirmation comes while the first one's transaction is still open: it
    does not wait and gets a concurrency error (which Odoo's request runner retries);
    retried once the first has committed, it is refused (the order is confirmed)."""
    registry = _registry()
    sub_id, order_id = _upsell_quotation(registry)
    try:
        first, second, retried = [], [], []
        hold, holding = threading.Event(), threading.Event()
        thread = threading.Thread(
            target=_confirm,
            args=(registry, order_id, first),
            kwargs={"hold": hold, "holding": holding},
        )
        thread.start()
        try:
            # The first transaction has applied the change and not committed yet.
            assert holding.wait(120), first
            _confirm(registry, order_id, second)
        finally:
            hold.set()
            thread.join(60)
        _confirm(registry, order_id, retried)
        assert (first, second, retried) == (["confirmed"], ["retry"], ["refused"])
        assert _applied(registry, sub_id, order_id) == _expected()
    finally:
        _close(registry, sub_id)


def test_upsell_confirmed_twice_at_the_same_moment():
    """Two confirmations released together (a barrier), each retried as Odoo's request
    runner retries a concurrency error (up to 5 times, waiting longer each time): one
    confirms, the other ends refused."""
    registry = _registry()
    sub_id, order_id = _upsell_quotation(registry)
    try:
        outcomes = [[], []]
        barrier = threading.Barrier(2)

        def run(outcome):
            barrier.wait(10)
            _confirm(registry, order_id, outcome)
            for tries in range(5):
                if outcome[-1] != "retry":
                    break
                time.sleep(0.1 * 2**tries)
                _confirm(registry, order_id, outcome)

        threads = [threading.Thread(target=run, args=(outcome,)) for outcome in outcomes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        finals = sorted(outcome[-1] for outcome in outcomes)
        assert finals == ["confirmed", "refused"], outcomes
        assert _applied(registry, sub_id, order_id) == _expected()
    finally:
        _close(registry, sub_id)
