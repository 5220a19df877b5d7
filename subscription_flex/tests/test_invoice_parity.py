from datetime import date

from odoo import Command
from odoo.tests import Form, tagged

from .common import FlexCommon

COMPARED = (
    "account_id",
    "partner_id",
    "date",
    "currency_id",
    "debit",
    "credit",
    "amount_currency",
    "tax_ids",
    "tax_line_id",
    "tax_repartition_line_id",
    "display_type",
    "product_id",
    "quantity",
    "price_unit",
    "discount",
    "date_maturity",
)


@tagged("post_install", "-at_install")
class TestInvoiceParity(FlexCommon):
    """Our fast path hands account.move.create precomputed accounts and taxes: the
    journal items must be the ones Odoo's own invoice form would have produced."""

    def _journal_items(self, move):
        rows = []
        for line in move.line_ids:
            row = []
            for name in COMPARED:
                value = line[name]
                if hasattr(value, "ids"):
                    value = tuple(sorted(value.ids))
                row.append(value)
            rows.append(tuple(row))
        return sorted(rows, key=repr)

    def _standard_invoice(self, sub, invoice_date):
        form = Form(self.env["account.move"].with_context(default_move_type="out_invoice"))
        form.partner_id = sub.partner_id
        form.invoice_date = invoice_date
        for line in sub.line_ids:
            with form.invoice_line_ids.new() as line_form:
                line_form.product_id = line.product_id
                line_form.quantity = line.quantity
                line_form.price_unit = line.price_unit
                line_form.discount = line.discount
        move = form.save()
        move.action_post()
        return move

    def _assert_same_journal_items(self, sub, invoice_date):
        ours = self._invoice(sub, invoice_date)
        theirs = self._standard_invoice(sub, invoice_date)
        self.assertEqual(self._journal_items(ours), self._journal_items(theirs))
        self.assertEqual(ours.amount_total, theirs.amount_total)
        self.assertEqual(ours.fiscal_position_id, theirs.fiscal_position_id)
        return ours

    def test_same_journal_items_as_standard_invoice(self):
        sub = self._create_subscription(
            lines=[
                (self.product_seat, 3, 10.0, 0.0),
                (self.product_support, 1, 49.0, 10.0),
                (self.product_a, 2, 33.33, 5.0),  # two taxes and its own income account
            ]
        )
        move = self._assert_same_journal_items(sub, date(2026, 1, 1))
        # Two sale taxes on one line, one on the others: more than one tax line.
        self.assertGreaterEqual(
            len(move.line_ids.filtered(lambda line: line.display_type == "tax")), 2
        )

    def test_same_journal_items_with_fiscal_position_and_payment_term(self):
        tax_0 = self.env["account.tax"].create(
            {
                "name": "Export 0%",
                "amount": 0.0,
                "amount_type": "percent",
                "type_tax_use": "sale",
                "company_id": self.company.id,
            }
        )
        export_account = self.company_data["default_account_revenue"].copy()
        fpos = self.env["account.fiscal.position"].create(
            {
                "name": "Export (flex)",
                "company_id": self.company.id,
                "tax_ids": [
                    Command.create({"tax_src_id": self.tax_21.id, "tax_dest_id": tax_0.id})
                ],
                "account_ids": [
                    Command.create(
                        {
                            "account_src_id": self.product_seat.property_account_income_id.id,
                            "account_dest_id": export_account.id,
                        }
                    )
                ],
            }
        )
        partner = self.env["res.partner"].create(
            {
                "name": "Export customer",
                "property_account_position_id": fpos.id,
                "property_payment_term_id": self.pay_terms_b.id,
            }
        )
        sub = self._create_subscription(partner=partner)
        self.assertEqual(sub.fiscal_position_id, fpos)
        move = self._assert_same_journal_items(sub, date(2026, 1, 1))
        self.assertEqual(move.invoice_line_ids.account_id, export_account)
        self.assertEqual(move.invoice_line_ids.tax_ids, tax_0)
        self.assertEqual(move.amount_total, 30.0)
