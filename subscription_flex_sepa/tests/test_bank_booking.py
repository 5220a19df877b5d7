"""The bookings ``flex.sepa.booking`` writes in SQL are the ones Odoo's ORM writes: the
same entry booked both ways gives the same rows, column by column, and so does a
reconciliation, and so does a chatter note."""

from datetime import date

from odoo.tests import freeze_time, tagged

from .common import SepaCommon

# Columns that differ by construction (identities, numbering, timestamps).
IGNORED = {
    "id",
    "name",
    "sequence_number",
    "move_id",
    "move_name",
    "statement_line_id",
    "internal_index",
    "create_date",
    "write_date",
    "full_reconcile_id",
    "matching_number",
    "message_id",
    "res_id",
    "record_name",
    "date",
    "debit_move_id",
    "credit_move_id",
    "payment_id",
    "ref",
}


@tagged("post_install", "-at_install")
class TestBankBooking(SepaCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.sdd_journal.currency_id = cls.eur
        cls.booking = cls.env["flex.sepa.booking"]
        cls.partner, account = cls._debtor("Booked", "de")
        cls._mandate(cls.partner, account)
        cls.other = cls.env["account.account"].search(
            [("account_type", "=", "income"), ("company_ids", "in", cls.company.id)], limit=1
        )

    def _rows(self, table, where, params):
        self.env.flush_all()
        self.env.cr.execute(f"SELECT * FROM {table} WHERE {where}", params)  # noqa: S608
        names = [column[0] for column in self.env.cr.description]
        return [
            {k: v for k, v in zip(names, row, strict=True) if k not in IGNORED}
            for row in self.env.cr.fetchall()
        ]

    def _booked(self, st_line):
        lines = self._rows(
            "account_move_line", "move_id = %s ORDER BY account_id, balance", [st_line.move_id.id]
        )
        return (
            self._rows("account_move", "id = %s", [st_line.move_id.id]),
            self._rows("account_bank_statement_line", "id = %s", [st_line.id]),
            lines,
        )

    def _item(self, amount, counterparts):
        return {
            "date": date(2027, 3, 8),
            "amount": amount,
            "payment_ref": "SEPA DD test",
            "ref": "BANK-REF",
            "partner_id": self.partner.id,
            "counterparts": counterparts,
        }

    def test_statement_lines_as_the_orm_books_them(self):
        statement = self.env["account.bank.statement"].create(
            {"name": "S", "journal_id": self.sdd_journal.id}
        )
        items = [
            self._item(10.0, None),  # the ORM books the month's first one
            self._item(
                -64.0,
                [
                    (self.other.id, self.partner.id, 60.5, 60.5, "INV/1"),
                    (self.other.id, False, 3.5, 3.5, "Bank fee"),
                ],
            ),
            self._item(181.5, None),
        ]
        booked = self.booking._book_statement_lines(self.sdd_journal, statement, items)
        self.assertEqual(booked.mapped("amount"), [10.0, -64.0, 181.5])
        currency = self.sdd_journal.currency_id
        for st_line, item in zip(booked[1:], items[1:], strict=True):
            orm = self.env["account.bank.statement.line"].create(
                self.booking._orm_statement_line_vals(self.sdd_journal, statement, item, currency)
            )
            self.assertEqual(self._booked(st_line), self._booked(orm))
            self.assertEqual(st_line.is_reconciled, orm.is_reconciled)
            self.assertEqual(st_line.amount_residual, orm.amount_residual)
        # Numbered after the first one, in order.
        numbers = booked.move_id.mapped("sequence_number")
        self.assertEqual(numbers, [numbers[0], numbers[0] + 1, numbers[0] + 2])
        self.assertEqual(len(set(booked.move_id.mapped("name"))), 3)
        self.assertEqual(statement.line_ids, booked | statement.line_ids)

    def test_reconciliation_as_the_orm_makes_it(self):
        with freeze_time("2027-03-01"):
            subs = self.env["flex.subscription"]
            for _i in range(2):
                subs |= self._sepa_subscription(self.partner, 100.0)
            subs._create_recurring_invoices(date(2027, 3, 1))
            batch = self._batch(date(2027, 3, 1))
            batch.action_generate()
        ours, theirs = batch.line_ids
        results = []
        for line, by_sql in ((ours, True), (theirs, False)):
            payment = line.payment_id
            outstanding = payment.move_id.line_ids.filtered(
                lambda aml, p=payment: aml.account_id == p.outstanding_account_id
            )
            item = self._item(
                121.0,
                [
                    (
                        outstanding.account_id.id,
                        self.partner.id,
                        -121.0,
                        -121.0,
                        line.invoice_id.name,
                    )
                ],
            )
            st_line = self.booking._book_statement_lines(
                self.sdd_journal, self.env["account.bank.statement"], [item]
            )
            bank = st_line.move_id.line_ids.filtered(
                lambda aml, o=outstanding: aml.account_id == o.account_id
            )
            if by_sql:
                self.booking._reconcile_pairs([(outstanding.id, bank.id)])
            else:
                (outstanding | bank).reconcile()
            partial = outstanding.matched_credit_ids
            results.append(
                (
                    self._rows("account_partial_reconcile", "id = %s", [partial.id]),
                    self._rows(
                        "account_move_line",
                        "id IN %s ORDER BY balance",
                        [(outstanding.id, bank.id)],
                    ),
                    payment.state,
                    payment.is_matched,
                    line.invoice_id.payment_state,
                    outstanding.matching_number == str(outstanding.full_reconcile_id.id),
                    st_line.is_reconciled,
                )
            )
        # Only identities differ (the ORM rows above drop them).
        self.assertEqual(results[0], results[1])
        self.assertEqual(results[0][2:], ("paid", True, "paid", True, True))

    def test_unreconcile_as_the_orm_does(self):
        with freeze_time("2027-03-01"):
            subs = self.env["flex.subscription"]
            for _i in range(2):
                subs |= self._sepa_subscription(self.partner, 100.0)
            invoices = subs._create_recurring_invoices(date(2027, 3, 1))
            batch = self._batch(date(2027, 3, 1))
            batch.action_generate()
        receivables = [
            line.payment_id.move_id.line_ids.filtered(
                lambda aml: aml.account_id.account_type == "asset_receivable"
            )
            for line in batch.line_ids
        ]
        touched = self.booking._unreconcile(receivables[0].ids)
        self.booking._reconcile_pairs([], touched)
        receivables[1].remove_move_reconcile()
        states = [
            (
                self._rows("account_move_line", "id = %s", [receivable.id]),
                {
                    key: value
                    for key, value in self._rows("account_move", "id = %s", [invoice.id])[0].items()
                    if key.startswith("amount_") or key in ("payment_state", "write_uid")
                },
                invoice.payment_state,
                invoice.amount_residual,
            )
            for receivable, invoice in zip(receivables, invoices.sorted("id"), strict=True)
        ]
        self.assertEqual(states[0], states[1])
        self.assertEqual(states[0][2:], ("not_paid", 121.0))

    def test_notes_as_message_post_writes_them(self):
        invoices = self.env["account.move"].create(
            [{"move_type": "out_invoice", "partner_id": self.partner.id} for _i in range(4)]
        )
        self.booking._post_notes(
            [("account.move", invoice.id, f"Note {i}") for i, invoice in enumerate(invoices[:3])]
        )
        # The same note by Odoo, on an invoice in the same place (no message before).
        invoices[3].message_post(body="Note 2", subtype_xmlid="mail.mt_note")
        notes = [
            invoice.message_ids.filtered(lambda m: m.body and "Note" in m.body)
            for invoice in invoices
        ]
        self.assertEqual([len(n) for n in notes], [1, 1, 1, 1])
        sql_note, orm_note = notes[2], notes[3]
        self.assertEqual(
            self._rows("mail_message", "id = %s", [sql_note.id]),
            self._rows("mail_message", "id = %s", [orm_note.id]),
        )
        self.assertEqual(sql_note.record_name, invoices[2].display_name)
        self.assertIn("Note 1", notes[1].body)
