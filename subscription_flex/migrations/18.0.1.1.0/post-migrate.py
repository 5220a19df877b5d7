"""Reminders and MRR movements on databases from before 18.0.1.1.0."""

from odoo import SUPERUSER_ID, api


def migrate(cr, version):
    env = api.Environment(cr, SUPERUSER_ID, {})
    # Plans get the default reminder rules.
    plans = (
        env["flex.plan"].with_context(active_test=False).search([("reminder_rule_ids", "=", False)])
    )
    Rule = env["flex.reminder.rule"]
    Rule.create([vals for plan in plans for vals in Rule._default_rules_vals(plan)])
    # Running subscriptions start the MRR trail on the day they started paying.
    subs = env["flex.subscription"].search([("state", "in", ("active", "to_close"))])
    for sub in subs:
        sub._record_mrr(sub.billing_anchor_date or sub.start_date)
