"""Subscriptions sold from Sales: order → subscription → first invoice, upsell quotations
that are the change's preview, renewal quotations, MRR in the sales analysis.

Every amount is worked out in the comments from price, quantity, days and tax rate."""

from datetime import date

from odoo import Command
from odoo.exceptions import UserError
from odoo.tests import tagged

from .common import FlexCommon


@tagged("post_install", "-at_install")
class TestSale(FlexCommon):
    @classmethod
    def get_default_groups(cls):
        return super().get_default_groups() | cls.env.ref("sales_team.group_sale_manager")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tax_10 = cls.env["account.tax"].create(
            {
                "name": "VAT 10% (flex sale tests)",
                "amount": 10.0,
                "amount_type": "percent",
                "type_tax_use": "sale",
                "company_id": cls.company.id,
            }
        )
        cls.fiscal_position = cls.env["account.fiscal.position"].create(
            {
                "name": "Reduced rate",
                "company_id": cls.company.id,
                "tax_ids": [
                    Command.create({"tax_src_id": cls.tax_21.id, "tax_dest_id": cls.tax_10.id})
                ],
            }
        )
        cls.env["flex.price"].create(
            [
                {
                    "plan_id": cls.plan_monthly.id,
                    "product_id": cls.product_seat.id,
                    "date_start": date(2026, 1, 1),
                    "price_unit": 10.0,
                },
                {
                    "plan_id": cls.plan_monthly.id,
                    "product_id": cls.product_support.id,
                    "date_start": date(2026, 1, 1),
                    "price_unit": 49.0,
                },
            ]
        )
        cls.plan_yearly = cls._create_plan(
            name="Yearly", billing_unit="year", invoicing_mode="post"
        )
        cls.env["flex.price"].create(
            {
                "plan_id": cls.plan_yearly.id,
                "product_id": cls.product_seat.id,
                "date_start": date(2026, 1, 1),
                "price_unit": 100.0,
            }
        )
        cls.one_off = cls._create_product(
            name="Setup fee",
            lst_price=150.0,
            type="service",
            taxes_id=[Command.set(cls.tax_21.ids)],
        )
        cls.salesperson = cls.env["res.users"].create(
            {
                "name": "Sally Sales",
                "login": "flex_sally",
                "company_id": cls.company.id,
                "company_ids": [Command.set(cls.company.ids)],
            }
        )
        cls.analytic_plan = cls.env["account.analytic.plan"].create({"name": "Flex sale tests"})
        cls.analytic = cls.env["account.analytic.account"].create(
            {"name": "Subscriptions", "plan_id": cls.analytic_plan.id, "company_id": cls.company.id}
        )

    # ---------------------------------------------------------------- helpers

    def _order(self, lines, partner=None, start=None, **vals):
        """``lines``: ``[(product, quantity, plan or None, extra line values)]``."""
        return self.env["sale.order"].create(
            {
                "partner_id": (partner or self.partner).id,
                "company_id": self.company.id,
                "flex_start_date": start,
                "order_line": [
                    Command.create(
                        {
                            "product_id": product.id,
                            "product_uom_qty": quantity,
                            **({"flex_plan_id": plan.id} if plan else {}),
                            **extra,
                        }
                    )
                    for product, quantity, plan, extra in lines
                ],
                **vals,
            }
        )

    def _confirm(self, order, today):
        order.with_context(flex_today=today).action_confirm()
        return order.flex_created_subscription_ids

    def assertMoney(self, amount, expected, msg=None):
        self.assertAlmostEqual(amount, expected, places=2, msg=msg)

    # ---------------------------------------------------------- new orders

    def test_01_order_creates_the_subscription_and_its_first_invoice(self):
        self.partner.property_account_position_id = self.fiscal_position
        order = self._order(
            [
                (
                    self.product_seat,
                    3,
                    self.plan_monthly,
                    {"analytic_distribution": {str(self.analytic.id): 100}},
                ),
                (self.product_support, 1, self.plan_monthly, {"discount": 10.0}),
            ],
            start=date(2027, 3, 1),
            user_id=self.salesperson.id,
        )
        self.assertEqual(order.flex_order_kind, "new")
        self.assertEqual(order.fiscal_position_id, self.fiscal_position)
        seat_line, support_line = order.order_line
        self.assertEqual(seat_line.price_unit, 10.0)  # the plan's version
        self.assertEqual(seat_line.tax_id, self.tax_10)  # mapped by the fiscal position
        # 3 × 10.00 = 30.00; 49.00 - 10% = 44.10; untaxed 74.10; 10%: 3.00 + 4.41 = 7.41
        self.assertMoney(order.amount_untaxed, 74.10)
        self.assertMoney(order.amount_total, 81.51)
        # MRR sold: monthly plan, 74.10 a month.
        self.assertMoney(order.flex_mrr, 74.10)

        sub = self._confirm(order, date(2027, 3, 1))
        self.assertEqual(len(sub), 1)
        self.assertEqual(sub.state, "active")
        self.assertEqual(
            (sub.partner_id, sub.plan_id, sub.start_date, sub.user_id, sub.fiscal_position_id),
            (
                self.partner,
                self.plan_monthly,
                date(2027, 3, 1),
                self.salesperson,
                self.fiscal_position,
            ),
        )
        self.assertEqual(sub.sale_order_id, order)
        self.assertEqual(sub.line_ids.mapped("quantity"), [3.0, 1.0])
        self.assertEqual(sub.line_ids.mapped("discount"), [0.0, 10.0])
        # The plan's prices: they follow the plan's versions.
        self.assertFalse(any(sub.line_ids.mapped("price_overridden")))
        invoice = sub.invoice_ids
        self.assertEqual(len(invoice), 1)
        self.assertEqual(invoice.state, "posted")
        self.assertMoney(invoice.amount_untaxed, 74.10)
        self.assertMoney(invoice.amount_tax, 7.41)
        self.assertMoney(invoice.amount_total, 81.51)
        self.assertEqual(invoice.invoice_line_ids.tax_ids, self.tax_10)
        self.assertEqual(invoice.invoice_user_id, self.salesperson)
        self.assertEqual(
            invoice.invoice_line_ids.filtered(
                lambda line: line.product_id == self.product_seat
            ).analytic_distribution,
            {str(self.analytic.id): 100},
        )
        # The order shows the subscription's invoice and has nothing left to invoice.
        self.assertEqual(order.invoice_ids, invoice)
        self.assertEqual(order.order_line.mapped("invoice_status"), ["invoiced", "invoiced"])
        self.assertEqual(order.invoice_status, "invoiced")
        self.assertEqual(order.order_line.mapped("qty_to_invoice"), [0.0, 0.0])
        self.assertEqual(order.order_line.mapped("qty_invoiced"), [3.0, 1.0])
        with self.assertRaises(UserError):
            order._create_invoices()
        # The second month comes from the subscription, not on the order.
        second = self._invoice(sub, date(2027, 4, 1))
        self.assertMoney(second.amount_total, 81.51)
        self.assertEqual(order.invoice_ids, invoice)
        self.assertEqual(len(sub.invoice_ids), 2)

    def test_02_one_subscription_per_plan_and_one_off_lines_stay_with_sales(self):
        order = self._order(
            [
                (self.product_seat, 2, self.plan_monthly, {}),
                (self.product_seat, 4, self.plan_yearly, {"price_unit": 90.0}),
                (self.one_off, 1, None, {}),
            ],
            start=date(2027, 5, 1),
        )
        subs = self._confirm(order, date(2027, 4, 20))
        self.assertEqual(len(subs), 2)
        monthly = subs.filtered(lambda s: s.plan_id == self.plan_monthly)
        yearly = subs.filtered(lambda s: s.plan_id == self.plan_yearly)
        # A price agreed on the order is kept (not the version's 100.00).
        self.assertTrue(yearly.line_ids.price_overridden)
        self.assertEqual(yearly.line_ids.price_unit, 90.0)
        # They start on 1 May: nothing is invoiced yet.
        self.assertFalse(subs.invoice_ids)
        self.assertEqual(order.order_line[:2].mapped("invoice_status"), ["invoiced", "invoiced"])
        # The setup fee is invoiced by Sales, alone: 150.00 + 21% = 181.50.
        self.assertEqual(order.order_line[2].invoice_status, "to invoice")
        invoice = order._create_invoices()
        self.assertEqual(invoice.invoice_line_ids.product_id, self.one_off)
        self.assertMoney(invoice.amount_total, 181.50)
        # 1 May: 2 × 10.00 + 21% = 24.20 and 4 × 90.00 + 21% = 435.60.
        self._invoice(subs, date(2027, 5, 1))
        self.assertMoney(monthly.invoice_ids.amount_total, 24.20)
        self.assertMoney(yearly.invoice_ids.amount_total, 435.60)
        self.assertEqual(len(order.invoice_ids), 3)
        # MRR sold: 20.00 + 360.00 / 12 = 50.00 (the setup fee is not recurring).
        self.assertMoney(order.flex_mrr, 50.0)

    # ---------------------------------------------------------------- upsell

    def _running_sub(self):
        sub = self._create_subscription(
            start=date(2027, 3, 1), lines=[(self.product_seat, 5, None, 0.0)]
        )
        self._invoice(sub, date(2027, 3, 1))
        return sub

    def _seat_change(self, sub, quantity, today):
        return (
            self.env["flex.subscription.change"]
            .with_context(flex_today=today)
            .create(
                {
                    "subscription_id": sub.id,
                    "line_ids": [
                        Command.create(
                            {"subscription_line_id": sub.line_ids.id, "quantity": quantity}
                        )
                    ],
                }
            )
        )

    def _upsell_order(self, change, today):
        action = change.with_context(flex_today=today).action_flex_create_quotation()
        return self.env["sale.order"].browse(action["res_id"])

    def test_03_upsell_quotation_is_the_direct_preview(self):
        sub = self._running_sub()
        today = date(2027, 3, 17)
        direct = self._seat_change(sub, 8, today)._get_preview()
        order = self._upsell_order(self._seat_change(sub, 8, today), today)
        self.assertEqual(order.flex_order_kind, "upsell")
        self.assertEqual(order.flex_subscription_id, sub)
        priced = order.order_line.filtered("flex_item_kind")
        self.assertEqual(len(priced), len(direct["lines"]))
        for line, preview_line in zip(priced, direct["lines"], strict=True):
            self.assertEqual(line.flex_item_kind, preview_line["kind"])
            self.assertEqual(line.flex_period_start, preview_line["start"])
            self.assertEqual(line.flex_period_end, preview_line["last_day"])
            self.assertMoney(line.price_subtotal, float(preview_line["untaxed"]))
            self.assertMoney(line.price_total, float(preview_line["total"]))
        self.assertMoney(order.amount_untaxed, float(direct["untaxed"]))
        self.assertMoney(order.amount_tax, float(direct["tax"]))
        self.assertMoney(order.amount_total, float(direct["total"]))
        # By hand: March has 31 days, 15 left on the 17th.
        # credit -50.00 × 15/31 = -24.19 (tax -5.08); charge 80.00 × 15/31 = 38.71
        # (tax 8.13): untaxed 14.52, tax 3.05, total 17.57.
        self.assertMoney(order.amount_untaxed, 14.52)
        self.assertMoney(order.amount_total, 17.57)
        # MRR: 50.00 → 80.00 a month.
        self.assertMoney(order.flex_mrr, 30.0)

        self._confirm(order, today)
        change = order.flex_change_id
        self.assertEqual(change.state, "applied")
        self.assertEqual(change.source, "sale")
        self.assertEqual(sub.line_ids.quantity, 8.0)
        move = change.move_id
        self.assertEqual(move.move_type, "out_invoice")
        self.assertMoney(move.amount_total, 17.57)
        self.assertEqual(order.invoice_ids, move)
        self.assertEqual(order.invoice_status, "invoiced")
        # Confirmed twice: refused, nothing more.
        with self.assertRaises(UserError):
            self._confirm(order, today)
        self.assertEqual(len(sub.invoice_ids), 2)  # March, and the change's invoice
        self.assertEqual(sub.line_ids.quantity, 8.0)
        # The same change confirmed directly on a twin subscription does the same.
        twin = self._running_sub()
        direct_change = self._seat_change(twin, 8, today)
        direct_change.with_context(flex_today=today).action_confirm()

        def trail(change):
            return (
                [
                    (i.kind, i.period_start, i.period_end, i.days, i.amount)
                    for i in change.item_ids.sorted("id")
                ],
                change.move_id.move_type,
                change.move_id.amount_untaxed,
                change.move_id.amount_total,
                change.subscription_id.line_ids.mapped("quantity"),
                change.subscription_id.mrr,
            )

        self.assertEqual(trail(change), trail(direct_change))

    def test_04_upsell_quotation_out_of_date_is_refused_then_updated(self):
        sub = self._running_sub()
        order = self._upsell_order(self._seat_change(sub, 8, date(2027, 3, 17)), date(2027, 3, 17))
        # Confirmed four days later: the amounts of the 17th no longer hold.
        with self.assertRaises(UserError), self.cr.savepoint():
            self._confirm(order, date(2027, 3, 21))
        self.assertEqual(order.state, "draft")
        self.assertEqual(order.flex_change_id.state, "draft")
        self.assertEqual(sub.line_ids.quantity, 5.0)
        self.assertEqual(len(sub.invoice_ids), 1)
        order.with_context(flex_today=date(2027, 3, 21)).action_flex_update_quotation()
        # 11 days left: credit -50 × 11/31 = -17.74; charge 80 × 11/31 = 28.39:
        # untaxed 10.65; tax -3.73 + 5.96 = 2.23; total 12.88.
        self.assertMoney(order.amount_untaxed, 10.65)
        self.assertMoney(order.amount_total, 12.88)
        self._confirm(order, date(2027, 3, 21))
        self.assertMoney(order.flex_change_id.move_id.amount_total, 12.88)

    def test_05_downgrade_and_cancelled_quotation(self):
        sub = self._running_sub()
        today = date(2027, 3, 17)
        order = self._upsell_order(self._seat_change(sub, 2, today), today)
        # credit -24.19; charge 20 × 15/31 = 9.68: net -14.51; tax -5.08 + 2.03 = -3.05.
        self.assertMoney(order.amount_total, -17.56)
        self.assertMoney(order.flex_mrr, -30.0)
        self._confirm(order, today)
        move = order.flex_change_id.move_id
        self.assertEqual(move.move_type, "out_refund")
        self.assertMoney(move.amount_total, 17.56)
        self.assertEqual(order.invoice_status, "invoiced")
        # A quotation that is cancelled withdraws its change.
        other = self._upsell_order(self._seat_change(sub, 4, today), today)
        other._action_cancel()
        self.assertEqual(other.flex_change_id.state, "cancelled")

    def test_06_switch_to_yearly_on_a_quotation(self):
        sub = self._running_sub()
        today = date(2027, 3, 17)
        change = (
            self.env["flex.subscription.change"]
            .with_context(flex_today=today)
            .create(
                {
                    "subscription_id": sub.id,
                    "change_type": "plan",
                    "new_plan_id": self.plan_yearly.id,
                }
            )
        )
        direct = change._get_preview()
        order = self._upsell_order(change, today)
        self.assertMoney(order.amount_total, float(direct["total"]))
        # credit -24.19; a year from 17 March at 5 × 100.00 = 500.00; net 475.81;
        # tax -5.08 + 105.00 = 99.92; total 575.73.
        self.assertMoney(order.amount_untaxed, 475.81)
        self.assertMoney(order.amount_total, 575.73)
        # MRR: 50.00 → 500.00 / 12 = 41.67.
        self.assertMoney(order.flex_mrr, -8.33)
        self._confirm(order, today)
        self.assertEqual(sub.plan_id, self.plan_yearly)
        self.assertMoney(order.flex_change_id.move_id.amount_total, 575.73)

    # --------------------------------------------------------------- renewal

    def _fixed_term_sub(self, **plan_vals):
        plan = self._create_plan(
            name="Annual contract, monthly billing",
            invoicing_mode="post",
            term_type="fixed",
            term_length=12,
            term_unit="month",
            auto_renew=False,
            **plan_vals,
        )
        self.env["flex.price"].create(
            {
                "plan_id": plan.id,
                "product_id": self.product_seat.id,
                "date_start": date(2026, 1, 1),
                "price_unit": 10.0,
            }
        )
        sub = self._create_subscription(
            plan=plan, start=date(2027, 3, 1), lines=[(self.product_seat, 5, None, 0.0)]
        )
        return plan, sub

    def test_07_renewal_quotation_with_a_new_price_version(self):
        plan, sub = self._fixed_term_sub()
        self.assertEqual((sub.term_end_date, sub.end_date), (date(2028, 3, 1), date(2028, 3, 1)))
        # Meanwhile the price goes up from the next term on.
        self.env["flex.price"].create(
            {
                "plan_id": plan.id,
                "product_id": self.product_seat.id,
                "date_start": date(2028, 3, 1),
                "price_unit": 12.0,
            }
        )
        action = sub.with_context(flex_today=date(2028, 2, 1)).action_flex_renewal_quotation()
        order = self.env["sale.order"].browse(action["res_id"])
        self.assertEqual(order.flex_order_kind, "renewal")
        self.assertEqual(order.flex_renewal_term_end, date(2028, 3, 1))
        line = order.order_line.filtered("product_id")
        self.assertEqual(line.price_unit, 12.0)
        # 5 × 12.00 = 60.00 + 21% = 72.60; MRR 50.00 → 60.00.
        self.assertMoney(order.amount_total, 72.60)
        self.assertMoney(order.flex_mrr, 10.0)
        # The button again: the same quotation.
        again = sub.with_context(flex_today=date(2028, 2, 2)).action_flex_renewal_quotation()
        self.assertEqual(again["res_id"], order.id)
        self._confirm(order, date(2028, 2, 3))
        self.assertEqual((sub.term_end_date, sub.end_date), (date(2029, 3, 1), date(2029, 3, 1)))
        self.assertEqual(order.invoice_status, "invoiced")
        self.assertFalse(sub.change_ids)  # nothing differs from what the plan bills
        # February still at 10.00 (50.00 + 21% = 60.50); March, the new term, at 12.00.
        catch_up = self._invoice(sub, date(2028, 2, 1))  # March 2027 to February 2028
        self.assertEqual(len(catch_up), 12)
        self.assertMoney(catch_up.sorted("flex_period_start")[-1].amount_total, 60.50)
        march = self._invoice(sub, date(2028, 3, 1))
        self.assertMoney(march.amount_total, 72.60)
        self.assertEqual(sub.state, "active")
        self.assertEqual(order.invoice_ids, order.invoice_ids.browse())  # nothing billed by Sales

    def test_08_renewal_with_more_seats_and_a_custom_price(self):
        plan, sub = self._fixed_term_sub()
        order = sub._flex_renewal_order()
        line = order.order_line.filtered("product_id")
        line.write({"product_uom_qty": 6, "price_unit": 9.5})
        # 6 × 9.50 = 57.00 + 21% = 68.97.
        self.assertMoney(order.amount_total, 68.97)
        self._confirm(order, date(2028, 2, 3))
        change = sub.change_ids
        self.assertEqual(change.state, "scheduled")
        self.assertEqual(change.effective_date, date(2028, 3, 1))
        self._invoice(sub, date(2028, 2, 1))  # the first term, at 10.00
        self.env["flex.subscription.change"].with_context(
            flex_today=date(2028, 3, 1)
        )._cron_apply_scheduled()
        self.assertEqual(change.state, "applied")
        self.assertEqual((sub.line_ids.quantity, sub.line_ids.price_unit), (6.0, 9.5))
        self.assertTrue(sub.line_ids.price_overridden)
        self.assertMoney(self._invoice(sub, date(2028, 3, 1)).amount_total, 68.97)

    def test_09_automatic_renewal_quotations(self):
        plan, sub = self._fixed_term_sub(renewal_quotation_days=30)
        Subscription = self.Subscription.with_context(flex_today=date(2028, 1, 30))
        self.assertFalse(Subscription._cron_flex_renewal_quotations() & sub.flex_sale_order_ids)
        Subscription = self.Subscription.with_context(flex_today=date(2028, 2, 1))
        created = Subscription._cron_flex_renewal_quotations()
        order = created.filtered(lambda o: o.flex_subscription_id == sub)
        self.assertEqual(len(order), 1)
        # Once per term, even after the salesperson cancelled it.
        order._action_cancel()
        self.assertFalse(Subscription._cron_flex_renewal_quotations() & sub.flex_sale_order_ids)

    def test_10_renewing_a_closed_subscription_is_refused(self):
        plan, sub = self._fixed_term_sub()
        order = sub._flex_renewal_order()
        sub.with_context(flex_today=date(2027, 6, 1)).action_close_now()
        with self.assertRaises(UserError), self.cr.savepoint():
            self._confirm(order, date(2027, 6, 2))
        self.assertEqual(order.state, "draft")

    # ----------------------------------------------------------- reporting

    def test_11_mrr_sold_in_the_sales_analysis(self):
        other = self.env["res.users"].create(
            {
                "name": "Otto Other",
                "login": "flex_otto",
                "company_id": self.company.id,
                "company_ids": [Command.set(self.company.ids)],
            }
        )
        new = self._order(
            [(self.product_seat, 3, self.plan_monthly, {})], user_id=self.salesperson.id
        )
        self._confirm(new, date(2027, 3, 1))
        sub = new.flex_created_subscription_ids
        change = self._seat_change(sub, 5, date(2027, 3, 17))
        upsell = self._upsell_order(change, date(2027, 3, 17))
        upsell.user_id = other
        self._confirm(upsell, date(2027, 3, 17))
        self.env.flush_all()
        rows = self.env["sale.report"]._read_group(
            [("order_reference", "in", [f"sale.order,{new.id}", f"sale.order,{upsell.id}"])],
            ["user_id", "flex_order_kind"],
            ["flex_mrr:sum"],
        )
        by_user = {(user, kind): mrr for user, kind, mrr in rows}
        # New: 3 × 10.00 a month; upsell: 3 → 5 seats, 20.00 more a month.
        self.assertMoney(by_user[(self.salesperson, "new")], 30.0)
        self.assertMoney(by_user[(other, "upsell")], 20.0)

    def test_12_demo_data_tells_the_sales_story(self):
        """The demo data loaded whole (a demo file that fails is dropped silently by
        Odoo): a confirmed order with its subscription, a quotation, an upsell."""
        if not self.env["ir.module.module"].search([("name", "=", "subscription_flex")]).demo:
            self.skipTest("installed without demo data")
        # The demo company's records: read as the superuser (the test user is in its own
        # company).
        env = self.env(su=True)
        jackson = env.ref("subscription_flex.sale_order_jackson_demo")
        self.assertEqual((jackson.state, jackson.flex_order_kind), ("sale", "new"))
        self.assertEqual(len(jackson.flex_created_subscription_ids), 1)
        self.assertEqual(jackson.invoice_status, "invoiced")
        upsell = env.ref("subscription_flex.change_azure_upsell_demo").sale_order_ids
        self.assertEqual((upsell.state, upsell.flex_order_kind), ("draft", "upsell"))

    def test_13_a_salesperson_without_subscription_rights_sells_one(self):
        seller = self.env["res.users"].create(
            {
                "name": "Sam Seller",
                "login": "flex_sam",
                "company_id": self.company.id,
                "company_ids": [Command.set(self.company.ids)],
                "groups_id": [Command.set(self.env.ref("sales_team.group_sale_salesman").ids)],
            }
        )
        self.assertFalse(seller.has_group("subscription_flex.group_flex_user"))
        order = (
            self.env["sale.order"]
            .with_user(seller)
            .create(
                {
                    "partner_id": self.partner.id,
                    "company_id": self.company.id,
                    "order_line": [
                        Command.create({"product_id": self.product_seat.id, "product_uom_qty": 2})
                    ],
                }
            )
        )
        # The plan is proposed (the first one that prices the product), its price taken.
        self.assertEqual(order.order_line.flex_plan_id, self.plan_monthly)
        self.assertEqual(order.order_line.price_unit, 10.0)
        order.with_context(flex_today=date(2027, 3, 1)).action_confirm()
        sub = order.sudo().flex_created_subscription_ids
        self.assertEqual((sub.state, sub.user_id), ("active", seller))
        # 2 × 10.00 + 21% = 24.20, invoiced by the subscription.
        self.assertMoney(sub.invoice_ids.amount_total, 24.20)
        self.assertEqual(order.invoice_status, "invoiced")

    def test_14_taxes_typed_on_the_order_are_the_subscriptions(self):
        """The seat's product tax is 21%; the order says 10% (typed by hand, no fiscal
        position): every document of the subscription taxes it at 10%."""
        order = self._order(
            [(self.product_seat, 5, self.plan_monthly, {"tax_id": [Command.set(self.tax_10.ids)]})],
            start=date(2027, 3, 1),
        )
        self.assertFalse(order.fiscal_position_id)
        sub = self._confirm(order, date(2027, 3, 1))
        self.assertEqual(sub.line_ids.tax_ids, self.tax_10)
        # 5 × 10.00 = 50.00, 10% = 5.00.
        first = sub.invoice_ids
        self.assertEqual(first.invoice_line_ids.tax_ids, self.tax_10)
        self.assertMoney(first.amount_tax, 5.00)
        self.assertMoney(first.amount_total, 55.00)

        # Upsell to 8 seats on March 17 (15 of 31 days left): credit -50.00 × 15/31 =
        # -24.19, charge 80.00 × 15/31 = 38.71; 10% of each: -2.42 and 3.87 = 1.45;
        # untaxed 14.52, total 15.97.
        today = date(2027, 3, 17)
        preview = self._seat_change(sub, 8, today)._get_preview()
        self.assertMoney(float(preview["tax"]), 1.45)
        self.assertMoney(float(preview["total"]), 15.97)
        order = self._upsell_order(self._seat_change(sub, 8, today), today)
        priced = order.order_line.filtered("flex_item_kind")
        self.assertEqual(priced.tax_id, self.tax_10)
        self.assertMoney(order.amount_total, 15.97)
        # The quotation's tax changed by hand is not what the subscription would bill:
        # refused, nothing applied.
        priced[0].tax_id = self.tax_21
        with self.assertRaises(UserError), self.cr.savepoint():
            self._confirm(order, today)
        self.assertEqual(order.flex_change_id.state, "draft")
        self.assertEqual(sub.line_ids.quantity, 5.0)
        self.assertEqual(len(sub.invoice_ids), 1)
        order.with_context(flex_today=today).action_flex_update_quotation()
        self.assertEqual(order.order_line.filtered("flex_item_kind").tax_id, self.tax_10)
        self._confirm(order, today)
        change = order.flex_change_id
        self.assertEqual(change.item_ids.tax_ids, self.tax_10)
        self.assertEqual(change.move_id.invoice_line_ids.tax_ids, self.tax_10)
        self.assertMoney(change.move_id.amount_tax, 1.45)
        self.assertMoney(change.move_id.amount_total, 15.97)

        # April: 8 × 10.00 = 80.00, 10% = 8.00.
        april = self._invoice(sub, date(2027, 4, 1))
        self.assertEqual(april.invoice_line_ids.tax_ids, self.tax_10)
        self.assertMoney(april.amount_total, 88.00)

        # A fiscal position set on the running subscription maps the product's taxes
        # again (21% → 10% here), as on a sales order.
        other = self._running_sub()
        self.assertEqual(other.line_ids.tax_ids, self.tax_21)
        other.fiscal_position_id = self.fiscal_position
        self.assertEqual(other.line_ids.tax_ids, self.tax_10)
        # April: 5 × 10.00 = 50.00, 10% = 5.00.
        self.assertMoney(self._invoice(other, date(2027, 4, 1)).amount_total, 55.00)

    def test_15_renewal_quotation_keeps_the_lines_taxes(self):
        _plan, sub = self._fixed_term_sub()
        sub.line_ids.tax_ids = self.tax_10
        action = sub.with_context(flex_today=date(2028, 2, 1)).action_flex_renewal_quotation()
        order = self.env["sale.order"].browse(action["res_id"])
        self.assertEqual(order.order_line.filtered("product_id").tax_id, self.tax_10)
        # 5 × 10.00 = 50.00, 10% = 5.00.
        self.assertMoney(order.amount_total, 55.00)
        # Taxed otherwise on the quotation: refused, the term not renewed.
        order.order_line.filtered("product_id").tax_id = self.tax_21
        with self.assertRaisesRegex(UserError, "a renewal keeps them"), self.cr.savepoint():
            self._confirm(order, date(2028, 2, 1))
        self.assertEqual(order.state, "draft")
        self.assertEqual(sub.term_end_date, date(2028, 3, 1))
        self.assertEqual(sub.line_ids.tax_ids, self.tax_10)
        order.order_line.filtered("product_id").tax_id = self.tax_10
        self._confirm(order, date(2028, 2, 1))
        self.assertEqual(sub.term_end_date, date(2029, 3, 1))

    def test_16_upgrade_gives_earlier_items_their_taxes(self):
        """The 18.0.1.2.0 migration: items written before items had taxes get the ones
        they were invoiced with then (the product's, mapped by the fiscal position)."""
        import importlib.util
        from pathlib import Path

        sub = self._running_sub()
        sub.fiscal_position_id = self.fiscal_position  # 21% -> 10%
        change = self._seat_change(sub, 8, date(2027, 3, 17))
        change.with_context(flex_today=date(2027, 3, 17)).action_confirm()
        items = change.item_ids
        self.assertEqual(items.tax_ids, self.tax_10)
        items.sudo().tax_ids = False  # as before the upgrade
        path = Path(__file__).resolve().parents[1] / "migrations" / "18.0.1.2.0" / "post-migrate.py"
        spec = importlib.util.spec_from_file_location("flex_migrate_1_2", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.migrate(self.env.cr, "18.0.1.1.0")
        self.env.invalidate_all()
        self.assertEqual(items.tax_ids, self.tax_10)
