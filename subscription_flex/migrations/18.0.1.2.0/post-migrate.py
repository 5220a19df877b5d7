"""Taxes of proration items on databases from before 18.0.1.2.0.

Subscription lines got their own taxes (``tax_ids``, stored, computed by Odoo for the
existing lines at the upgrade: the product's taxes mapped by the fiscal position). Proration
items keep the taxes they are invoiced with; before, they were taxed at invoicing by that
same rule, so the items already written get those taxes now. Items still waiting for the
next invoice are then invoiced exactly as they would have been."""

from odoo import SUPERUSER_ID, Command, api


def migrate(cr, version):
    env = api.Environment(cr, SUPERUSER_ID, {})
    items = env["flex.subscription.change.item"].search([("tax_ids", "=", False)])
    for (sub, product), group in items.grouped(
        lambda item: (item.subscription_id, item.product_id)
    ).items():
        taxes = sub._product_taxes(product)
        if taxes:
            group.write({"tax_ids": [Command.set(taxes.ids)]})
