from odoo import fields, models


class AccountMove(models.Model):
    _inherit = "account.move"

    flex_subscription_id = fields.Many2one(
        "flex.subscription",
        string="Subscription",
        index="btree_not_null",
        copy=False,
        readonly=True,
        check_company=True,
    )
    flex_billing_kind = fields.Selection(
        [
            ("recurring", "Recurring"),
            ("usage_final", "Final usage"),
            ("change", "Change (proration)"),
            ("usage_split", "Usage up to a change"),
        ],
        string="Subscription Billing",
        copy=False,
        readonly=True,
        help="Recurring: the invoice of one billing period, created by the invoicing cron.",
    )
    flex_period_start = fields.Date(string="Service From", copy=False, readonly=True)
    flex_period_end = fields.Date(string="Service To", copy=False, readonly=True)

    def init(self):
        result = super().init()
        # One recurring invoice per subscription and period, whatever the callers do
        # (two cron workers, a double click, a retry after a crash): the database says no.
        self.env.cr.execute(
            """
            CREATE UNIQUE INDEX IF NOT EXISTS account_move_flex_recurring_period_uniq
                ON account_move (flex_subscription_id, flex_period_start)
             WHERE flex_billing_kind = 'recurring' AND move_type = 'out_invoice'
            """
        )
        # The last usage of an ended subscription is billed once.
        self.env.cr.execute(
            """
            CREATE UNIQUE INDEX IF NOT EXISTS account_move_flex_final_usage_uniq
                ON account_move (flex_subscription_id)
             WHERE flex_billing_kind = 'usage_final' AND move_type = 'out_invoice'
            """
        )
        return result

    def write(self, vals):
        # _post sets ``checked`` move by move when the journal auto-checks on post; flex
        # creates those invoices checked already, so these writes would change nothing
        # (one full account.move write per invoice, with its line synchronisation).
        if (
            self.env.context.get("flex_skip_noop_checked")
            and vals.keys() == {"checked"}
            and all(move.checked == bool(vals["checked"]) for move in self)
        ):
            return True
        return super().write(vals)

    def _flex_finalize(self):
        """Post and send freshly created subscription invoices as their plan says."""
        to_post = self.filtered(
            lambda m: m.flex_subscription_id.plan_id.invoicing_mode in ("post", "send")
        )
        if to_post:
            to_post.with_context(flex_skip_noop_checked=True)._post(soft=False)
            to_post._flex_apply_order_payments()
        to_send = to_post.filtered(
            lambda m: m.flex_subscription_id.plan_id.invoicing_mode == "send"
        )
        if to_send:
            # Odoo's own "send" cron renders and mails them in the background, in batches.
            to_send.sending_data = {
                "author_user_id": self.env.user.id,
                "author_partner_id": self.env.user.partner_id.id,
            }
            self.env.ref("account.ir_cron_account_move_send")._trigger()

    def _flex_apply_order_payments(self):
        """A subscription sold on a quotation paid online before its first invoice (it
        starts later): the payment waits as the customer's credit, and pays the
        subscription's invoices as they are posted, as Odoo's *Add* on an outstanding
        credit does. One query for the batch finds the few invoices concerned (this runs
        for every invoice the engine posts)."""
        moves = self.filtered(
            lambda m: m.move_type == "out_invoice" and m.flex_subscription_id.sale_order_id
        )
        if not moves:
            return
        paid = (
            self.env["payment.transaction"]
            .sudo()
            .search(
                [
                    ("sale_order_ids", "in", moves.flex_subscription_id.sale_order_id.ids),
                    ("state", "=", "done"),
                    ("payment_id", "!=", False),
                ]
            )
        )
        for move in moves:
            order = move.flex_subscription_id.sale_order_id
            transactions = paid.filtered(lambda tx, order=order: order in tx.sale_order_ids)
            if not transactions:
                continue
            customer = move.commercial_partner_id
            credits = transactions.payment_id.move_id.line_ids.filtered(
                lambda line, customer=customer: (
                    line.account_id.account_type == "asset_receivable"
                    and line.partner_id.commercial_partner_id == customer
                    and not line.reconciled
                    and line.parent_state == "posted"
                    and line.balance < 0
                )
            )
            for credit in credits:
                if move.currency_id.is_zero(move.amount_residual):
                    break
                move.sudo().js_assign_outstanding_line(credit.id)
                transactions.invoice_ids = [fields.Command.link(move.id)]

    def button_cancel(self):
        result = super().button_cancel()
        # Proration cancelled with its document is owed again: the next invoice bills it.
        self.line_ids.flex_change_item_id._sync_state()
        return result

    def unlink(self):
        # Before super(): account.move.unlink deletes the lines first, and the usage
        # they billed must be found through them.
        self._flex_rewind()
        return super().unlink()

    def _flex_rewind(self):
        """Deleting the last draft of a subscription makes its period due again, and the
        usage it billed pending again (billed by the next invoice, never lost). If the
        deletion is refused (posted invoice), the transaction rolls this back with it."""
        flex_moves = self.filtered("flex_subscription_id")
        if not flex_moves:
            return
        for move in flex_moves:
            sub = move.flex_subscription_id
            usage_lines = move.line_ids.filtered(lambda line: line.flex_line_kind == "usage")
            if move.flex_billing_kind == "recurring" and sub.next_period_start == fields.Date.add(
                move.flex_period_end, days=1
            ):
                sub.next_period_start = move.flex_period_start
            # The newest usage window of the invoice (late ones are older) ends at its cut.
            newest = usage_lines.sorted("flex_period_end")[-1:] if usage_lines else usage_lines
            if newest and sub.usage_billed_until == fields.Date.add(newest.flex_period_end, days=1):
                sub.usage_billed_until = newest.flex_period_start
