"""Debit batches: the open invoices of direct-debit subscriptions, collected in one
pain.008 file. Nothing is half made: an invoice that cannot be collected is listed as
excluded with its reason, a company setting that is missing stops the batch with a
message, and the file is validated against the official ISO 20022 schema before it is
attached and before any payment is created."""

from decimal import Decimal
from functools import cache
from pathlib import Path

from lxml import etree
from psycopg2.extras import execute_values
from sepaxml import SepaDD

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.tools import format_date

from ..core import sepa

XSD_DIR = Path(__file__).resolve().parent.parent / "data" / "xsd"
# SEPA countries outside the EEA: their debtors need a postal address (town, country).
NON_EEA_SEPA = {"CH", "GB", "MC", "SM", "VA", "AD", "GI", "JE", "GG", "IM"}


@cache
def _schema(version):
    return etree.XMLSchema(etree.parse(str(XSD_DIR / f"{version}.xsd")))


def validate_pain008(xml_bytes, version):
    """Raise ``ValueError`` with the schema's first message when the file is invalid."""
    schema = _schema(version)
    document = etree.fromstring(xml_bytes)
    if not schema.validate(document):
        raise ValueError(str(schema.error_log.last_error))
    return document


class FlexSepaBatch(models.Model):
    _name = "flex.sepa.batch"
    _description = "SEPA Direct Debit Batch"
    _inherit = ["mail.thread", "mail.activity.mixin"]
    _order = "id desc"
    _check_company_auto = True

    name = fields.Char(required=True, copy=False, readonly=True, default="/")
    company_id = fields.Many2one(
        "res.company", required=True, default=lambda self: self.env.company, readonly=True
    )
    currency_id = fields.Many2one(
        "res.currency", default=lambda self: self.env.ref("base.EUR"), readonly=True
    )
    state = fields.Selection(
        [("draft", "Draft"), ("generated", "File generated"), ("cancelled", "Cancelled")],
        default="draft",
        required=True,
        tracking=True,
        copy=False,
    )
    due_by = fields.Date(string="Invoices Due By", required=True, default=fields.Date.context_today)
    pain_version = fields.Char(readonly=True)
    line_ids = fields.One2many(
        "flex.sepa.batch.line", "batch_id", domain=[("excluded", "=", False)], string="Debits"
    )
    excluded_line_ids = fields.One2many(
        "flex.sepa.batch.line", "batch_id", domain=[("excluded", "=", True)], string="Excluded"
    )
    debit_count = fields.Integer(compute="_compute_totals", store=True)
    control_sum = fields.Monetary(compute="_compute_totals", store=True)
    attachment_id = fields.Many2one("ir.attachment", string="pain.008 File", readonly=True)

    @api.depends("line_ids.amount")
    def _compute_totals(self):
        for batch in self:
            batch.debit_count = len(batch.line_ids)
            batch.control_sum = sum(batch.line_ids.mapped("amount"))

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            if vals.get("name", "/") == "/":
                vals["name"] = self.env["ir.sequence"].next_by_code("flex.sepa.batch") or "/"
        return super().create(vals_list)

    # -------------------------------------------------------------- preparation

    def _check_company_settings(self):
        """Everything the file needs from the company, or a clear error."""
        company = self.company_id
        env = self.env
        if not company.flex_sepa_creditor_id:
            raise UserError(
                env._("Set the SEPA creditor identifier of %(company)s.", company=company.name)
            )
        if not sepa.is_valid_creditor_identifier(company.flex_sepa_creditor_id):
            raise UserError(
                env._(
                    "%(ci)s is not a valid SEPA creditor identifier.",
                    ci=company.flex_sepa_creditor_id,
                )
            )
        journal = company.flex_sepa_journal_id
        if not journal or journal.bank_account_id.acc_type != "iban":
            raise UserError(
                env._(
                    "Choose the direct debit bank journal of %(company)s, with the company's "
                    "IBAN as its bank account.",
                    company=company.name,
                )
            )
        if company.flex_sepa_pain_version == "pain.008.001.02" and not journal.bank_id.bic:
            raise UserError(
                env._(
                    "pain.008.001.02 needs the BIC of the bank of journal %(journal)s.",
                    journal=journal.name,
                )
            )
        return journal

    def _get_invoices_domain(self):
        self.ensure_one()
        return [
            ("company_id", "=", self.company_id.id),
            ("move_type", "=", "out_invoice"),
            ("state", "=", "posted"),
            ("payment_state", "in", ("not_paid", "partial")),
            ("invoice_date_due", "<=", self.due_by),
            ("flex_subscription_id.payment_method", "=", "sepa"),
        ]

    def action_collect(self):
        """Fill a draft batch with the invoices due by its date (replaces its lines)."""
        self.ensure_one()
        if self.state != "draft":
            raise UserError(self.env._("Only draft batches can be filled."))
        self._check_company_settings()
        self.env.flush_all()
        busy = self.env["flex.sepa.batch.line"].search(
            [
                ("excluded", "=", False),
                ("batch_id.state", "in", ("draft", "generated")),
                ("batch_id", "!=", self.id),
                ("state", "not in", ("returned", "rejected")),
                "|",
                ("payment_id", "=", False),
                ("payment_id.state", "!=", "canceled"),
            ]
        )
        invoices = self.env["account.move"].search(
            [*self._get_invoices_domain(), ("id", "not in", busy.invoice_id.ids)],
            order="invoice_date_due, id",
        )
        today = fields.Date.context_today(self)
        attempts = dict(
            self.env["flex.sepa.batch.line"]._read_group(
                [
                    ("invoice_id", "in", invoices.ids),
                    ("excluded", "=", False),
                    ("state", "in", ("returned", "rejected")),
                ],
                ["invoice_id"],
                ["__count"],
            )
        )
        self.with_context(active_test=False).line_ids.unlink()
        self.excluded_line_ids.unlink()
        self.env["flex.sepa.batch.line"]._insert_lines(
            [
                self._prepare_line_vals(invoice, today, attempts.get(invoice, 0))
                for invoice in invoices
            ]
        )
        self.invalidate_recordset(["line_ids", "excluded_line_ids"])
        for fname in ("debit_count", "control_sum"):
            self.env.add_to_compute(self._fields[fname], self)
        return True

    def _prepare_line_vals(self, invoice, today, returned=0):
        """``returned``: how many earlier debits of the invoice came back; a retry gets
        its own EndToEndId (``INV/2027/00001-R1``), so the bank's answers to each debit
        are told apart."""
        company = self.company_id
        mandate = invoice.flex_subscription_id.sepa_mandate_id
        vals = {
            "batch_id": self.id,
            "invoice_id": invoice.id,
            "partner_id": invoice.commercial_partner_id.id,
            "mandate_id": mandate.id,
            "amount": invoice.amount_residual,
        }
        reason = self._exclusion_reason(invoice, mandate, today)
        if reason:
            return {**vals, "excluded": True, "reason": reason}
        return {
            **vals,
            "sequence_type": mandate.next_sequence_type,
            "collection_date": sepa.collection_date(
                max(invoice.invoice_date_due, invoice.flex_sepa_retry_date or today),
                today,
                company.flex_sepa_prenotification_days,
            ),
            "end_to_end_id": sepa.end_to_end_id(invoice.name, returned),
            "amended_iban": mandate.amended_iban,
        }

    def _exclusion_reason(self, invoice, mandate, today):
        env = self.env
        if invoice.currency_id.name != "EUR":
            return env._(
                "Invoice in %(currency)s: SEPA collects euros only.",
                currency=invoice.currency_id.name,
            )
        if invoice.amount_residual <= 0:
            return env._("Nothing to collect.")
        if invoice.flex_sepa_hold:
            hold = dict(invoice._fields["flex_sepa_hold"]._description_selection(env))
            return env._(
                "Held after a returned debit: %(hold)s.", hold=hold[invoice.flex_sepa_hold]
            )
        if not mandate:
            return env._(
                "No valid mandate for %(partner)s.", partner=invoice.commercial_partner_id.name
            )
        if mandate.state != "valid":
            return env._("Mandate %(ref)s is not valid.", ref=mandate.reference)
        if mandate.expiry_date and mandate.expiry_date <= today:
            return env._("Mandate %(ref)s expired (36 months unused).", ref=mandate.reference)
        partner = invoice.commercial_partner_id
        country = (mandate.iban or "")[:2].upper()
        if (
            self.company_id.flex_sepa_pain_version == "pain.008.001.08"
            and country in NON_EEA_SEPA
            and not (partner.city and partner.country_id)
        ):
            return env._(
                "%(partner)s banks outside the EEA: its address (town and country) is required.",
                partner=partner.name,
            )
        return False

    # -------------------------------------------------------------- the file

    def _build_pain008(self, journal):
        """The pain.008 document (bytes), validated against the official schema."""
        self.ensure_one()
        company = self.company_id
        version = company.flex_sepa_pain_version
        creditor_iban = journal.bank_account_id.sanitized_acc_number
        config = {
            "name": company.name[:70],
            "IBAN": creditor_iban,
            "batch": True,  # one PmtInf per sequence type and collection date
            "creditor_id": sepa.normalize_creditor_identifier(company.flex_sepa_creditor_id),
            "currency": "EUR",
            "instrument": company.flex_sepa_scheme,
        }
        if journal.bank_id.bic:
            config["BIC"] = journal.bank_id.bic
        builder = SepaDD(config, schema=version, clean=True)
        for line in self.line_ids:
            mandate = line.mandate_id
            payment = {
                "name": line.partner_id.name[:70],
                "IBAN": mandate.partner_bank_id.sanitized_acc_number,
                "amount": sepa.amount_in_cents(Decimal(repr(line.amount))),
                "type": line.sequence_type,
                "collection_date": line.collection_date,
                "mandate_id": mandate.reference,
                "mandate_date": mandate.signature_date,
                "description": line.invoice_id.name[:140],
                "endtoend_id": line.end_to_end_id,
            }
            if mandate.bic:
                payment["BIC"] = mandate.bic
            builder.add_payment(payment)
        document = etree.fromstring(builder.export(validate=False))
        self._finish_document(document, company)
        xml = etree.tostring(document, xml_declaration=True, encoding="UTF-8", pretty_print=True)
        try:
            validate_pain008(xml, version)
        except ValueError as error:
            raise UserError(
                self.env._("The pain.008 file does not validate: %(error)s", error=error)
            ) from error
        return xml

    def _pmt_inf_id(self, sequence_type, day):
        """PmtInfId of the block of one sequence type and collection date: batch-booked
        credits on the bank statement name it."""
        return f"{self.name}-{sequence_type}-{day}"[:35]

    def _finish_document(self, document, company):
        """What sepaxml leaves out: our identifiers (MsgId, PmtInfId: reconciliation of
        batch-booked credits finds them back), batch booking as the company says, and
        amendments of the debtor account."""
        ns = {"p": document.nsmap[None]}
        q = "{%s}" % ns["p"]
        document.find("p:CstmrDrctDbtInitn/p:GrpHdr/p:MsgId", ns).text = self.name
        for pmt_inf in document.iterfind("p:CstmrDrctDbtInitn/p:PmtInf", ns):
            seq = pmt_inf.findtext("p:PmtTpInf/p:SeqTp", namespaces=ns)
            day = pmt_inf.findtext("p:ReqdColltnDt", namespaces=ns) or pmt_inf.findtext(
                "p:ReqdColltnDt/p:Dt", namespaces=ns
            )
            pmt_inf.find("p:PmtInfId", ns).text = self._pmt_inf_id(seq, day)
            pmt_inf.find("p:BtchBookg", ns).text = (
                "true" if company.flex_sepa_batch_booking else "false"
            )
        amended = {line.end_to_end_id: line for line in self.line_ids if line.amended_iban}
        if not amended:
            return
        for tx in document.iterfind("p:CstmrDrctDbtInitn/p:PmtInf/p:DrctDbtTxInf", ns):
            line = amended.get(tx.findtext("p:PmtId/p:EndToEndId", namespaces=ns))
            if not line:
                continue
            mandate_info = tx.find("p:DrctDbtTx/p:MndtRltdInf", ns)
            signature = mandate_info.find("p:DtOfSgntr", ns)
            indicator = etree.Element(q + "AmdmntInd")
            indicator.text = "true"
            details = etree.Element(q + "AmdmntInfDtls")
            new_iban = line.mandate_id.partner_bank_id.sanitized_acc_number
            old_iban = line.amended_iban
            if old_iban[:2] == new_iban[:2] and old_iban[4:8] == new_iban[4:8]:
                account = etree.SubElement(details, q + "OrgnlDbtrAcct")
                etree.SubElement(etree.SubElement(account, q + "Id"), q + "IBAN").text = old_iban
            else:
                # Another bank: "same mandate, new debtor agent".
                agent = etree.SubElement(details, q + "OrgnlDbtrAgt")
                other = etree.SubElement(etree.SubElement(agent, q + "FinInstnId"), q + "Othr")
                etree.SubElement(other, q + "Id").text = "SMNDA"
            signature.addnext(indicator)
            indicator.addnext(details)

    # -------------------------------------------------------------- generate

    def action_generate(self):
        """Write the file, attach it, put every invoice in payment; atomically."""
        self.ensure_one()
        if self.state != "draft":
            raise UserError(self.env._("This batch was already generated."))
        journal = self._check_company_settings()
        if not self.line_ids:
            raise UserError(self.env._("No invoice to collect in %(batch)s.", batch=self.name))
        self.env.cr.execute(
            "SELECT id FROM flex_sepa_batch WHERE id = %s AND state = 'draft' FOR UPDATE NOWAIT",
            (self.id,),
        )
        with self.env.cr.savepoint():
            xml = self._build_pain008(journal)
            attachment = self.env["ir.attachment"].create(
                {
                    "name": f"{self.name.replace('/', '-')}.xml",
                    "raw": xml,
                    "mimetype": "application/xml",
                    "res_model": self._name,
                    "res_id": self.id,
                }
            )
            self._create_payments(journal)
            for (sequence_type, day), lines in self.line_ids.grouped(
                lambda line: (line.sequence_type, line.collection_date)
            ).items():
                lines.write(
                    {
                        "state": "collected",
                        "pmt_inf_id": self._pmt_inf_id(sequence_type, fields.Date.to_string(day)),
                    }
                )
            for day, lines in self.line_ids.grouped("collection_date").items():
                lines.mandate_id._register_debits(day)
            self.line_ids._send_prenotification()
            self.write(
                {
                    "state": "generated",
                    "attachment_id": attachment.id,
                    "pain_version": self.company_id.flex_sepa_pain_version,
                }
            )
            self.message_post(
                body=self.env._(
                    "pain.008 generated: %(count)s debits, %(total)s.",
                    count=self.debit_count,
                    total=self.control_sum,
                ),
                attachment_ids=attachment.ids,
            )
        return True

    def _payment_method_line(self, journal):
        """The journal's *SEPA Direct Debit* receipt method (added when missing), so the
        collections are told apart from other receipts in the bank journal."""
        method = self.env.ref("subscription_flex_sepa.payment_method_flex_sepa_dd")
        line = journal.inbound_payment_method_line_ids.filtered(
            lambda line: line.payment_method_id == method
        )[:1]
        return line or self.env["account.payment.method.line"].create(
            {"journal_id": journal.id, "payment_method_id": method.id}
        )

    def _create_payments(self, journal):
        """One payment per invoice, dated on its collection date and reconciled with it:
        the payment is *In process* (its entry on the outstanding receipts account waits
        for the bank statement) and the invoice *In payment*.

        What Odoo's register-payment wizard does, for the whole batch at once: one
        ``create``, one ``action_post``, one reconciliation plan."""
        method_line = self._payment_method_line(journal)
        lines = self.line_ids
        payments = (
            self.env["account.payment"]
            .with_context(skip_invoice_sync=True)
            .create(
                [
                    {
                        "payment_type": "inbound",
                        "partner_type": "customer",
                        "partner_id": line.invoice_id.commercial_partner_id.id,
                        "amount": line.amount,
                        "currency_id": line.invoice_id.currency_id.id,
                        "date": line.collection_date,
                        "journal_id": journal.id,
                        "payment_method_line_id": method_line.id,
                        "memo": line.invoice_id.name,
                        "payment_reference": line.end_to_end_id,
                    }
                    for line in lines
                ]
            )
        )
        payments.action_post()
        account_types = self.env["account.payment"]._get_valid_payment_account_types()
        plan = []
        for line, payment in zip(lines, payments, strict=True):
            line.payment_id = payment
            plan.append(
                (payment.move_id.line_ids | line.invoice_id.line_ids).filtered(
                    lambda aml: (
                        aml.account_type in account_types
                        and not aml.reconciled
                        and aml.parent_state == "posted"
                    )
                )
            )
        self.env["account.move.line"]._reconcile_plan(plan)
        for line, payment in zip(lines, payments, strict=True):
            line.invoice_id.matched_payment_ids = [fields.Command.link(payment.id)]

    @api.model
    def _cron_collect(self):
        """Every company set up for SEPA: collect the invoices due within its
        pre-notification period (each debtor told that many days ahead) and write the file."""
        batches = self.browse()
        # Every company set up (the cron's user may not be in them all), each in its own.
        companies = (
            self.env["res.company"]
            .sudo()
            .search([("flex_sepa_creditor_id", "!=", False), ("flex_sepa_journal_id", "!=", False)])
        )
        today = fields.Date.context_today(self)
        for company in companies:
            batch = (
                self.sudo()
                .with_company(company)
                .create(
                    {
                        "company_id": company.id,
                        "due_by": fields.Date.add(
                            today, days=company.flex_sepa_prenotification_days
                        ),
                    }
                )
            )
            batch.action_collect()
            if batch.line_ids:  # its exclusions are listed on it
                batch.action_generate()
                batches |= batch
            else:
                batch.unlink()
        return batches

    def _flex_sepa_tell_technical_reject(self, returns, bank_file):
        """The creditor's bank rejected debits of this batch with the whole file or block
        (``returns``, technical): the accountant is told once, on the batch (a note and an
        activity), with the reason; no customer is."""
        self.ensure_one()
        if not returns:
            return
        env = self.env
        codes = ", ".join(sorted({r.reason_code for r in returns}))
        meaning = ", ".join(sorted({r.reason for r in returns if r.reason}))
        body = env._(
            "The bank rejected %(count)s debits of this batch with the whole file "
            "(%(code)s %(meaning)s, status report %(file)s). No customer is at fault or told: "
            "the invoices are open again and the next batch collects them (a first debit "
            "stays FRST). Fix the file's cause with the bank before the next batch.",
            count=len(returns),
            code=codes,
            meaning=meaning,
            file=bank_file.name,
        )
        self.message_post(body=body, subtype_xmlid="mail.mt_note")
        self.activity_schedule(
            "mail.mail_activity_data_todo",
            summary=env._("File rejected by the bank: %(code)s", code=codes),
            note=body,
            user_id=(self.company_id.flex_sepa_return_user_id or env.user).id,
        )

    def action_download(self):
        self.ensure_one()
        return {
            "type": "ir.actions.act_url",
            "url": f"/web/content/{self.attachment_id.id}?download=true",
            "target": "self",
        }

    def action_cancel(self):
        for batch in self:
            if batch.state == "generated":
                raise UserError(
                    self.env._(
                        "%(batch)s was generated: cancel its payments (returns) instead.",
                        batch=batch.name,
                    )
                )
        self.write({"state": "cancelled"})
        return True


class FlexSepaBatchLine(models.Model):
    _name = "flex.sepa.batch.line"
    _description = "SEPA Direct Debit"
    _order = "batch_id, excluded, collection_date, id"

    batch_id = fields.Many2one("flex.sepa.batch", required=True, ondelete="cascade", index=True)
    company_id = fields.Many2one(related="batch_id.company_id", store=True)
    currency_id = fields.Many2one(related="batch_id.currency_id")
    invoice_id = fields.Many2one("account.move", required=True, index=True)
    partner_id = fields.Many2one("res.partner", string="Debtor")
    mandate_id = fields.Many2one("flex.sepa.mandate")
    amount = fields.Monetary()
    sequence_type = fields.Selection([(code, code) for code in sepa.SEQUENCE_TYPES])
    collection_date = fields.Date()
    end_to_end_id = fields.Char(string="EndToEndId", index=True)
    amended_iban = fields.Char(string="Amended From")
    excluded = fields.Boolean(index=True)
    reason = fields.Char()
    payment_id = fields.Many2one("account.payment", readonly=True)
    pmt_inf_id = fields.Char(string="PmtInfId", index=True, readonly=True)
    state = fields.Selection(
        [
            ("draft", "To collect"),
            ("collected", "In process"),
            ("settled", "Settled"),
            ("returned", "Returned"),
            ("rejected", "Rejected"),
        ],
        default="draft",
        index=True,
        readonly=True,
        help="In process: in a file sent to the bank, not settled yet. Settled: the bank "
        "statement shows the credit. Returned/rejected: see the return.",
    )
    settled_date = fields.Date(readonly=True)
    return_ids = fields.One2many("flex.sepa.return", "batch_line_id", string="Returns")
    prenotification_mail_id = fields.Many2one("mail.mail", readonly=True)

    @api.model
    def _insert_lines(self, vals_list):
        """One INSERT for the whole batch: the ORM's ``create`` of 10,000 lines takes longer
        than the rest of the collection (its per-record defaults and related fields). The
        values are plain columns prepared by ``_prepare_line_vals``."""
        if not vals_list:
            return
        self.env.flush_all()
        columns = [
            "batch_id",
            "invoice_id",
            "partner_id",
            "mandate_id",
            "amount",
            "excluded",
            "reason",
            "sequence_type",
            "collection_date",
            "end_to_end_id",
            "amended_iban",
        ]
        uid = self.env.uid
        rows = [
            (
                *(vals.get(column) or None for column in columns[:5]),
                bool(vals.get("excluded")),
                *(vals.get(column) or None for column in columns[6:]),
            )
            for vals in vals_list
        ]
        execute_values(
            self.env.cr._obj,
            f"""
            INSERT INTO flex_sepa_batch_line ({", ".join(columns)}, company_id,
                   create_uid, write_uid, create_date, write_date)
            SELECT v.*, b.company_id, {int(uid)}, {int(uid)},
                   now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC'
              FROM (VALUES %s) AS v({", ".join(columns)})
              JOIN flex_sepa_batch b ON b.id = v.batch_id
            """,
            rows,
            template="(%s::int, %s::int, %s::int, %s::int, %s::numeric, %s::bool, %s, "
            "%s, %s::date, %s, %s)",
            page_size=5000,
        )
        self.env["flex.sepa.batch.line"].invalidate_model()

    def _send_prenotification(self):
        """The debtor is told the amount, day, mandate and creditor identifier; once per
        invoice (a re-collected invoice is not announced twice). Queued: Odoo's mail queue
        sends it."""
        template = self.env.ref("subscription_flex_sepa.mail_template_sepa_prenotification")
        lines = self.filtered(lambda line: not line.invoice_id.flex_sepa_prenotified)
        if not lines:
            return
        # Rendered in batches (send_mail renders record by record: minutes for 10,000);
        # the mails come back in the order of the lines.
        mails = template.sudo().send_mail_batch(
            lines.ids, force_send=False, email_layout_xmlid="mail.mail_notification_light"
        )
        for line, mail in zip(lines, mails, strict=True):
            line.prenotification_mail_id = mail
        lines.invoice_id.flex_sepa_prenotified = True

    @api.depends("invoice_id", "collection_date")
    def _compute_display_name(self):
        for line in self:
            line.display_name = (
                f"{line.invoice_id.name} ({format_date(self.env, line.collection_date)})"
            )
