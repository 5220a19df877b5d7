import hashlib
from datetime import date
from pathlib import Path

from lxml import etree

from odoo.exceptions import UserError
from odoo.tests import freeze_time, tagged

from .common import SepaCommon

XSD_DIR = Path(__file__).resolve().parent.parent / "data" / "xsd"
# sha256 of the official ISO 20022 schemas (shared/iso20022/README.md): the addon's copies
# must be byte-for-byte those.
OFFICIAL_SHA256 = {
    "pain.008.001.02": "7900f72a3a0d872a99e5be1c7a94586c59e412bf9781ea4c4e78959f84191cd6",
    "pain.008.001.08": "7edf4e4ce34c47a5567af6a327e22af4ed4007f715822af9f353c94ecc10f5ba",
}


@tagged("post_install", "-at_install")
class TestBatches(SepaCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        with freeze_time("2027-03-01"):
            cls.a, a_account = cls._debtor("Alpha", "de")
            cls.b, b_account = cls._debtor("Beta", "fr")
            cls.c, c_account = cls._debtor("Gamma", "it")
            cls.d, _d_account = cls._debtor("Delta (no mandate)", "nl")
            cls.e, e_account = cls._debtor("Epsilon (dollars)", "at")
            cls.f, f_account = cls._debtor("Zeta (Switzerland)", "ch")
            cls.mandate_a = cls._mandate(cls.a, a_account)
            cls.mandate_b = cls._mandate(cls.b, b_account, first_debit_done=True)
            cls.mandate_c = cls._mandate(cls.c, c_account, recurrence="oneoff")
            cls._mandate(cls.e, e_account)
            cls.mandate_f = cls._mandate(cls.f, f_account)
            cls.subs = {
                "a": cls._sepa_subscription(cls.a, 100.0),
                "b": cls._sepa_subscription(cls.b, 50.0),
                "c": cls._sepa_subscription(cls.c, 19.99),
                "d": cls._sepa_subscription(cls.d, 100.0),
                "e": cls._sepa_subscription(cls.e, 100.0, currency=cls.currency),
                "f": cls._sepa_subscription(cls.f, 100.0),
            }
            subs = cls.env["flex.subscription"].browse([s.id for s in cls.subs.values()])
            cls.invoices = subs._create_recurring_invoices(date(2027, 3, 1))

    def _invoice(self, key):
        return self.invoices.filtered(lambda m: m.flex_subscription_id == self.subs[key])

    def _parse(self, batch):
        xml = batch.attachment_id.raw
        schema = etree.XMLSchema(etree.parse(str(XSD_DIR / f"{batch.pain_version}.xsd")))
        document = etree.fromstring(xml)
        schema.assertValid(document)
        ns = {"p": document.nsmap[None]}
        return document, ns

    def test_official_schemas(self):
        for version, digest in OFFICIAL_SHA256.items():
            data = (XSD_DIR / f"{version}.xsd").read_bytes()
            self.assertEqual(hashlib.sha256(data).hexdigest(), digest)

    @freeze_time("2027-03-01")
    def test_pain008_001_08(self):
        batch = self._batch(date(2027, 3, 1))
        excluded = {line.invoice_id: line.reason for line in batch.excluded_line_ids}
        self.assertIn("No valid mandate for Delta", excluded[self._invoice("d")])
        self.assertIn("euros only", excluded[self._invoice("e")])
        self.assertIn("address (town and country) is required", excluded[self._invoice("f")])
        lines = {line.invoice_id: line for line in batch.line_ids}
        self.assertEqual(
            set(lines), set(self._invoice("a") | self._invoice("b") | self._invoice("c"))
        )
        # 100.00 + 21% = 121.00; 50.00 + 21% = 60.50; 19.99 + 4.1979 -> 4.20 = 24.19
        self.assertEqual([lines[self._invoice(k)].amount for k in "abc"], [121.0, 60.5, 24.19])
        self.assertEqual(batch.control_sum, 205.69)
        # Due 1 March, told 5 days ahead: 6 March is a Saturday -> Monday 8 March.
        self.assertEqual(set(batch.line_ids.mapped("collection_date")), {date(2027, 3, 8)})
        self.assertEqual(
            [lines[self._invoice(k)].sequence_type for k in "abc"], ["FRST", "RCUR", "OOFF"]
        )
        batch.action_generate()
        self.assertEqual(batch.state, "generated")
        document, ns = self._parse(batch)
        header = document.find("p:CstmrDrctDbtInitn/p:GrpHdr", ns)
        self.assertEqual(header.findtext("p:MsgId", namespaces=ns), batch.name)
        self.assertEqual(header.findtext("p:NbOfTxs", namespaces=ns), "3")
        self.assertEqual(header.findtext("p:CtrlSum", namespaces=ns), "205.69")
        blocks = {
            p.findtext("p:PmtTpInf/p:SeqTp", namespaces=ns): p
            for p in document.iterfind("p:CstmrDrctDbtInitn/p:PmtInf", ns)
        }
        self.assertEqual(set(blocks), {"FRST", "RCUR", "OOFF"})
        frst = blocks["FRST"]
        self.assertEqual(
            frst.findtext("p:PmtInfId", namespaces=ns), f"{batch.name}-FRST-2027-03-08"
        )
        self.assertEqual(frst.findtext("p:CtrlSum", namespaces=ns), "121.00")
        self.assertEqual(frst.findtext("p:ReqdColltnDt", namespaces=ns), "2027-03-08")
        self.assertEqual(frst.findtext("p:BtchBookg", namespaces=ns), "true")
        self.assertEqual(frst.findtext("p:PmtTpInf/p:LclInstrm/p:Cd", namespaces=ns), "CORE")
        self.assertEqual(
            frst.findtext("p:CdtrSchmeId/p:Id/p:PrvtId/p:Othr/p:Id", namespaces=ns),
            "DE98ZZZ09999999999",
        )
        tx = frst.find("p:DrctDbtTxInf", ns)
        self.assertEqual(
            tx.findtext("p:PmtId/p:EndToEndId", namespaces=ns), self._invoice("a").name
        )
        self.assertEqual(tx.findtext("p:InstdAmt", namespaces=ns), "121.00")
        self.assertEqual(
            tx.findtext("p:DrctDbtTx/p:MndtRltdInf/p:MndtId", namespaces=ns),
            self.mandate_a.reference,
        )
        self.assertEqual(
            tx.findtext("p:DbtrAcct/p:Id/p:IBAN", namespaces=ns), "DE02120300000000202051"
        )
        self.assertEqual(blocks["OOFF"].findtext("p:CtrlSum", namespaces=ns), "24.19")
        # Invoices wait "in payment" for the bank; mandates move on.
        for key in "abc":
            self.assertEqual(self._invoice(key).payment_state, "in_payment")
        self.assertEqual(set(batch.line_ids.payment_id.mapped("state")), {"in_process"})
        self.assertEqual(
            set(batch.line_ids.payment_id.payment_method_line_id.mapped("code")), {"flex_sepa_dd"}
        )
        self.assertEqual(batch.line_ids.payment_id.mapped("date"), [date(2027, 3, 8)] * 3)
        self.assertEqual(self.mandate_a.next_sequence_type, "RCUR")
        self.assertEqual(self.mandate_a.last_debit_date, date(2027, 3, 8))
        self.assertEqual(self.mandate_c.state, "closed")
        # Each debtor is told amount, day, mandate and creditor identifier, once.
        notice = batch.line_ids.filtered(lambda line: line.invoice_id == self._invoice("a"))
        mail = notice.prenotification_mail_id
        self.assertEqual(mail.recipient_ids, self.a)
        self.assertIn("121.00", mail.subject)
        self.assertIn("03/08/2027", mail.subject)
        for text in (
            self.mandate_a.reference,
            "DE98ZZZ09999999999",
            self._invoice("a").name,
            "DE02 **** 2051",  # the debited account, masked
        ):
            self.assertIn(text, mail.body_html)
        self.assertTrue(self._invoice("a").flex_sepa_prenotified)
        self.assertEqual(len(batch.line_ids.prenotification_mail_id), 3)
        # Nothing is collected twice; a batch is generated once.
        again = self._batch(date(2027, 3, 31))
        self.assertFalse(again.line_ids & batch.line_ids)
        self.assertFalse(again.line_ids.invoice_id & batch.line_ids.invoice_id)
        with self.assertRaisesRegex(UserError, "already generated"):
            batch.action_generate()

    @freeze_time("2027-03-01")
    def test_pain008_001_02_and_amendment(self):
        self.company.flex_sepa_batch_booking = False
        self.mandate_b.last_debit_date = date(2027, 2, 8)
        new_account = self.env["res.partner.bank"].create(
            {"acc_number": "FR7630006000011234567890189", "partner_id": self.b.id}
        )
        self.mandate_b.partner_bank_id = new_account
        self.assertEqual(self.mandate_b.amended_iban, "FR1420041010050500013M02606")
        batch = self._batch(date(2027, 3, 1), version="pain.008.001.02")
        # No address needed in this version for the Swiss debtor.
        self.assertIn(self._invoice("f"), batch.line_ids.invoice_id)
        batch.action_generate()
        document, ns = self._parse(batch)
        self.assertEqual(document.nsmap[None], "urn:iso:std:iso:20022:tech:xsd:pain.008.001.02")
        self.assertEqual(
            document.findtext("p:CstmrDrctDbtInitn/p:GrpHdr/p:CtrlSum", namespaces=ns), "326.69"
        )  # 121.00 + 60.50 + 24.19 + 121.00
        self.assertEqual({b.text for b in document.iterfind(".//p:BtchBookg", ns)}, {"false"})
        tx = next(
            tx
            for tx in document.iterfind(".//p:DrctDbtTxInf", ns)
            if tx.findtext("p:PmtId/p:EndToEndId", namespaces=ns) == self._invoice("b").name
        )
        info = tx.find("p:DrctDbtTx/p:MndtRltdInf", ns)
        self.assertEqual(info.findtext("p:AmdmntInd", namespaces=ns), "true")
        # Another bank (20041 -> 30006): "same mandate, new debtor agent".
        self.assertEqual(
            info.findtext("p:AmdmntInfDtls/p:OrgnlDbtrAgt/p:FinInstnId/p:Othr/p:Id", namespaces=ns),
            "SMNDA",
        )
        self.assertFalse(self.mandate_b.amended_iban)  # reported: not again

    @freeze_time("2027-03-01")
    def test_an_invoice_in_a_draft_batch_is_not_collected_again(self):
        first = self._batch(date(2027, 3, 1))
        second = self._batch(date(2027, 3, 1))
        self.assertEqual(first.debit_count, 3)
        self.assertFalse(second.line_ids)
        first.action_cancel()
        second.action_collect()
        self.assertEqual(second.debit_count, 3)

    @freeze_time("2027-03-01")
    def test_bad_settings_write_nothing(self):
        self.company.flex_sepa_creditor_id = False
        batch = self.env["flex.sepa.batch"].create({"due_by": date(2027, 3, 1)})
        with self.assertRaisesRegex(UserError, "creditor identifier"):
            batch.action_collect()
        self.assertFalse(batch.line_ids | batch.excluded_line_ids)
        self.company.flex_sepa_creditor_id = "DE98ZZZ09999999999"
        self.company.flex_sepa_journal_id = False
        with self.assertRaisesRegex(UserError, "bank journal"):
            batch.action_collect()
        self.company.flex_sepa_journal_id = self.sdd_journal
        batch.action_collect()
        self.company.flex_sepa_creditor_id = False
        with self.assertRaisesRegex(UserError, "creditor identifier"):
            batch.action_generate()
        self.assertFalse(batch.attachment_id)
        self.assertEqual(self._invoice("a").payment_state, "not_paid")

    def test_automatic_collection(self):
        with freeze_time("2027-03-01"):
            batches = self.env["flex.sepa.batch"]._cron_collect()
        batch = batches.filtered(lambda b: b.company_id == self.company)
        self.assertEqual(batch.state, "generated")
        self.assertEqual(batch.debit_count, 3)
        self.assertEqual(len(batch.excluded_line_ids), 3)
        with freeze_time("2027-03-02"):
            again = self.env["flex.sepa.batch"]._cron_collect()
        self.assertFalse(again.filtered(lambda b: b.company_id == self.company))
