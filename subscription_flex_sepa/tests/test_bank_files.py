"""Bank files end to end: the invoices of direct-debit subscriptions are collected in a
pain.008 batch, then the bank answers with files written by ``bankfiles`` (an
independent implementation of ISO 20022, validated against the official schemas).

Amounts: every subscription bills 100.00 + 21 % tax = 121.00 per invoice (50.00 + 21 % =
60.50 for the second debtor), worked out by hand."""

import base64
import logging
import os
import time
from datetime import date
from decimal import Decimal

from odoo.exceptions import AccessError, UserError
from odoo.tests import freeze_time, new_test_user, tagged

from . import bankfiles
from .common import CREDITOR_IBAN, SepaCommon

_logger = logging.getLogger(__name__)
D = Decimal
ZERO = Decimal("0.00")
COLLECTED = date(2027, 3, 8)  # due 1 March, told 5 days ahead, 6 March a Saturday


@tagged("post_install", "-at_install")
class TestBankFiles(SepaCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.sdd_journal.currency_id = cls.eur
        cls.fee_account = cls.env["account.account"].create(
            {"name": "Bank fees", "code": "627100", "account_type": "expense"}
        )
        cls.company.flex_sepa_fee_account_id = cls.fee_account
        cls.debtors = {}
        for key, iban in (("a", "de"), ("b", "fr"), ("c", "it")):
            partner, account = cls._debtor(
                f"Debtor {key.upper()}", iban, email=f"{key}@example.com"
            )
            mandate = cls._mandate(partner, account)
            cls.debtors[key] = (partner, mandate)

    # ------------------------------------------------------------------ helpers

    def _collect(self, prices=(("a", 100.0), ("b", 50.0))):
        """Invoices of 1 March, collected in one generated batch (FRST, 8 March)."""
        with freeze_time("2027-03-01"):
            subs = self.env["flex.subscription"]
            for key, price in prices:
                subs |= self._sepa_subscription(self.debtors[key][0], price)
            invoices = subs._create_recurring_invoices(date(2027, 3, 1))
            batch = self._batch(date(2027, 3, 1))
            batch.action_generate()
        lines = {
            key: batch.line_ids.filtered(
                lambda ln, p=self.debtors[key][0]: ln.partner_id == p and ln.invoice_id in invoices
            )
            for key, _price in prices
        }
        return batch, invoices, lines

    def _import(self, data, name="bank.xml"):
        return self.env["flex.sepa.bank.file"]._import_file(data, filename=name)

    def _camt053(self, entries, version="camt.053.001.08", **kw):
        return bankfiles.camt053(version, CREDITOR_IBAN, entries, **kw)

    def _camt054(self, entries, version="camt.054.001.08", **kw):
        return bankfiles.camt054(version, CREDITOR_IBAN, entries, **kw)

    def _return_entry(self, line, reason, fee=ZERO, ref=None, day=date(2027, 3, 10)):
        return {
            "kind": "return",
            "amount": D(str(line.amount)),
            "fee": fee,
            "date": day,
            "ref": ref or f"RET-{line.end_to_end_id}",
            "end_to_end_id": line.end_to_end_id,
            "reason": reason,
            "mandate_id": line.mandate_id.reference,
        }

    def assertSettled(self, lines):
        for line in lines:
            self.assertEqual(line.state, "settled")
            self.assertEqual(line.payment_id.state, "paid")
            self.assertTrue(line.payment_id.is_matched)
            self.assertEqual(line.invoice_id.payment_state, "paid")

    # ------------------------------------------------------------------ settlement

    def test_batch_booking_settles_both_versions(self):
        for version in ("camt.053.001.02", "camt.053.001.08"):
            with self.subTest(version=version):
                batch, invoices, lines = self._collect()
                both = lines["a"] | lines["b"]
                self.assertEqual(set(both.mapped("amount")), {121.0, 60.5})
                self.assertEqual([inv.payment_state for inv in invoices], ["in_payment"] * 2)
                pmt_inf = both[0].pmt_inf_id
                self.assertEqual(set(both.mapped("pmt_inf_id")), {pmt_inf})
                # FRST the first time, RCUR for the second round of the same mandates.
                sequence = "FRST" if version.endswith("02") else "RCUR"
                self.assertEqual(pmt_inf, f"{batch.name}-{sequence}-2027-03-08")
                data = self._camt053(
                    [
                        {
                            "kind": "batch",
                            "amount": D("181.50"),  # 121.00 + 60.50
                            "date": COLLECTED,
                            "ref": f"BOOK-{version}-1",
                            "msg_id": batch.name,
                            "pmt_inf_id": pmt_inf,
                            "count": 2,
                            "details": None,
                        }
                    ],
                    version=version,
                    msg_id=f"STMT-{version}",
                    opening=D("1000.00"),
                )
                bank_file = self._import(data)
                self.assertEqual(bank_file.matched_count, 1)
                self.assertEqual(bank_file.unmatched_count, 0)
                st_line = bank_file.entry_ids.statement_line_id
                self.assertEqual(st_line.journal_id, self.sdd_journal)
                self.assertEqual(st_line.amount, 181.5)
                self.assertTrue(st_line.is_reconciled)
                self.assertEqual(bank_file.statement_id.balance_start, 1000.0)
                self.assertEqual(bank_file.statement_id.balance_end_real, 1181.5)
                self.assertSettled(both)

    def test_per_transaction_settles_both_versions(self):
        for version in ("camt.054.001.02", "camt.053.001.08"):
            with self.subTest(version=version):
                _batch, _invoices, lines = self._collect()
                entries = [
                    {
                        "kind": "credit",
                        "amount": D(str(line.amount)),
                        "date": COLLECTED,
                        "ref": f"TX-{version}-{line.end_to_end_id}",
                        "end_to_end_id": line.end_to_end_id,
                        "pmt_inf_id": line.pmt_inf_id,
                    }
                    for line in lines["a"] | lines["b"]
                ]
                build = self._camt054 if version.startswith("camt.054") else self._camt053
                bank_file = self._import(build(entries, version=version, msg_id=version))
                self.assertEqual(bank_file.matched_count, 2)
                amounts = sorted(bank_file.entry_ids.statement_line_id.mapped("amount"))
                self.assertEqual(amounts, [60.5, 121.0])
                self.assertSettled(lines["a"] | lines["b"])

    def test_rate_moved_before_settlement(self):
        """The company keeps its books in another currency than the euro account: a
        settlement booked at another rate than the payment's goes through Odoo's
        reconciliation, which books the exchange difference."""
        _batch, _invoices, lines = self._collect(prices=(("a", 100.0),))
        self.env["res.currency.rate"].create(
            {
                "name": "2027-03-09",
                "rate": 1.25,
                "currency_id": self.eur.id,
                "company_id": self.company.id,
            }
        )
        bank_file = self._import(
            self._camt053(
                [
                    {
                        "kind": "credit",
                        "amount": D("121.00"),
                        "date": date(2027, 3, 9),
                        "ref": "FX-1",
                        "end_to_end_id": lines["a"].end_to_end_id,
                    }
                ]
            )
        )
        self.assertEqual(bank_file.matched_count, 1)
        self.assertSettled(lines["a"])
        st_line = bank_file.entry_ids.statement_line_id
        # 121.00 EUR at 1.25 EUR per unit of the company's currency = 96.80.
        liquidity = st_line.move_id.line_ids.filtered(lambda aml: aml.balance > 0)
        self.assertEqual(liquidity.balance, 96.8)
        outstanding = lines["a"].payment_id.move_id.line_ids.filtered(
            lambda aml: aml.account_id == lines["a"].payment_id.outstanding_account_id
        )
        self.assertEqual(outstanding.balance, 121.0)  # booked at 1.0 on 8 March
        self.assertTrue(outstanding.reconciled)
        exchange = (
            outstanding.full_reconcile_id.exchange_move_id
            | outstanding.matched_credit_ids.exchange_move_id
            | outstanding.full_reconcile_id.partial_reconcile_ids.exchange_move_id
        )
        self.assertEqual(len(exchange), 1)
        self.assertEqual(sum(exchange.line_ids.mapped("debit")), 24.2)  # 121.00 - 96.80

    def test_batch_with_details_and_amount_mismatch(self):
        _batch, _invoices, lines = self._collect()
        both = lines["a"] | lines["b"]
        details = [
            {"end_to_end_id": line.end_to_end_id, "amount": D(str(line.amount))} for line in both
        ]
        wrong = self._camt053(
            [
                {
                    "kind": "batch",
                    "amount": D("181.00"),  # 50 cents short of 181.50
                    "date": COLLECTED,
                    "ref": "BOOK-WRONG",
                    "msg_id": "x",
                    "pmt_inf_id": both[0].pmt_inf_id,
                    "count": 2,
                    "details": details,
                }
            ]
        )
        bank_file = self._import(wrong)
        entry = bank_file.entry_ids
        self.assertEqual(entry.state, "unmatched")
        self.assertIn("181.00 does not match the 2 debits in process (181.50)", entry.reason)
        # Never forced: an open line on the suspense account, the debits still in process.
        self.assertFalse(entry.statement_line_id.is_reconciled)
        self.assertEqual(entry.statement_line_id.amount, 181.0)
        self.assertEqual(set(both.mapped("state")), {"collected"})
        self.assertEqual(set(both.invoice_id.mapped("payment_state")), {"in_payment"})

    # ------------------------------------------------------------------ returns

    def test_mixed_file_settlement_return_and_unknown(self):
        _batch, _invoices, lines = self._collect()
        a, b = lines["a"], lines["b"]
        self.company.write(
            {
                "flex_sepa_reinvoice_fee": True,
                "flex_sepa_fee_product_id": self._create_product(
                    name="Return fee", list_price=0.0, taxes_id=False
                ).id,
            }
        )
        data = self._camt053(
            [
                {
                    "kind": "batch",
                    "amount": D("181.50"),
                    "date": COLLECTED,
                    "ref": "BOOK-1",
                    "msg_id": "m",
                    "pmt_inf_id": a.pmt_inf_id,
                    "count": 2,
                    "details": None,
                },
                self._return_entry(b, "AM04", fee=D("3.50")),
                {
                    "kind": "other",
                    "amount": D("42.00"),
                    "sign": "CRDT",
                    "date": COLLECTED,
                    "ref": "WIRE-1",
                    "info": "Customer transfer INV/1999/0001",
                },
                {
                    "kind": "return",
                    "amount": D("10.00"),
                    "fee": D("0.00"),
                    "date": COLLECTED,
                    "ref": "RET-UNKNOWN",
                    "end_to_end_id": "NOT-OURS-1",
                    "reason": "AM04",
                },
            ]
        )
        bank_file = self._import(data)
        by_ref = {entry.bank_ref: entry for entry in bank_file.entry_ids}
        self.assertEqual(by_ref["BOOK-1"].state, "matched")
        self.assertEqual(by_ref["RET-" + b.end_to_end_id].state, "returned")
        self.assertEqual(by_ref["WIRE-1"].state, "unmatched")
        self.assertIn("NOT-OURS-1", by_ref["RET-UNKNOWN"].reason)
        # Every entry is in the bank journal, the unknown ones open.
        self.assertEqual(len(bank_file.statement_id.line_ids), 4)
        self.assertFalse(by_ref["WIRE-1"].statement_line_id.is_reconciled)
        self.assertFalse(by_ref["RET-UNKNOWN"].statement_line_id.is_reconciled)
        # Debtor A settled and paid.
        self.assertSettled(a)
        # Debtor B: collected, credited in the batch, then returned with a 3.50 fee.
        ret = b.return_ids
        self.assertEqual(
            (ret.return_type, ret.reason_code, ret.reason, ret.amount, ret.fee),
            ("return", "AM04", "Insufficient funds", 60.5, 3.5),
        )
        self.assertEqual(b.state, "returned")
        self.assertEqual(b.payment_id.state, "rejected")
        invoice_b = b.invoice_id
        self.assertEqual(invoice_b.payment_state, "not_paid")
        self.assertEqual(invoice_b.amount_residual, 60.5)
        return_line = ret.statement_line_id
        self.assertEqual(return_line.amount, -64.0)  # 60.50 + 3.50
        self.assertTrue(return_line.is_reconciled)
        fee_item = return_line.move_id.line_ids.filtered(
            lambda aml: aml.account_id == self.fee_account
        )
        self.assertEqual(fee_item.debit, 3.5)
        # The fee re-invoiced to the customer's subscription, posted.
        self.assertEqual(ret.fee_invoice_id.amount_total, 3.5)
        self.assertEqual(ret.fee_invoice_id.state, "posted")
        self.assertEqual(ret.fee_invoice_id.flex_subscription_id, invoice_b.flex_subscription_id)
        # The customer's balance: 60.50 again (plus the fee invoice), nothing lost.
        receivable = self.env["account.move.line"].search(
            [
                ("partner_id", "=", b.partner_id.id),
                ("account_id.account_type", "=", "asset_receivable"),
                ("parent_state", "=", "posted"),
            ]
        )
        self.assertAlmostEqual(sum(receivable.mapped("balance")), 64.0, places=2)

    def test_am04_return_retried_next_batch_then_paid(self):
        _batch, _invoices, lines = self._collect(prices=(("a", 100.0),))
        first = lines["a"]
        settlement = self._camt053(
            [
                {
                    "kind": "credit",
                    "amount": D("121.00"),
                    "date": COLLECTED,
                    "ref": "S-1",
                    "end_to_end_id": first.end_to_end_id,
                }
            ],
            msg_id="S-1",
        )
        self._import(settlement)
        self.assertSettled(first)
        with freeze_time("2027-03-10"):
            returned = self._import(
                self._camt054([self._return_entry(first, "AM04")], msg_id="R-1"), "r.xml"
            )
        self.assertEqual(returned.return_count, 1)
        invoice = first.invoice_id
        self.assertEqual(invoice.payment_state, "not_paid")
        self.assertEqual(first.return_ids.action, "retry")
        self.assertEqual(invoice.flex_sepa_retry_date, date(2027, 3, 15))  # 10 March + 5 days
        self.assertEqual(first.return_ids.mail_state, "pending")
        self.assertEqual(invoice.flex_sepa_risk, "retry")
        self.assertEqual(invoice.flex_sepa_risk_date, date(2027, 3, 10))
        note = invoice.message_ids.filtered(lambda m: "Direct debit" in (m.body or ""))
        self.assertIn("AM04 Insufficient funds. Retry 1 of 2", note.body)
        self.assertFalse(invoice.activity_ids)  # a retry needs nobody yet
        # The customer is told (Odoo's mail queue), once.
        mails = self.env["flex.sepa.return"]._cron_send_mails()
        self.assertEqual(mails, first.return_ids)
        self.assertFalse(self.env["flex.sepa.return"]._cron_send_mails())
        mail = self.env["mail.mail"].search(
            [("model", "=", "flex.sepa.return"), ("res_id", "=", mails.id)]
        )
        self.assertEqual(len(mail), 1)
        self.assertIn("15", mail.body_html)
        # Next batch: the same invoice, a new EndToEndId, not before the retry date; RCUR.
        with freeze_time("2027-03-11"):
            batch2 = self._batch(date(2027, 3, 11))
            retry = batch2.line_ids.filtered(lambda ln: ln.invoice_id == invoice)
            self.assertEqual(retry.end_to_end_id, f"{first.end_to_end_id}-R1")
            self.assertEqual(retry.amount, 121.0)
            self.assertEqual(retry.sequence_type, "RCUR")
            self.assertEqual(retry.collection_date, date(2027, 3, 16))  # 11 + 5 days
            batch2.action_generate()
        self.assertEqual(invoice.payment_state, "in_payment")
        self._import(
            self._camt053(
                [
                    {
                        "kind": "credit",
                        "amount": D("121.00"),
                        "date": date(2027, 3, 16),
                        "ref": "S-2",
                        "end_to_end_id": retry.end_to_end_id,
                    }
                ],
                msg_id="S-2",
            )
        )
        self.assertSettled(retry)
        with freeze_time("2027-03-17"):
            self.env["account.move"]._flex_sepa_update_risk()
        self.assertFalse(invoice.flex_sepa_risk)

    def test_retries_are_bounded(self):
        _batch, _invoices, lines = self._collect(prices=(("a", 100.0),))
        line = lines["a"]
        invoice = line.invoice_id
        for attempt in range(3):  # AM04 allows 2 retries: the third return stops them
            self._import(self._camt054([self._return_entry(line, "AM04")], msg_id=f"R{attempt}"))
            if attempt < 2:
                self.assertEqual(invoice.flex_sepa_hold, False)
                with freeze_time("2027-04-01"):
                    batch = self._batch(date(2027, 4, 1))
                    line = batch.line_ids.filtered(lambda ln, i=invoice: ln.invoice_id == i)
                    self.assertEqual(len(line), 1)
                    batch.action_generate()
        self.assertEqual(invoice.flex_sepa_hold, "manual")
        self.assertIn("Returned 3 times", line.return_ids.outcome)
        self.assertTrue(invoice.activity_ids)
        with freeze_time("2027-04-20"):
            batch = self._batch(date(2027, 4, 20))
        excluded = batch.excluded_line_ids.filtered(lambda ln: ln.invoice_id == invoice)
        self.assertIn("Held after a returned debit", excluded.reason)

    def test_md01_suspends_mandate_and_emails_customer(self):
        _batch, _invoices, lines = self._collect(prices=(("c", 100.0),))
        line = lines["c"]
        mandate = line.mandate_id
        self._import(self._camt054([self._return_entry(line, "MD01")], msg_id="MD01"))
        self.assertEqual(mandate.state, "suspended")
        self.assertEqual(line.invoice_id.flex_sepa_hold, "mandate")
        self.assertEqual(line.invoice_id.flex_sepa_risk, "returned")
        self.assertTrue(line.invoice_id.activity_ids)
        self.env["flex.sepa.return"]._cron_send_mails()
        mail = self.env["mail.mail"].search(
            [("model", "=", "flex.sepa.return"), ("res_id", "=", line.return_ids.id)]
        )
        self.assertEqual(mail.recipient_ids, line.invoice_id.partner_id)
        self.assertIn("sign a new SEPA mandate", mail.body_html)
        # A new valid mandate lifts the hold.
        partner = self.debtors["c"][0]
        account = self.env["res.partner.bank"].create(
            {"acc_number": "AT611904300234573201", "partner_id": partner.id}
        )
        self._mandate(partner, account)
        self.assertFalse(line.invoice_id.flex_sepa_hold)

    def test_md06_refund_is_a_dispute(self):
        _batch, _invoices, lines = self._collect(prices=(("a", 100.0),))
        line = lines["a"]
        self._import(self._camt054([self._return_entry(line, "MD06")], msg_id="MD06"))
        self.assertEqual(line.return_ids.return_type, "refund")
        self.assertEqual(line.invoice_id.flex_sepa_hold, "dispute")
        self.assertEqual(line.invoice_id.flex_sepa_risk, "dispute")

    # ------------------------------------------------------------------ pain.002

    def test_pain002_rejects_both_versions(self):
        for version in ("pain.002.001.03", "pain.002.001.10"):
            with self.subTest(version=version):
                batch, _invoices, lines = self._collect()
                a, b = lines["a"], lines["b"]
                self.assertEqual(a.sequence_type, "FRST")
                report = bankfiles.pain002(
                    version,
                    batch.name,
                    [
                        {
                            "pmt_inf_id": a.pmt_inf_id,
                            "end_to_end_id": a.end_to_end_id,
                            "status": "RJCT",
                            "reason": "AC04",
                            "amount": D("121.00"),
                            "collection_date": COLLECTED,
                        }
                    ],
                    msg_id=f"STS-{version}",
                    group_status="PART",
                )
                bank_file = self._import(report)
                self.assertEqual(bank_file.batch_id, batch)
                self.assertEqual(a.state, "rejected")
                self.assertEqual(a.payment_id.state, "rejected")
                self.assertEqual(a.invoice_id.payment_state, "not_paid")
                self.assertEqual(a.invoice_id.amount_residual, 121.0)
                self.assertEqual(a.return_ids.return_type, "reject")
                self.assertFalse(a.return_ids.statement_line_id)  # no money moved
                self.assertEqual(a.mandate_id.state, "suspended")
                # The bank credits the block without the rejected debit: it matches.
                self._import(
                    self._camt053(
                        [
                            {
                                "kind": "batch",
                                "amount": D("60.50"),
                                "date": COLLECTED,
                                "ref": f"B-{version}",
                                "msg_id": batch.name,
                                "pmt_inf_id": b.pmt_inf_id,
                                "count": 1,
                                "details": None,
                            }
                        ],
                        msg_id=f"S-{version}",
                    )
                )
                self.assertSettled(b)
                # Reactivate debtor A's mandate for the next round.
                a.mandate_id.action_validate()

    def test_batch_credit_before_pain002_is_matched_when_it_comes(self):
        batch, _invoices, lines = self._collect()
        a, b = lines["a"], lines["b"]
        credit = self._import(
            self._camt053(
                [
                    {
                        "kind": "batch",
                        "amount": D("60.50"),
                        "date": COLLECTED,
                        "ref": "EARLY",
                        "msg_id": batch.name,
                        "pmt_inf_id": a.pmt_inf_id,
                        "count": 1,
                        "details": None,
                    }
                ]
            )
        )
        self.assertEqual(credit.entry_ids.state, "unmatched")
        self._import(
            bankfiles.pain002(
                "pain.002.001.10",
                batch.name,
                [
                    {
                        "pmt_inf_id": a.pmt_inf_id,
                        "end_to_end_id": a.end_to_end_id,
                        "status": "RJCT",
                        "reason": "AM04",
                        "amount": D("121.00"),
                        "collection_date": COLLECTED,
                    }
                ],
            )
        )
        self.assertEqual(credit.entry_ids.state, "matched")
        self.assertTrue(credit.entry_ids.statement_line_id.is_reconciled)
        self.assertSettled(b)
        self.assertEqual(a.state, "rejected")

    # ------------------------------------------------------------------ once only

    def test_same_file_twice_and_entry_reported_twice(self):
        _batch, _invoices, lines = self._collect(prices=(("a", 100.0),))
        line = lines["a"]
        notification = self._camt054([self._return_entry(line, "AM04", ref="BANK-77")], msg_id="N")
        self._import(notification)
        moves = self.env["account.move"].search_count([])
        with self.assertRaisesRegex(UserError, "already imported"):
            self._import(notification)
        # The day's statement reports the same booking (same bank reference): not again.
        statement = self._import(
            self._camt053([self._return_entry(line, "AM04", ref="BANK-77")], msg_id="S")
        )
        self.assertEqual(statement.entry_ids.state, "duplicate")
        self.assertFalse(statement.entry_ids.statement_line_id)
        self.assertEqual(len(line.return_ids), 1)
        self.assertEqual(self.env["account.move"].search_count([]), moves)
        # The same bank reference twice in one file: the file contradicts itself (its
        # balances count both), refused whole (TestBankStatements has the details).
        _batch2, _invoices2, lines2 = self._collect(prices=(("b", 50.0),))
        credit = {
            "kind": "credit",
            "amount": D("60.50"),
            "date": COLLECTED,
            "ref": "TWICE-1",
            "end_to_end_id": lines2["b"].end_to_end_id,
        }
        counts = self._counts()
        with self.assertRaisesRegex(UserError, "TWICE-1"):
            self._import(self._camt053([credit, credit], msg_id="TWICE"), "twice.xml")
        self.assertEqual(self._counts(), counts)
        self.assertEqual(lines2["b"].state, "collected")
        # The camt.054's line is a line of the statement that repeats it: it adds up.
        self.assertEqual(statement.statement_id.line_ids, line.return_ids.statement_line_id)
        self.assertTrue(statement.statement_id.is_complete)

    def test_pending_entry_listed_not_booked(self):
        _batch, _invoices, lines = self._collect(prices=(("a", 100.0),))
        entry = {
            "kind": "credit",
            "amount": D("121.00"),
            "date": COLLECTED,
            "ref": "PEND-1",
            "end_to_end_id": lines["a"].end_to_end_id,
        }
        data = self._camt053([entry]).replace(b"<Cd>BOOK</Cd>", b"<Cd>PDNG</Cd>")
        bank_file = self._import(data)
        self.assertEqual(bank_file.entry_ids.state, "skipped")
        self.assertIn("Not booked by the bank (PDNG)", bank_file.entry_ids.reason)
        self.assertFalse(bank_file.entry_ids.statement_line_id)
        self.assertEqual(lines["a"].state, "collected")
        # Booked the next day: imported then.
        booked = self._import(self._camt053([entry], msg_id="BOOKED"))
        self.assertEqual(booked.entry_ids.state, "matched")
        self.assertSettled(lines["a"])

    # ------------------------------------------------------------------ who imports

    def test_wizard_for_billing_administrators_only(self):
        _batch, _invoices, lines = self._collect(prices=(("a", 100.0),))
        data = self._camt053(
            [
                {
                    "kind": "credit",
                    "amount": D("121.00"),
                    "date": COLLECTED,
                    "ref": "W-1",
                    "end_to_end_id": lines["a"].end_to_end_id,
                }
            ]
        )
        company = {"company_id": self.company.id, "company_ids": self.company.ids}
        clerk = new_test_user(
            self.env, "sepa_clerk", groups="account.group_account_invoice", **company
        )
        with self.assertRaises(AccessError):
            self.env["flex.sepa.bank.file.import"].with_user(clerk).create(
                {"data_file": base64.b64encode(data), "filename": "s.xml"}
            )
        with self.assertRaises(AccessError):
            self.env["flex.sepa.bank.file"].with_user(clerk)._import_file(data)
        admin = new_test_user(
            self.env, "sepa_billing_admin", groups="account.group_account_manager", **company
        )
        wizard = (
            self.env["flex.sepa.bank.file.import"]
            .with_user(admin)
            .create({"data_file": base64.b64encode(data), "filename": "statement.xml"})
        )
        action = wizard.action_import()
        bank_file = self.env["flex.sepa.bank.file"].browse(action["res_id"])
        self.assertEqual(bank_file.name, "statement.xml")
        self.assertEqual(bank_file.create_uid, admin)
        self.assertEqual(bank_file.attachment_id.raw, data)
        self.assertSettled(lines["a"])
        self.assertEqual(bank_file.entry_ids.statement_line_id.create_uid, admin)

    # ------------------------------------------------------------------ bad input

    def test_bad_files_change_nothing(self):
        _batch, _invoices, lines = self._collect(prices=(("a", 100.0),))
        good = self._camt053(
            [
                {
                    "kind": "credit",
                    "amount": D("121.00"),
                    "date": COLLECTED,
                    "ref": "G",
                    "end_to_end_id": lines["a"].end_to_end_id,
                }
            ]
        )
        other_company = self.env["res.company"].create({"name": "Other Co"})
        other_account = self.env["res.partner.bank"].create(
            {
                "acc_number": "DE75512108001245126199",
                "partner_id": other_company.partner_id.id,
                "company_id": other_company.id,
            }
        )
        self.env["account.journal"].create(
            {
                "name": "Other bank",
                "type": "bank",
                "code": "OTB",
                "company_id": other_company.id,
                "bank_account_id": other_account.id,
            }
        )
        cases = {
            "not XML": (b"IBAN;amount\nDE89;12\n", "not an XML file"),
            "truncated": (good[: len(good) // 2], "not an XML file or is truncated"),
            "empty": (b"   ", "empty"),
            "XXE": (
                b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08">&x;</Document>',
                "DTD or entities",
            ),
            "billion laughs": (
                b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
                b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
                b"<lolz>&lol3;</lolz>",
                "DTD or entities",
            ),
            "unsupported": (
                b'<?xml version="1.0"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:'
                b'camt.052.001.08"><x/></Document>',
                "Unsupported message",
            ),
            "our own pain.008": (_batch.attachment_id.raw, "Unsupported message"),
            "schema": (
                good.replace(b"<CdtDbtInd>CRDT</CdtDbtInd>", b"<CdtDbtInd>CREDIT</CdtDbtInd>", 1),
                "ISO 20022 schema",
            ),
            "other company": (
                bankfiles.camt053("camt.053.001.08", "DE75512108001245126199", []),
                "not an account of",
            ),
            "unknown account": (
                bankfiles.camt053("camt.053.001.08", "DE44500105175407324931", []),
                "No bank journal",
            ),
            "unknown batch": (
                bankfiles.pain002("pain.002.001.03", "NOT-A-BATCH", [], group_status="RJCT"),
                "no direct debit batch",
            ),
        }
        counts = self._counts()
        for name, (data, message) in cases.items():
            with self.subTest(name), self.assertRaisesRegex(UserError, message):
                self._import(data)
            self.assertEqual(self._counts(), counts, name)
        self.assertEqual(lines["a"].state, "collected")

    def _counts(self):
        return [
            self.env[model].search_count([])
            for model in (
                "flex.sepa.bank.file",
                "flex.sepa.bank.entry",
                "account.bank.statement.line",
                "flex.sepa.return",
                "ir.attachment",
            )
        ]

    # ------------------------------------------------------------------ at risk

    def test_at_risk_view(self):
        _batch, _invoices, lines = self._collect()
        a, b = lines["a"], lines["b"]
        # Collected 8 March; returns possible until D+5 TARGET2 business days = 15 March.
        with freeze_time("2027-03-15"):
            self.env["account.move"]._flex_sepa_update_risk()
        self.assertFalse(a.invoice_id.flex_sepa_risk)
        with freeze_time("2027-03-16"):
            self.env["account.move"]._cron_flex_sepa_update_risk()
        self.assertEqual(a.invoice_id.flex_sepa_risk, "unsettled")
        self.assertEqual(a.invoice_id.flex_sepa_risk_date, date(2027, 3, 16))
        # Settled: no longer at risk.
        with freeze_time("2027-03-16"):
            self._import(
                self._camt053(
                    [
                        {
                            "kind": "credit",
                            "amount": D("121.00"),
                            "date": COLLECTED,
                            "ref": "RISK-1",
                            "end_to_end_id": a.end_to_end_id,
                        }
                    ]
                )
            )
        self.assertFalse(a.invoice_id.flex_sepa_risk)
        self.assertEqual(b.invoice_id.flex_sepa_risk, "unsettled")
        # Overdue without a mandate: never collected at all.
        partner, _account = self._debtor("No mandate", "nl")
        with freeze_time("2027-03-01"):
            sub = self._sepa_subscription(partner, 100.0)
            orphan = sub._create_recurring_invoices(date(2027, 3, 1))
        self.assertEqual(orphan.amount_residual, 121.0)
        with freeze_time("2027-03-01"):
            self.env["account.move"]._flex_sepa_update_risk()
        self.assertFalse(orphan.flex_sepa_risk)  # due today: not overdue yet
        with freeze_time("2027-04-20"):
            self.env["account.move"]._flex_sepa_update_risk()
        self.assertEqual(orphan.flex_sepa_risk, "no_mandate")
        risky = self.env["account.move"].search([("flex_sepa_risk", "!=", False)])
        self.assertIn(orphan, risky)
        self.assertIn(b.invoice_id, risky)
        self.assertNotIn(a.invoice_id, risky)


MAXINT = 2147483647  # Odoo's complement of a statement line's sequence in internal_index
CENT = Decimal("0.01")


@tagged("post_install", "-at_install")
class TestBankStatements(SepaCommon):
    """The statements the importer books add up as Odoo computes them: computed balance
    (``balance_end``) = the bank's closing balance, complete, running balances of the
    lines as Odoo's own lines have them; a file whose bank references disagree is refused;
    a file-level pain.002 reject is no customer's fault; bank charges are booked.

    Debits are untaxed (a product without tax) so that their amounts are the bank's:
    opening 1,000.00 + 188.90 (100.00 + 88.90, one block) + 259.99 (another batch's block)
    - 2.40 (the bank's charge) = 1,446.49."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.sdd_journal.currency_id = cls.eur
        cls.company.flex_sepa_fee_account_id = cls.env["account.account"].create(
            {"name": "Return fees", "code": "627100", "account_type": "expense"}
        )
        cls.charges_account = cls.env["account.account"].create(
            {"name": "Bank charges", "code": "627200", "account_type": "expense"}
        )
        cls.company.flex_sepa_charges_account_id = cls.charges_account
        cls.product_untaxed = cls._create_product(
            name="Seat, no tax",
            lst_price=10.0,
            type="service",
            flex_is_subscription=True,
            taxes_id=False,
        )
        cls.debtors = {}
        for key, iban in (("a", "de"), ("b", "fr"), ("c", "it")):
            partner, account = cls._debtor(
                f"Debtor {key.upper()}", iban, email=f"{key}@example.com"
            )
            cls.debtors[key] = (partner, cls._mandate(partner, account))

    # ------------------------------------------------------------------ helpers

    def _collect(self, prices):
        """One generated batch of invoices of 1 March (collected 8 March), one per
        ``(debtor, price)``; its debits by debtor."""
        with freeze_time("2027-03-01"):
            subs = self.env["flex.subscription"]
            for key, price in prices:
                subs |= self._create_subscription(
                    plan=self.plan_sepa,
                    start=date(2027, 3, 1),
                    partner=self.debtors[key][0],
                    lines=[(self.product_untaxed, 1, price, 0.0)],
                    currency_id=self.eur.id,
                    payment_method="sepa",
                )
            invoices = subs._create_recurring_invoices(date(2027, 3, 1))
            batch = self._batch(date(2027, 3, 1))
            batch.action_generate()
        lines = batch.line_ids.filtered(lambda ln, i=invoices: ln.invoice_id in i)
        return batch, {
            key: lines.filtered(lambda ln, k=key: ln.partner_id == self.debtors[k][0])
            for key, _price in prices
        }

    def _import(self, data, name="bank.xml"):
        return self.env["flex.sepa.bank.file"]._import_file(data, filename=name)

    def _fee_entry(self, ref, day=date(2027, 3, 5)):
        # ACMT/MDOP/CHRG: the account's charges (the builder's code of a charge).
        return {
            "kind": "other",
            "sign": "DBIT",
            "amount": D("2.40"),
            "date": day,
            "ref": ref,
            "info": "Account charges February",
        }

    def assertAddsUp(self, statement, opening, entries):
        """Odoo's computed balance is the bank's closing balance, the statement is
        complete, and every line's running balance is the opening plus the lines up to it,
        in Odoo's order (date, then the file's order), as Odoo computes them."""

        def booked(entry):  # as the bank books it, signed (+ credit, - debit)
            if entry["kind"] == "return":
                return -(entry["amount"] + entry.get("fee", Decimal(0)))
            return -entry["amount"] if entry.get("sign") == "DBIT" else entry["amount"]

        signed = [(entry["date"], i, booked(entry)) for i, entry in enumerate(entries)]
        closing = opening + sum((amount for _d, _i, amount in signed), Decimal(0))
        self.assertEqual(D(str(statement.balance_start)).quantize(CENT), opening)
        self.assertEqual(D(str(statement.balance_end_real)).quantize(CENT), closing)
        self.assertEqual(D(str(statement.balance_end)).quantize(CENT), closing)
        self.assertTrue(statement.is_complete)
        self.assertFalse(statement.problem_description)
        lines = statement.line_ids.sorted("internal_index")
        self.assertEqual(len(lines), len(entries))
        for line in lines:  # Odoo's internal index: date, reversed sequence, the line's id
            self.assertEqual(
                line.internal_index,
                f"{line.date:%Y%m%d}{MAXINT - line.sequence:0>10}{line.id:0>10}",
            )
        self.assertEqual(statement.first_line_index, lines[0].internal_index)
        self.assertEqual(statement.date, max(e["date"] for e in entries))
        running, expected = opening, []
        for _day, _i, amount in sorted(signed):
            running += amount
            expected.append(running)
        self.assertEqual(
            [D(str(b)).quantize(CENT) for b in lines.mapped("running_balance")], expected
        )
        self.assertEqual(expected[-1], closing)
        return closing

    def assertCharge(self, bank_file, ref):
        entry = bank_file.entry_ids.filtered(lambda e: e.bank_ref == ref)
        self.assertEqual(entry.state, "charge")
        st_line = entry.statement_line_id
        self.assertTrue(st_line.is_reconciled)
        self.assertEqual(st_line.amount, -2.4)
        items = st_line.move_id.line_ids
        self.assertFalse(
            items.filtered(lambda aml: aml.account_id == self.sdd_journal.suspense_account_id)
        )
        charge = items.filtered(lambda aml: aml.account_id == self.charges_account)
        self.assertEqual((charge.debit, charge.credit), (2.4, 0.0))

    # ------------------------------------------------------------------ statements add up

    def test_batch_statement_adds_up_v02(self):
        self._check_batch_statement("camt.053.001.02")

    def test_batch_statement_adds_up_v08(self):
        self._check_batch_statement("camt.053.001.08")

    def _check_batch_statement(self, version):
        # One statement per test: a journal's statements follow each other in time, and
        # Odoo's running balances run over the journal's lines in date order.
        batch1, lines1 = self._collect((("a", 100.0), ("b", 88.9)))
        batch2, lines2 = self._collect((("c", 259.99),))
        block1 = lines1["a"] | lines1["b"]
        self.assertEqual(sum(D(str(a)) for a in block1.mapped("amount")), D("188.90"))
        entries = [
            {
                "kind": "batch",
                "amount": D("188.90"),
                "date": COLLECTED,
                "ref": f"B1-{version}",
                "msg_id": batch1.name,
                "pmt_inf_id": block1[0].pmt_inf_id,
                "count": 2,
                "details": None,
            },
            {
                "kind": "batch",
                "amount": D("259.99"),
                "date": COLLECTED,
                "ref": f"B2-{version}",
                "msg_id": batch2.name,
                "pmt_inf_id": lines2["c"].pmt_inf_id,
                "count": 1,
                "details": None,
            },
            # Booked before the credits (an earlier date, later in the file).
            self._fee_entry(f"FEE-{version}"),
        ]
        opening = D("1000.00")
        data = bankfiles.camt053(
            version, CREDITOR_IBAN, entries, msg_id=f"STMT-{version}", opening=opening
        )
        bank_file = self._import(data)
        closing = self.assertAddsUp(bank_file.statement_id, opening, entries)
        self.assertEqual(closing, D("1446.49"))
        self.assertEqual(bank_file.matched_count, 2)
        for line in block1 | lines2["c"]:
            self.assertEqual(line.state, "settled")
            self.assertEqual(line.invoice_id.payment_state, "paid")
        self.assertCharge(bank_file, f"FEE-{version}")

    def test_per_transaction_statement_adds_up_v02(self):
        self._check_per_transaction_statement("camt.053.001.02")

    def test_per_transaction_statement_adds_up_v08(self):
        self._check_per_transaction_statement("camt.053.001.08")

    def _check_per_transaction_statement(self, version):
        _batch1, lines1 = self._collect((("a", 100.0), ("b", 88.9)))
        _batch2, lines2 = self._collect((("c", 259.99),))
        entries = [
            {
                "kind": "credit",
                "amount": D(str(line.amount)),
                "date": COLLECTED,
                "ref": f"TX-{version}-{line.end_to_end_id}",
                "end_to_end_id": line.end_to_end_id,
                "pmt_inf_id": line.pmt_inf_id,
            }
            for line in lines1["a"] | lines1["b"] | lines2["c"]
        ] + [self._fee_entry(f"FEE-TX-{version}")]
        opening = D("1000.00")
        data = bankfiles.camt053(
            version, CREDITOR_IBAN, entries, msg_id=f"TX-{version}", opening=opening
        )
        bank_file = self._import(data)
        closing = self.assertAddsUp(bank_file.statement_id, opening, entries)
        self.assertEqual(closing, D("1446.49"))
        self.assertEqual(bank_file.matched_count, 3)
        self.assertCharge(bank_file, f"FEE-TX-{version}")

    def test_large_statement_adds_up(self):
        """A statement of FLEX_BANK_STATEMENT_LINES lines (10,000 by default), over two
        months (the first line of each is Odoo's, the others SQL)."""
        count = int(os.environ.get("FLEX_BANK_STATEMENT_LINES") or 10000)
        entries = [
            {
                "kind": "other",
                "sign": "CRDT" if i % 3 else "DBIT",
                "amount": D(i % 997 + 1) + D(i % 100) / 100,
                "date": date(2027, 3 + (2 * i >= count), 1 + i % 28),
                "ref": f"BIG-{i}",
                "info": f"Transfer {i}",
                # transfers in and out, no charges
                "bank_tx_code": ("PMNT", "RCDT" if i % 3 else "ICDT", "ESCT"),
            }
            for i in range(count)
        ]
        opening = D("-1234.56")
        data = bankfiles.camt053(
            "camt.053.001.08", CREDITOR_IBAN, entries, opening=opening, msg_id="BIG"
        )
        started = time.perf_counter()
        bank_file = self._import(data)
        self.env.flush_all()
        _logger.info(
            "camt.053 of %s lines imported in %.1f s", count, time.perf_counter() - started
        )
        self.assertEqual(bank_file.unmatched_count, count)
        self.assertAddsUp(bank_file.statement_id, opening, entries)

    # ------------------------------------------------------------------ inconsistent files

    def test_bank_reference_twice_refuses_the_file(self):
        _batch, lines = self._collect((("a", 100.0), ("b", 88.9), ("c", 120.0)))
        entries = [
            {
                "kind": "credit",
                "amount": D(str(line.amount)),
                "date": COLLECTED,
                "ref": ref,
                "end_to_end_id": line.end_to_end_id,
            }
            for line, ref in ((lines["a"], "REF-1"), (lines["b"], "REF-2"), (lines["c"], "REF-2"))
        ]
        data = bankfiles.camt053("camt.053.001.08", CREDITOR_IBAN, entries, opening=D("0.00"))
        counts = self._counts()
        all_lines = lines["a"] | lines["b"] | lines["c"]
        states = [(ln.state, ln.payment_id.state, ln.invoice_id.payment_state) for ln in all_lines]
        with self.assertRaisesRegex(UserError, r"bank reference REF-2 .* two entries .* 2 .* 3 "):
            self._import(data)
        self.assertEqual(self._counts(), counts)
        self.assertEqual(
            [(ln.state, ln.payment_id.state, ln.invoice_id.payment_state) for ln in all_lines],
            states,
        )
        self.assertEqual(set(all_lines.mapped("state")), {"collected"})

    def _counts(self):
        return {
            model: self.env[model].search_count([])
            for model in (
                "flex.sepa.bank.file",
                "flex.sepa.bank.entry",
                "account.bank.statement",
                "account.bank.statement.line",
                "account.move",
                "account.partial.reconcile",
                "flex.sepa.return",
                "ir.attachment",
                "mail.message",
            )
        }

    # ------------------------------------------------------------------ pain.002 file reject

    def test_file_rejected_by_the_bank_is_collected_again(self):
        for version in ("pain.002.001.03", "pain.002.001.10"):
            with self.subTest(version=version):
                batch, lines = self._collect((("a", 100.0), ("b", 88.9)))
                debits = lines["a"] | lines["b"]
                invoices = debits.invoice_id
                self.assertEqual(set(debits.mapped("sequence_type")), {"FRST"})
                mails = self.env["mail.mail"].search_count([])
                report = bankfiles.pain002(
                    version,
                    batch.name,
                    [],
                    msg_id=f"FF01-{version}",
                    group_status="RJCT",
                    group_reason="FF01",
                )
                self._import(report)
                # The debits are undone: payments rejected, invoices open for their amount.
                self.assertEqual(set(debits.mapped("state")), {"rejected"})
                self.assertEqual(set(debits.payment_id.mapped("state")), {"rejected"})
                self.assertEqual(set(invoices.mapped("payment_state")), {"not_paid"})
                self.assertEqual(
                    [D(str(i.amount_residual)) for i in invoices.sorted("id")],
                    [D("100.00"), D("88.90")],
                )
                # No customer's fault: nothing held, no risk, no mail, no activity per invoice.
                self.assertEqual(set(invoices.mapped("flex_sepa_hold")), {False})
                self.assertEqual(set(invoices.mapped("flex_sepa_risk")), {False})
                self.assertFalse(invoices.activity_ids)
                returns = debits.return_ids
                self.assertEqual(set(returns.mapped("mail_state")), {"none"})
                self.assertEqual(set(returns.mapped("reason_code")), {"FF01"})
                self.assertFalse(self.env["flex.sepa.return"]._cron_send_mails())
                self.assertEqual(self.env["mail.mail"].search_count([]), mails)
                # The accountant is told once, on the batch.
                self.assertEqual(len(batch.activity_ids), 1)
                self.assertIn("FF01", batch.activity_ids.summary)
                notes = batch.message_ids.filtered(lambda m: "FF01" in (m.body or ""))
                self.assertEqual(len(notes), 1)
                self.assertFalse(notes.partner_ids)
                # The same report again: refused; sent again under another MsgId: nothing.
                before = self._counts()
                with self.assertRaisesRegex(UserError, "already imported"):
                    self._import(report)
                self.assertEqual(self._counts(), before)
                again = bankfiles.pain002(
                    version,
                    batch.name,
                    [],
                    msg_id=f"FF01-{version}-again",
                    group_status="RJCT",
                    group_reason="FF01",
                )
                self._import(again)
                self.assertEqual(len(debits.return_ids), 2)
                self.assertEqual(len(batch.activity_ids), 1)
                self.assertEqual(set(invoices.mapped("flex_sepa_hold")), {False})
                self.assertEqual(self.env["mail.mail"].search_count([]), mails)
                # The next batch collects them again, FRST still.
                with freeze_time("2027-03-02"):
                    again_batch = self._batch(date(2027, 3, 2))
                retried = again_batch.line_ids.filtered(lambda ln, i=invoices: ln.invoice_id in i)
                self.assertEqual(len(retried), 2)
                self.assertEqual(set(retried.mapped("sequence_type")), {"FRST"})
                self.assertFalse(
                    again_batch.excluded_line_ids.filtered(
                        lambda ln, i=invoices: ln.invoice_id in i
                    )
                )
                again_batch.action_cancel()
