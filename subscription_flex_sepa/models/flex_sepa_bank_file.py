"""Bank files: pain.002 status reports, camt.054 notifications, camt.053 statements.

``env["flex.sepa.bank.file"]._import_file(data, filename)`` reads one file (the wizard
calls it) and, in one transaction:

- refuses it whole when it is not a supported, schema-valid ISO 20022 message, is for an
  account that is not a bank journal of the company, or was already imported (same
  content): nothing is written;
- books every camt entry once (its bank reference, ``AcctSvcrRef``, is unique per
  journal: an entry a camt.054 already brought is not booked again from the camt.053)
  as a statement line of the bank journal;
- matches credits with the debits in process (batch booking: one credit per payment
  information block; or one per transaction, by EndToEndId) and reconciles them, so the
  invoices are paid; an amount that does not add up is left open with its reason;
- matches rejects (pain.002) and returns (camt) with the original debit by EndToEndId,
  undoes its payment, books the return and its fee on its own reconciled statement line,
  and applies the reason code's policy (``flex.sepa.return``);
- keeps every entry it could not match as an open statement line with the reason listed.
"""

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from psycopg2 import errors as pg_errors
from psycopg2.extras import execute_values

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.fields import Command

from ..core import bankfiles


def _to_float(amount):
    return float(amount) if amount is not None else 0.0


def _column_value(vals, column):
    """An ORM value as its column stores it (False is NULL, numbers stay numbers)."""
    value = vals.get(column)
    if column in ("amount", "fee"):
        return value or 0.0
    return None if value is False else value


def _money(amount):
    """A file's amount as the bank wrote it (two decimals), in messages."""
    return format(amount, ".2f")


class FlexSepaBankFile(models.Model):
    _name = "flex.sepa.bank.file"
    _description = "SEPA Bank File"
    _inherit = ["mail.thread"]
    _order = "id desc"
    _check_company_auto = True

    name = fields.Char(required=True, readonly=True)
    company_id = fields.Many2one(
        "res.company", required=True, readonly=True, default=lambda self: self.env.company
    )
    message_type = fields.Char(string="Message", readonly=True)  # e.g. camt.053.001.08
    message_id = fields.Char(string="Message Id", readonly=True)
    checksum = fields.Char(readonly=True, index=True, copy=False)
    attachment_id = fields.Many2one("ir.attachment", readonly=True)
    journal_id = fields.Many2one("account.journal", readonly=True, check_company=True)
    statement_id = fields.Many2one("account.bank.statement", readonly=True)
    batch_id = fields.Many2one("flex.sepa.batch", string="Original Batch", readonly=True)
    entry_ids = fields.One2many("flex.sepa.bank.entry", "file_id", string="Entries")
    return_ids = fields.One2many("flex.sepa.return", compute="_compute_return_ids")
    entry_count = fields.Integer(compute="_compute_counts", store=True)
    matched_count = fields.Integer(compute="_compute_counts", store=True)
    return_count = fields.Integer(compute="_compute_counts", store=True)
    unmatched_count = fields.Integer(compute="_compute_counts", store=True)
    duplicate_count = fields.Integer(compute="_compute_counts", store=True)

    _sql_constraints = [
        (
            "checksum_company_unique",
            "UNIQUE(company_id, checksum)",
            "This bank file was already imported.",
        ),
    ]

    @api.depends("entry_ids.state")
    def _compute_counts(self):
        for bank_file in self:
            states = bank_file.entry_ids.mapped("state")
            bank_file.entry_count = len(states)
            bank_file.matched_count = states.count("matched")
            bank_file.return_count = states.count("returned")
            bank_file.unmatched_count = states.count("unmatched")
            bank_file.duplicate_count = states.count("duplicate")

    def _compute_return_ids(self):
        for bank_file in self:
            bank_file.return_ids = bank_file.entry_ids.return_ids

    # ------------------------------------------------------------------ import

    @api.model
    def _import_file(self, data, filename=None):
        """Import one bank file (bytes) for the current company; returns the
        ``flex.sepa.bank.file``. Raises ``UserError`` and writes nothing when the file
        cannot be imported whole."""
        self.check_access("create")
        company = self.env.company
        try:
            message = bankfiles.parse(data)
        except bankfiles.BankFileError as error:
            raise UserError(self._error_message(error)) from error
        checksum = hashlib.sha256(data).hexdigest()
        known = self.search([("company_id", "=", company.id), ("checksum", "=", checksum)])
        if known:
            raise UserError(
                self.env._(
                    "This file was already imported as %(file)s on %(date)s: nothing to do.",
                    file=known.name,
                    date=fields.Date.to_string(known.create_date.date()),
                )
            )
        # Two sessions importing the same file (or two files with the same bookings) at
        # once: the second one's INSERT of the file (or of a booking) waits on the unique
        # index until the first commits, then fails, and its whole import with it:
        # imported once.
        try:
            with self.env.cr.savepoint():
                # sudo: booking statement lines is the bookkeeper's right, which
                # Community's Billing Administrators lack although they post the payments
                # these entries settle; everything below is restricted to the current
                # company (its journals, batches and debits, by explicit domains and SQL
                # conditions).
                bank_file = self.sudo()._import_message(message, data, checksum, filename)
        except pg_errors.UniqueViolation as error:
            if error.diag.constraint_name not in (
                "flex_sepa_bank_file_checksum_company_unique",
                "flex_sepa_bank_entry_key_unique",
            ):
                raise
            raise UserError(
                self.env._(
                    "This file, or bookings it reports, was imported by another session at "
                    "the same moment: nothing was imported from it now. Import it again to "
                    "book what it has that is new."
                )
            ) from error
        return bank_file.sudo(False)

    def _import_message(self, message, data, checksum, filename):
        company = self.env.company
        self._check_bank_references(message)
        bank_file = self.create(
            {
                "name": filename or message.msg_id or message.version,
                "company_id": company.id,
                "message_type": message.version,
                "message_id": message.msg_id,
                "checksum": checksum,
            }
        )
        if message.kind == "pain.002":
            bank_file._import_status_report(message)
        else:
            for statement in message.statements:
                bank_file._import_statement(message, statement)
        bank_file.attachment_id = self.env["ir.attachment"].create(
            {
                "name": filename or f"{message.msg_id}.xml",
                "raw": data,
                "mimetype": "application/xml",
                "res_model": self._name,
                "res_id": bank_file.id,
            }
        )
        self.env["account.move"]._flex_sepa_update_risk(
            bank_file.entry_ids.batch_line_ids.invoice_id
        )
        return bank_file

    def _check_bank_references(self, message):
        """A bank reference (``AcctSvcrRef``) is one booking on one account: a file that
        gives it to two of its entries contradicts itself (which one did the bank book?
        its balances count both), so it is refused whole, before anything is written."""
        seen = {}
        for statement in message.statements:
            for entry in statement.entries:
                if not entry.ref:
                    continue
                first = seen.setdefault((statement.iban, entry.ref), entry)
                if first is not entry:
                    raise UserError(
                        self.env._(
                            "The file gives the bank reference %(ref)s (AcctSvcrRef) to two "
                            "entries of account %(iban)s: entry %(first)s (%(first_amount)s) "
                            "and entry %(second)s (%(second_amount)s). A bank reference is "
                            "one booking, so the file contradicts itself: nothing was "
                            "imported. Ask the bank for a corrected file.",
                            ref=entry.ref,
                            iban=statement.iban,
                            first=first.index + 1,
                            first_amount=_money(first.signed_amount),
                            second=entry.index + 1,
                            second_amount=_money(entry.signed_amount),
                        )
                    )

    def _error_message(self, error):
        env = self.env
        messages = {
            "empty": env._("The file is empty."),
            "too_large": env._("The file is too large (%(size)s bytes).", size=error.details),
            "not_xml": env._(
                "The file is not an XML file or is truncated: %(details)s", details=error.details
            ),
            "dtd": env._(
                "The file declares a DTD or entities, which bank files never do: refused."
            ),
            "unsupported": env._(
                "Unsupported message %(message)s: import camt.053 (001.02, 001.08), camt.054 "
                "(001.02, 001.08) or pain.002 (001.03, 001.10) files.",
                message=error.details,
            ),
            "schema": env._(
                "The file does not follow the ISO 20022 schema: %(details)s",
                details=error.details,
            ),
        }
        return messages.get(error.code, error.code)

    # ------------------------------------------------------------------ pain.002

    def _import_status_report(self, message):
        env = self.env
        batch = env["flex.sepa.batch"].search(
            [("name", "=", message.original_msg_id), ("company_id", "=", self.company_id.id)]
        )
        if not batch or batch.state != "generated":
            raise UserError(
                env._(
                    "Status report on message %(msg)s: no direct debit batch of %(company)s "
                    "was sent with that identifier.",
                    msg=message.original_msg_id,
                    company=self.company_id.name,
                )
            )
        self.batch_id = batch
        lines = batch.line_ids
        by_e2e = {line.end_to_end_id: line for line in lines}
        # (line, reason code, entry vals, technical): a reject of the whole file or of a
        # whole block (GrpSts / PmtInfSts RJCT, e.g. FF01) is technical, the creditor's
        # bank refusing the file before any debtor saw it; a transaction's own reject
        # (TxSts RJCT with its reason) is the debtor's.
        rejected = []
        entries = []
        group_rejected = message.group_status == "RJCT"
        listed = set()
        for block in message.payment_infos:
            listed.add(block.pmt_inf_id)
            block_rejected = block.status == "RJCT" or (group_rejected and not block.status)
            if block_rejected and not block.transactions:
                for line in lines.filtered(lambda ln, b=block: ln.pmt_inf_id == b.pmt_inf_id):
                    rejected.append(
                        (
                            line,
                            block.reason or message.group_reason,
                            {"pmt_inf_id": block.pmt_inf_id},
                            True,
                        )
                    )
                continue
            for tx in block.transactions:
                if tx.status != "RJCT" and not (block_rejected and not tx.status):
                    continue
                line = by_e2e.get(tx.end_to_end_id)
                reason = tx.reason or block.reason or message.group_reason
                technical = not tx.reason and (block_rejected or group_rejected)
                vals = {
                    "end_to_end_id": tx.end_to_end_id,
                    "pmt_inf_id": block.pmt_inf_id,
                    "amount": _to_float(tx.amount),
                    "reason_code": reason,
                }
                if not line:
                    entries.append(
                        {
                            **vals,
                            "state": "unmatched",
                            "reason": env._(
                                "No debit with EndToEndId %(e2e)s in %(batch)s.",
                                e2e=tx.end_to_end_id,
                                batch=batch.name,
                            ),
                        }
                    )
                else:
                    rejected.append((line, reason, vals, technical))
        if group_rejected:
            # The whole file: the debits of blocks the report does not list too.
            rejected += [
                (line, message.group_reason, {}, True)
                for line in lines
                if line.pmt_inf_id not in listed
            ]
        today = fields.Date.context_today(self)
        return_vals = []
        for line, reason, vals, technical in rejected:
            entry_vals = {
                "end_to_end_id": line.end_to_end_id,
                "pmt_inf_id": line.pmt_inf_id,
                "amount": line.amount,
                "reason_code": reason,
                **{k: v for k, v in vals.items() if v},
            }
            if line.state != "collected":
                entries.append(
                    {
                        **entry_vals,
                        "state": "unmatched",
                        "reason": env._(
                            "Debit %(e2e)s is %(state)s: a reject cannot apply to it.",
                            e2e=line.end_to_end_id,
                            state=line.state,
                        ),
                    }
                )
                continue
            entries.append({**entry_vals, "state": "returned", "batch_line_ids": [line.id]})
            return_vals.append(
                {
                    "batch_line_id": line.id,
                    "return_type": "reject",
                    "reason_code": reason or "OTHER",
                    "date": message.created.date() if message.created else today,
                    "amount": line.amount,
                    "fee": 0.0,
                    "technical": technical,
                }
            )
        records = self._create_entries(entries)
        returned = records.filtered(lambda e: e.state == "returned")
        for vals, entry in zip(return_vals, returned, strict=True):
            vals["bank_entry_id"] = entry.id
        returns = env["flex.sepa.return"]._create_from_bank(return_vals)
        returns._reverse_rejected_payments()
        batch._flex_sepa_tell_technical_reject(returns.filtered("technical"), self)
        # A batch credit waiting for these rejects (the bank credited the block without
        # them) can be matched now.
        env["flex.sepa.bank.entry"].search(
            [
                ("state", "=", "unmatched"),
                ("company_id", "=", self.company_id.id),
                ("pmt_inf_id", "in", list({line.pmt_inf_id for line, *_rest in rejected})),
            ]
        )._rematch()

    # ------------------------------------------------------------------ camt

    def _journal_for(self, iban):
        env = self.env
        journal = env["account.journal"].search(
            [
                ("type", "=", "bank"),
                ("company_id", "=", self.company_id.id),
                ("bank_account_id.sanitized_acc_number", "=", iban),
            ],
            limit=1,
        )
        if journal:
            return journal
        # sudo: only to tell "another company's account" from "an unknown account"; no
        # data of the other company is shown.
        elsewhere = (
            env["account.journal"]
            .sudo()
            .search_count([("bank_account_id.sanitized_acc_number", "=", iban)])
        )
        if elsewhere:
            raise UserError(
                env._(
                    "The file is for account %(iban)s, which is not an account of %(company)s: "
                    "import it in the company that owns it.",
                    iban=iban,
                    company=self.company_id.name,
                )
            )
        raise UserError(
            env._(
                "No bank journal of %(company)s has the account %(iban)s of this file.",
                company=self.company_id.name,
                iban=iban,
            )
        )

    def _import_statement(self, message, statement):
        env = self.env
        journal = self._journal_for(statement.iban)
        currency = journal.currency_id or journal.company_id.currency_id
        if statement.currency and statement.currency != currency.name:
            raise UserError(
                env._(
                    "The file's account is in %(file)s, journal %(journal)s in %(currency)s.",
                    file=statement.currency,
                    journal=journal.name,
                    currency=currency.name,
                )
            )
        self.journal_id = journal
        entries = [entry for entry in statement.entries if entry.status == "BOOK"]
        # Pending or information-only entries are not bookings yet: listed, not booked.
        self._create_entries(
            [
                {
                    "journal_id": journal.id,
                    "date": entry.booking_date,
                    "amount": _to_float(entry.signed_amount),
                    "bank_ref": entry.ref or entry.entry_ref,
                    "label": self._label(entry),
                    "state": "skipped",
                    "reason": env._(
                        "Not booked by the bank (%(status)s): imported with the statement that "
                        "books it.",
                        status=entry.status,
                    ),
                }
                for entry in statement.entries
                if entry.status != "BOOK"
            ]
        )
        keys, occurrences = [], defaultdict(int)
        for entry in entries:
            # Entries without a bank reference that look alike (two charges of the same
            # amount on one day) are two bookings: the second is "#2", in every file that
            # reports them, so a later file still finds each one once.
            key = self._entry_key(statement, entry)
            occurrences[key] += 1
            if occurrences[key] > 1:
                key = f"{key[:250]}#{occurrences[key]}"
            keys.append(key)
        known = {
            entry.key: entry
            for entry in env["flex.sepa.bank.entry"].search(
                [
                    ("journal_id", "=", journal.id),
                    ("key", "in", keys),
                    ("state", "not in", ("duplicate", "skipped")),
                ]
            )
        }
        if message.kind == "camt.053":
            # The day's statement repeats what camt.054 notifications already booked: those
            # lines are its lines too (its balances count them). A booking already in
            # another statement means the statements overlap: refused whole.
            for entry in known.values():
                other = entry.statement_line_id.statement_id
                if other:
                    raise UserError(
                        env._(
                            "The booking %(ref)s is already in the bank statement %(statement)s "
                            "(file %(file)s): this statement overlaps it, nothing was imported.",
                            ref=entry.bank_ref or entry.key,
                            statement=other.name,
                            file=entry.file_id.name,
                        )
                    )
        matcher = _Matcher(env, self.company_id, entries)
        entry_vals, plans = [], []
        for entry, key in zip(entries, keys, strict=True):
            vals = {
                "key": key,
                "journal_id": journal.id,
                "date": entry.booking_date,
                "amount": _to_float(entry.signed_amount),
                "bank_ref": entry.ref or entry.entry_ref,
                "pmt_inf_id": entry.batch_pmt_inf_id
                or next((tx.pmt_inf_id for tx in entry.transactions if tx.pmt_inf_id), None),
                "end_to_end_id": ", ".join(
                    tx.end_to_end_id for tx in entry.transactions if tx.end_to_end_id
                )[:255]
                or False,
                "reason_code": entry.return_reason,
                "fee": _to_float(entry.total_fee),
                "label": self._label(entry),
            }
            if key in known:
                entry_vals.append(
                    {
                        **vals,
                        "state": "duplicate",
                        "reason": env._(
                            "Already imported from %(file)s.", file=known[key].file_id.name
                        ),
                    }
                )
                plans.append(None)
                continue
            plan = matcher.match(entry)
            entry_vals.append({**vals, **plan.entry_vals()})
            plans.append(plan)
        if message.kind == "camt.053":
            self.statement_id = env["account.bank.statement"].create(
                {
                    "name": statement.identifier or message.msg_id,
                    "journal_id": journal.id,
                    "reference": self.name,
                    "balance_start": _to_float(statement.opening),
                    "balance_end_real": _to_float(statement.closing),
                }
            )
        booked = [
            (vals, plan) for vals, plan in zip(entry_vals, plans, strict=True) if plan is not None
        ]
        st_lines = env["flex.sepa.booking"]._book_statement_lines(
            journal,
            self.statement_id,
            [plan.booking_item(journal, vals["label"]) for vals, plan in booked],
            adopt=env["account.bank.statement.line"].concat(
                *(entry.statement_line_id for entry in known.values())
            )
            if self.statement_id
            else None,
        )
        for (vals, _plan), st_line in zip(booked, st_lines, strict=True):
            vals["statement_line_id"] = st_line.id
        records = self._create_entries(entry_vals)
        booked = [
            (record, plan) for record, plan in zip(records, plans, strict=True) if plan is not None
        ]
        _Plan.reconcile(
            env,
            [(plan, st_line.id) for (_r, plan), st_line in zip(booked, st_lines, strict=True)],
        )
        self._mark_settled([plan for _r, plan in booked if plan.kind == "settlement"])
        return_vals = []
        for (record, plan), st_line in zip(booked, st_lines, strict=True):
            for vals in plan.return_vals:
                return_vals.append(
                    {**vals, "statement_line_id": st_line.id, "bank_entry_id": record.id}
                )
        env["flex.sepa.return"]._create_from_bank(return_vals)

    def _mark_settled(self, plans):
        by_date = defaultdict(list)
        for plan in plans:
            by_date[plan.entry.booking_date].extend(plan.line_ids)
        for day, ids in by_date.items():
            self.env["flex.sepa.batch.line"].browse(ids).write(
                {"state": "settled", "settled_date": day}
            )

    def _entry_key(self, statement, entry):
        """The booking's identity on the account: the bank's reference, else what the
        entry says about itself (two files reporting one booking give one key)."""
        if entry.ref:
            return f"ref:{entry.ref}"
        refs = (
            "|".join(tx.end_to_end_id or tx.info or "" for tx in entry.transactions)
            or entry.batch_pmt_inf_id
            or entry.info
        )
        return (
            f"{entry.booking_date}|{'C' if entry.credit else 'D'}|{entry.amount}|"
            f"{entry.entry_ref or ''}|{refs}"
        )[:255]

    def _label(self, entry):
        if entry.batch_pmt_inf_id:
            return f"SEPA DD {entry.batch_pmt_inf_id}"
        parts = [entry.info] + [tx.info or tx.end_to_end_id or "" for tx in entry.transactions]
        return " ".join(part for part in parts if part)[:250] or (entry.ref or "/")

    ENTRY_COLUMNS = (
        "key",
        "journal_id",
        "date",
        "amount",
        "fee",
        "bank_ref",
        "pmt_inf_id",
        "end_to_end_id",
        "reason_code",
        "label",
        "state",
        "reason",
        "statement_line_id",
    )

    def _create_entries(self, vals_list):
        """The file's entries, in one INSERT (the ORM's create takes seconds for a file
        of 10,000: defaults, many2many commands per record); plain columns only."""
        Entry = self.env["flex.sepa.bank.entry"]
        if not vals_list:
            return Entry
        self.env.flush_all()
        ids = self.env["flex.sepa.booking"]._next_ids("flex_sepa_bank_entry", len(vals_list))
        uid = int(self.env.uid)
        columns = self.ENTRY_COLUMNS
        execute_values(
            self.env.cr._obj,
            f"""
            INSERT INTO flex_sepa_bank_entry (id, file_id, company_id, {", ".join(columns)},
                                              create_uid, write_uid, create_date, write_date)
            SELECT v.*, {uid}, {uid}, now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC'
              FROM (VALUES %s) AS v
            """,
            [
                (
                    entry_id,
                    self.id,
                    self.company_id.id,
                    *(_column_value(vals, column) for column in columns),
                )
                for entry_id, vals in zip(ids, vals_list, strict=True)
            ],
            template="(%s, %s, %s, %s, %s::int, %s::date, %s::numeric, %s::numeric, %s, %s, %s, "
            "%s, %s, %s, %s, %s::int)",
            page_size=5000,
        )
        links = [
            (entry_id, line_id)
            for entry_id, vals in zip(ids, vals_list, strict=True)
            for line_id in vals.get("batch_line_ids") or ()
        ]
        if links:
            execute_values(
                self.env.cr._obj,
                "INSERT INTO flex_sepa_bank_entry_debit_rel (entry_id, line_id) VALUES %s",
                links,
                page_size=5000,
            )
        Entry.invalidate_model()
        self.invalidate_recordset(["entry_ids"])
        records = Entry.browse(ids)
        # The stored counts of the file follow its entries.
        self.env.add_to_compute(self._fields["entry_count"], self)
        for fname in ("matched_count", "return_count", "unmatched_count", "duplicate_count"):
            self.env.add_to_compute(self._fields[fname], self)
        return records

    def action_open_entries(self):
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "name": self.name,
            "res_model": "flex.sepa.bank.entry",
            "view_mode": "list,form",
            "domain": [("file_id", "=", self.id)],
        }


@dataclass
class _Debit:
    """A collected debit as the matching needs it (read in one query per file)."""

    id: int
    end_to_end_id: str
    pmt_inf_id: str
    state: str
    amount: Decimal
    partner_id: int
    invoice_name: str
    payment_id: int
    outstanding_account_id: int
    receivable_account_id: int
    outstanding_line_id: int
    receivable_line_id: int


class _Plan:
    """What one camt entry becomes: a settlement of debits in process, a return of
    debits, or an open statement line (unmatched, with a reason)."""

    def __init__(self, entry, kind, debits=(), reason=None):
        self.entry = entry
        self.kind = kind  # settlement / return / charge / unmatched
        self.debits = list(debits)
        self.account_id = None  # a charge's account
        self.reason = reason
        self.return_vals = []

    @classmethod
    def left_open(cls, entry, reason):
        """An open statement line on the suspense account, with the reason listed."""
        return cls(entry, "unmatched", reason=reason)

    @property
    def line_ids(self):
        return [debit.id for debit in self.debits]

    def entry_vals(self):
        if self.kind == "unmatched":
            return {"state": "unmatched", "reason": self.reason}
        if self.kind == "charge":
            return {"state": "charge"}
        return {
            "state": "matched" if self.kind == "settlement" else "returned",
            "batch_line_ids": self.line_ids,
        }

    def _counterparts(self, journal):
        """(account, partner, amount in the bank's view, label) of each counterpart."""
        if self.kind == "settlement":
            return [
                (d.outstanding_account_id, d.partner_id, d.amount, d.invoice_name)
                for d in self.debits
            ]
        if self.kind == "charge":
            label = self.entry.info or journal.env._("Bank charges")
            return [(self.account_id, False, self.entry.signed_amount, label)]
        if self.kind != "return":
            return []
        counterparts = [
            (d.receivable_account_id, d.partner_id, -d.amount, d.invoice_name) for d in self.debits
        ]
        fee = self.entry.amount - sum((d.amount for d in self.debits), Decimal(0))
        if fee:
            company = journal.company_id
            if not company.flex_sepa_fee_account_id:
                raise UserError(
                    journal.env._(
                        "Choose the account of bank fees on returned debits of %(company)s "
                        "(Settings ▸ Invoicing ▸ SEPA Direct Debit).",
                        company=company.name,
                    )
                )
            counterparts.append(
                (
                    company.flex_sepa_fee_account_id.id,
                    self.debits[0].partner_id,
                    -fee,
                    journal.env._("Bank fee"),
                )
            )
        return counterparts

    def booking_item(self, journal, label):
        """The statement line of the entry, for ``flex.sepa.booking``."""
        entry = self.entry
        amount = float(entry.signed_amount)
        partners = {d.partner_id for d in self.debits}
        item = {
            "date": entry.booking_date,
            "amount": amount,
            "payment_ref": label,
            "ref": entry.ref or False,
            "partner_id": partners.pop() if len(partners) == 1 else False,
            "counterparts": None,
        }
        counterparts = self._counterparts(journal)
        if not counterparts:
            return item  # an open line on the suspense account
        company = journal.company_id
        currency = journal.currency_id or company.currency_id

        def balance(value):
            value = float(value)
            if currency == company.currency_id:
                return value
            return currency._convert(value, company.currency_id, company, entry.booking_date)

        item["balance"] = remaining = balance(amount)
        item["counterparts"] = []
        for index, (account_id, partner_id, value, label) in enumerate(counterparts):
            # The last one takes the rounding of the conversion.
            part = -remaining if index == len(counterparts) - 1 else -balance(value)
            remaining += part
            item["counterparts"].append((account_id, partner_id, -float(value), part, label))
        return item

    @classmethod
    def reconcile(cls, env, pairs):
        """Reconcile every settlement and return of the file with its payments:
        settlements on the outstanding receipts account (the payments become paid), returns
        on the receivable (the payment no longer pays the invoice, which is open again)."""
        items = [
            (plan, st_line_id)
            for plan, st_line_id in pairs
            if plan.kind in ("settlement", "return")
        ]
        if not items:
            return
        returned = [
            d.receivable_line_id
            for plan, _st in items
            if plan.kind == "return"
            for d in plan.debits
        ]
        touched = env["flex.sepa.booking"]._unreconcile(returned)
        env.cr.execute(
            """
            SELECT aml.id, st.id, aml.account_id, aml.partner_id, aml.amount_currency
              FROM account_move_line aml
              JOIN account_bank_statement_line st ON st.move_id = aml.move_id
             WHERE st.id = ANY(%s)
             ORDER BY aml.id
            """,
            [[st_line_id for _plan, st_line_id in items]],
        )
        mine_by_key = defaultdict(list)
        for aml_id, st_line_id, account_id, partner_id, amount_currency in env.cr.fetchall():
            key = (st_line_id, account_id, partner_id, round(abs(amount_currency), 2))
            mine_by_key[key].append(aml_id)
        to_reconcile = []
        for plan, st_line_id in items:
            for debit in plan.debits:
                if plan.kind == "settlement":
                    account, theirs = debit.outstanding_account_id, debit.outstanding_line_id
                else:
                    account, theirs = debit.receivable_account_id, debit.receivable_line_id
                key = (st_line_id, account, debit.partner_id, round(float(debit.amount), 2))
                if mine_by_key[key] and theirs:
                    mine = mine_by_key[key].pop(0)
                    # Settlement: the payment's outstanding debit against the bank's credit;
                    # return: the bank's receivable debit against the payment's credit.
                    pair = (theirs, mine) if plan.kind == "settlement" else (mine, theirs)
                    to_reconcile.append(pair)
        env["flex.sepa.booking"]._reconcile_pairs(to_reconcile, touched)


class _Matcher:
    """Finds the debits a camt entry is about, with the rules written once."""

    def __init__(self, env, company, entries):
        self.env = env
        self.company = company
        e2e_ids = {tx.end_to_end_id for e in entries for tx in e.transactions if tx.end_to_end_id}
        pmt_inf_ids = {e.batch_pmt_inf_id for e in entries if e.batch_pmt_inf_id}
        env.flush_all()
        # One query for the debits of the whole file (the ORM would read them line by
        # line through payments, invoices and their journal items).
        env.cr.execute(
            """
            SELECT l.id, l.end_to_end_id, l.pmt_inf_id, l.state, l.amount, l.partner_id,
                   inv.name, l.payment_id, pay.outstanding_account_id,
                   pay.destination_account_id,
                   (SELECT aml.id FROM account_move_line aml
                     WHERE aml.move_id = pay.move_id
                       AND aml.account_id = pay.outstanding_account_id
                     ORDER BY aml.id LIMIT 1),
                   (SELECT aml.id FROM account_move_line aml
                     WHERE aml.move_id = pay.move_id
                       AND aml.account_id = pay.destination_account_id
                     ORDER BY aml.id LIMIT 1)
              FROM flex_sepa_batch_line l
              JOIN flex_sepa_batch b ON b.id = l.batch_id AND b.state = 'generated'
              JOIN account_move inv ON inv.id = l.invoice_id
              JOIN account_payment pay ON pay.id = l.payment_id
             WHERE l.company_id = %s AND NOT l.excluded
               AND l.state IN ('collected', 'settled')
               AND (l.end_to_end_id = ANY(%s) OR l.pmt_inf_id = ANY(%s))
             ORDER BY l.id
            """,
            [company.id, list(e2e_ids), list(pmt_inf_ids)],
        )
        self.by_e2e = {}
        self.by_pmt_inf = defaultdict(list)
        for row in env.cr.fetchall():
            debit = _Debit(*row)
            debit.amount = Decimal(repr(debit.amount))
            self.by_e2e[debit.end_to_end_id] = debit
            self.by_pmt_inf[debit.pmt_inf_id].append(debit)
        self.used = {"settlement": set(), "return": set()}  # one of each per debit and file

    def _debits_by_e2e(self, entry):
        debits, missing = [], []
        for tx in entry.transactions:
            debit = self.by_e2e.get(tx.end_to_end_id)
            if debit:
                debits.append(debit)
            else:
                missing.append(tx.end_to_end_id or "?")
        return debits, missing

    def match(self, entry):
        env = self.env
        with_e2e = [tx for tx in entry.transactions if tx.end_to_end_id]
        if entry.credit:
            if with_e2e:
                debits, missing = self._debits_by_e2e(entry)
                if missing:
                    return _Plan.left_open(
                        entry,
                        env._(
                            "No direct debit in process with EndToEndId %(ids)s.",
                            ids=", ".join(missing[:5]),
                        ),
                    )
            elif entry.batch_pmt_inf_id:
                debits = [
                    d
                    for d in self.by_pmt_inf.get(entry.batch_pmt_inf_id, [])
                    if d.state == "collected"
                ]
                if not debits:
                    return _Plan.left_open(
                        entry,
                        env._(
                            "No direct debit in process in payment information %(id)s.",
                            id=entry.batch_pmt_inf_id,
                        ),
                    )
            elif entry.is_charge:
                return self._charge(entry)
            else:
                return _Plan.left_open(
                    entry,
                    env._("Not a direct debit collection of ours (no EndToEndId, no PmtInfId)."),
                )
            return self._settlement(entry, debits)
        if with_e2e:
            debits, missing = self._debits_by_e2e(entry)
            if missing:
                return _Plan.left_open(
                    entry,
                    env._(
                        "Return of an unknown debit: EndToEndId %(ids)s.",
                        ids=", ".join(missing[:5]),
                    ),
                )
            return self._return(entry, debits)
        if entry.is_charge and not entry.batch_pmt_inf_id:
            return self._charge(entry)
        return _Plan.left_open(entry, env._("Not a return of one of our debits."))

    def _charge(self, entry):
        """The bank's charges on the account (a charges bank transaction code, no debit of
        ours): booked on the bank charges account, the line reconciled."""
        account = self.company._flex_sepa_charges_account()
        if not account:
            return _Plan.left_open(
                entry,
                self.env._(
                    "Bank charges: choose the bank charges account of %(company)s (Settings ▸ "
                    "Invoicing ▸ SEPA Direct Debit) to have them booked.",
                    company=self.company.name,
                ),
            )
        plan = _Plan(entry, "charge")
        plan.account_id = account.id
        return plan

    def _settlement(self, entry, debits):
        env = self.env
        done = [d for d in debits if d.state != "collected" or d.id in self.used["settlement"]]
        if done:
            return _Plan.left_open(
                entry,
                env._(
                    "Debit %(e2e)s is already %(state)s.",
                    e2e=done[0].end_to_end_id,
                    state=done[0].state,
                ),
            )
        expected = sum((d.amount for d in debits), Decimal(0))
        if expected != entry.amount:
            return _Plan.left_open(
                entry,
                env._(
                    "Amount %(amount)s does not match the %(count)s debits in process "
                    "(%(expected)s): left for the accountant.",
                    amount=_money(entry.amount),
                    count=len(debits),
                    expected=_money(expected),
                ),
            )
        self.used["settlement"].update(d.id for d in debits)
        return _Plan(entry, "settlement", debits)

    def _return(self, entry, debits):
        env = self.env
        done = [d for d in debits if d.id in self.used["return"]]
        if done:
            return _Plan.left_open(
                entry,
                env._("Debit %(e2e)s is returned twice in this file.", e2e=done[0].end_to_end_id),
            )
        originals = sum((d.amount for d in debits), Decimal(0))
        fee = entry.amount - originals
        stated = entry.total_fee
        by_e2e = {d.end_to_end_id: d for d in debits}
        wrong = [
            tx.end_to_end_id
            for tx in entry.transactions
            if tx.instructed_amount is not None
            and tx.instructed_amount != by_e2e[tx.end_to_end_id].amount
        ]
        if fee < 0 or (stated and stated != fee) or wrong:
            return _Plan.left_open(
                entry,
                env._(
                    "Return of %(amount)s does not match the debits %(ids)s (%(expected)s plus "
                    "a fee of %(fee)s): left for the accountant.",
                    amount=_money(entry.amount),
                    ids=", ".join(by_e2e),
                    expected=_money(originals),
                    fee=_money(stated or fee),
                ),
            )
        self.used["return"].update(d.id for d in debits)
        plan = _Plan(entry, "return", debits)
        tx_by_e2e = {tx.end_to_end_id: tx for tx in entry.transactions}
        for index, debit in enumerate(debits):
            tx = tx_by_e2e.get(debit.end_to_end_id)
            code = (tx and tx.return_reason) or "OTHER"
            plan.return_vals.append(
                {
                    "batch_line_id": debit.id,
                    "return_type": "refund" if code == "MD06" else "return",
                    "reason_code": code,
                    "bank_info": (tx and tx.return_info) or False,
                    "date": entry.booking_date,
                    "amount": float(debit.amount),
                    # The entry's fee goes with its first debit.
                    "fee": float(fee) if index == 0 else 0.0,
                }
            )
        return plan


class FlexSepaBankEntry(models.Model):
    _name = "flex.sepa.bank.entry"
    _description = "SEPA Bank File Entry"
    _order = "file_id desc, id"
    _check_company_auto = True

    file_id = fields.Many2one("flex.sepa.bank.file", required=True, ondelete="cascade", index=True)
    company_id = fields.Many2one("res.company", required=True, index=True)
    journal_id = fields.Many2one("account.journal", index=True)
    currency_id = fields.Many2one(related="company_id.currency_id")
    key = fields.Char(index=True, help="The booking's identity on the account.")
    date = fields.Date()
    amount = fields.Float(digits="Account")
    fee = fields.Float(digits="Account")
    bank_ref = fields.Char(string="Bank Reference")
    pmt_inf_id = fields.Char(string="PmtInfId", index=True)
    end_to_end_id = fields.Char(string="EndToEndId")
    reason_code = fields.Char()
    label = fields.Char()
    state = fields.Selection(
        [
            ("matched", "Settled"),
            ("returned", "Returned / rejected"),
            ("charge", "Bank charges"),
            ("unmatched", "Left open"),
            ("duplicate", "Already imported"),
            ("skipped", "Not booked"),
        ],
        required=True,
        index=True,
    )
    reason = fields.Char(help="Why the entry was left open or skipped.")
    statement_line_id = fields.Many2one("account.bank.statement.line", readonly=True)
    batch_line_ids = fields.Many2many(
        "flex.sepa.batch.line",
        relation="flex_sepa_bank_entry_debit_rel",
        column1="entry_id",
        column2="line_id",
        string="Debits",
        readonly=True,
    )
    return_ids = fields.One2many("flex.sepa.return", "bank_entry_id")

    def init(self):
        # Each booking once per account, whatever the files and sessions: a second
        # report of it is kept as "duplicate" (without a statement line).
        self.env.cr.execute(
            """
            CREATE UNIQUE INDEX IF NOT EXISTS flex_sepa_bank_entry_key_unique
                ON flex_sepa_bank_entry (journal_id, key)
             WHERE state NOT IN ('duplicate', 'skipped') AND journal_id IS NOT NULL
            """
        )

    def _rematch(self):
        """Entries left open whose debits can be matched now (a batch credit that waited
        for the pain.002 of its rejects): their open statement line gets its counterparts
        and is reconciled."""
        for record in self.filtered(
            lambda e: e.state == "unmatched" and e.statement_line_id and e.amount > 0
        ):
            st_line = record.statement_line_id
            entry = bankfiles.Entry(
                index=0,
                amount=Decimal(repr(record.amount)),
                credit=True,
                booking_date=record.date,
                batch_pmt_inf_id=record.pmt_inf_id,
                transactions=[
                    bankfiles.Transaction(end_to_end_id=e2e)
                    for e2e in (record.end_to_end_id or "").split(", ")
                    if e2e
                ],
            )
            plan = _Matcher(self.env, record.company_id, [entry]).match(entry)
            if plan.kind != "settlement":
                record.reason = plan.reason
                continue
            journal = st_line.journal_id
            booking = self.env["flex.sepa.booking"]
            item = plan.booking_item(journal, record.label)
            currency = journal.currency_id or journal.company_id.currency_id
            st_line.move_id.with_context(force_delete=True, skip_readonly_check=True).write(
                {
                    "line_ids": [Command.clear()]
                    + [
                        Command.create(vals)
                        for vals in booking._move_line_values(journal, item, currency)
                    ]
                }
            )
            _Plan.reconcile(self.env, [(plan, st_line.id)])
            record.file_id._mark_settled([plan])
            record.write(
                {
                    "state": "matched",
                    "reason": False,
                    "batch_line_ids": [Command.set(plan.line_ids)],
                }
            )
