"""Hostile and random input against the bank-file parser (``core/bankfiles.py``).

Two families of generated files, each drawn by hypothesis:

- **valid files** written by the test suite's independent ISO 20022 writer
  (``subscription_flex_sepa/tests/bankfiles.py``) from generated entries (every message
  and version, every kind of entry, odd but legal amounts, references and texts): the
  parser must accept each one and read back exactly what was written;
- **mutated files**: one of those, damaged (truncated, bytes flipped, inserted or
  deleted, an element removed, duplicated or moved, a text replaced by garbage, a DTD or
  entity smuggled in, the namespace changed, another encoding declared): the parser must
  either accept it (the damage may leave a valid file) or refuse it with
  :class:`BankFileError`, and nothing else: no other exception, no hang.

The same mutated files also go through the import itself (``_import_file`` on a bank
journal of the file's account, in a real database): each is booked, or refused with a
``UserError`` that leaves every table as it was.

CI runs FLEX_FUZZ_EXAMPLES (default 600) examples of each parser property (1,800 files,
1,200 of them mutated) and a third as many imports; for a longer run:
``FLEX_FUZZ_EXAMPLES=20000 bash setup/test.sh -k fuzz``.
"""

import os
import random
from datetime import date, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from odoo.exceptions import UserError
from odoo.tests import TransactionCase, tagged

from odoo.addons.subscription_flex_sepa.core import bankfiles as parser
from odoo.addons.subscription_flex_sepa.tests import bankfiles as writer

EXAMPLES = int(os.environ.get("FLEX_FUZZ_EXAMPLES", "600"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
IBAN = "DE89370400440532013000"
CAMT = ["camt.053.001.02", "camt.053.001.08", "camt.054.001.02", "camt.054.001.08"]
PAIN = ["pain.002.001.03", "pain.002.001.10"]

# Max35Text / Max140Text of the schemas: printable, no surrounding blanks.
text35 = (
    st.text(st.characters(codec="utf-8", categories=["L", "N", "P", "Zs"]), min_size=1, max_size=35)
    .map(str.strip)
    .filter(bool)
)
references = (
    st.from_regex(r"[A-Za-z0-9/\-?:().,'+ ]{1,35}", fullmatch=True)
    .map(str.strip)
    .filter(lambda ref: ref and ref != "NOTPROVIDED")  # SEPA's "no reference"
)
amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("999999999.99"), places=2)
days = st.dates(min_value=date(2020, 1, 1), max_value=date(2035, 12, 31))
reason_codes = st.sampled_from(["AM04", "MD01", "MD06", "MS03", "AC04", "SL01", "FF01"])


@st.composite
def camt_entries(draw):
    kind = draw(st.sampled_from(["credit", "return", "batch", "other"]))
    entry = {
        "kind": kind,
        "amount": draw(amounts),
        "date": draw(days),
        "ref": draw(st.none() | references),
        "end_to_end_id": draw(references),
    }
    if kind == "return":
        entry["fee"] = draw(st.sampled_from([Decimal(0), Decimal("3.50"), Decimal("0.01")]))
        entry["reason"] = draw(reason_codes)
    elif kind == "batch":
        entry.update(msg_id=draw(references), pmt_inf_id=draw(references))
        details = draw(st.lists(amounts, max_size=3))
        entry["count"] = len(details) or draw(st.integers(1, 9999))
        if details:
            entry["amount"] = sum(details, Decimal(0))
            entry["details"] = [
                {"amount": value, "end_to_end_id": f"E2E-{index}"}
                for index, value in enumerate(details)
            ]
    elif kind == "other":
        entry["sign"] = draw(st.sampled_from(["CRDT", "DBIT"]))
        entry["info"] = draw(st.none() | text35)
    else:
        entry["info"] = draw(st.none() | text35)
    return entry


@st.composite
def valid_files(draw):
    """(bytes, what was written): a camt with 1-6 entries or a pain.002."""
    version = draw(st.sampled_from(CAMT + PAIN))
    if version.startswith("pain"):
        transactions = [
            {
                "pmt_inf_id": draw(st.sampled_from(["PMT-1", "PMT-2"])),
                "end_to_end_id": draw(references),
                "reason": draw(reason_codes),
                "amount": draw(amounts),
            }
            for _i in range(draw(st.integers(1, 5)))
        ]
        data = writer.pain002(version, draw(references), transactions, msg_id=draw(references))
        return version, data, transactions
    entries = draw(st.lists(camt_entries(), min_size=1, max_size=6))
    build = writer.camt053 if version.startswith("camt.053") else writer.camt054
    return version, build(version, IBAN, entries, msg_id=draw(references)), entries


def _booked_amount(entry):
    if entry["kind"] == "return":
        return -(entry["amount"] + entry.get("fee", Decimal(0)))
    if entry["kind"] == "other" and entry["sign"] == "DBIT":
        return -entry["amount"]
    return entry["amount"]


@FUZZ
@given(valid_files())
def test_valid_files_are_read_back_exactly(generated):
    version, data, written = generated
    message = parser.parse(data)
    assert message.version == version
    if version.startswith("pain"):
        read = [
            (info.pmt_inf_id, tx.end_to_end_id, tx.reason, tx.amount)
            for info in message.payment_infos
            for tx in info.transactions
        ]
        # One block per payment information id, in order of first appearance.
        blocks = list(dict.fromkeys(tx["pmt_inf_id"] for tx in written))
        assert read == [
            (block, tx["end_to_end_id"], tx["reason"], tx["amount"])
            for block in blocks
            for tx in written
            if tx["pmt_inf_id"] == block
        ]
        return
    (statement,) = message.statements
    assert statement.iban == IBAN
    assert [entry.signed_amount for entry in statement.entries] == [
        _booked_amount(entry) for entry in written
    ]
    assert [entry.ref for entry in statement.entries] == [entry["ref"] for entry in written]
    for entry, source in zip(statement.entries, written, strict=True):
        assert entry.booking_date == source["date"]
        if source["kind"] == "return":
            assert entry.return_reason == source["reason"]
            assert entry.total_fee == source.get("fee", Decimal(0))


def _mutations(data, rnd):
    """A damaged copy of ``data`` (bytes), the damage chosen by ``rnd``."""
    kind = rnd.randrange(12)
    if kind == 0:  # truncated
        return data[: rnd.randrange(len(data))]
    if kind == 1:  # bytes flipped
        damaged = bytearray(data)
        for _i in range(rnd.randint(1, 8)):
            damaged[rnd.randrange(len(damaged))] = rnd.randrange(256)
        return bytes(damaged)
    if kind == 2:  # bytes inserted or deleted
        at = rnd.randrange(len(data))
        if rnd.random() < 0.5:
            return (
                data[:at]
                + bytes(rnd.randrange(256) for _i in range(rnd.randint(1, 16)))
                + data[at:]
            )
        return data[:at] + data[at + rnd.randint(1, 64) :]
    if kind == 3:  # a DTD, an external entity or entity expansion smuggled in
        payload = rnd.choice(
            [
                b'<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
                b'<!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>',
                b'<!DOCTYPE Document SYSTEM "http://127.0.0.1:9/x.dtd">',
            ]
        )
        head, _sep, body = data.partition(b"?>")
        return head + b"?>" + payload + body
    if kind == 4:  # another encoding declared than the bytes are in
        return data.replace(
            b'encoding="UTF-8"',
            rnd.choice([b'encoding="UTF-16"', b'encoding="EBCDIC-US"', b'encoding="nope"']),
            1,
        )
    if kind == 5:  # the namespace of another message or version
        return data.replace(
            b"urn:iso:std:iso:20022:tech:xsd:",
            b"urn:iso:std:iso:20022:tech:xsd:" + rnd.choice([b"x", b"camt.052.001.08#", b""]),
            1,
        )
    # tree-level damage
    root = etree.fromstring(data)
    elements = list(root.iter())[1:]
    element = rnd.choice(elements)
    parent = element.getparent()
    if kind == 6:  # removed
        parent.remove(element)
    elif kind == 7:  # duplicated
        parent.insert(parent.index(element), etree.fromstring(etree.tostring(element)))
    elif kind == 8:  # moved elsewhere
        parent.remove(element)
        rnd.choice(list(root.iter())).append(element)
    elif kind == 9:  # text replaced by garbage
        element.text = "".join(
            rnd.choice("0123456789.-+eE,:TZ abcdéſ\u202e\U0001f4a9")
            for _i in range(rnd.randint(0, 40))
        )
    elif kind == 10:  # an amount out of range, or a date that is not one
        element.text = rnd.choice(["1e999", "-0.00", "0." + "9" * 30, "2027-02-30", "NaN", ""])
    else:  # an attribute or a foreign element added
        if rnd.random() < 0.5:
            element.set(rnd.choice(["Ccy", "foo", "{http://evil}x"]), "XXX")
        else:
            element.append(etree.Element("{http://evil}Payload"))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


@FUZZ
@given(valid_files(), st.integers(0, 2**32 - 1))
def test_mutated_files_are_accepted_or_refused_cleanly(generated, seed):
    _version, data, _written = generated
    damaged = _mutations(data, random.Random(seed))
    try:
        message = parser.parse(damaged)
    except parser.BankFileError as error:
        assert error.code  # a code the Odoo layer words in the user's language
        return
    # Accepted: the damage left a file the schema allows, read like any other.
    assert message.version in CAMT + PAIN


@FUZZ
@given(st.binary(max_size=2048) | st.text(max_size=512).map(str.encode))
def test_random_bytes_are_refused_cleanly(data):
    try:
        parser.parse(data)
    except parser.BankFileError:
        return
    raise AssertionError(f"random bytes were accepted as a bank file: {data!r}")


def test_the_mutations_do_reach_every_outcome():
    """The fuzzing above is only worth something if the damage it does is varied: over
    a fixed sample, files are refused with several different codes, and some damaged
    files are still valid (a removed optional element)."""
    data = writer.camt054(
        "camt.054.001.08",
        IBAN,
        [
            {
                "kind": "return",
                "amount": Decimal("49.90"),
                "fee": Decimal("3.50"),
                "date": date(2027, 3, 10) + timedelta(days=index),
                "ref": f"R-{index}",
                "end_to_end_id": f"INV/2027/{index:05d}",
                "reason": "AM04",
            }
            for index in range(3)
        ],
    )
    codes, accepted = set(), 0
    for seed in range(400):
        try:
            parser.parse(_mutations(data, random.Random(seed)))
            accepted += 1
        except parser.BankFileError as error:
            codes.add(error.code)
    assert {"not_xml", "schema", "dtd", "unsupported"} <= codes, codes
    assert accepted > 0


TABLES = (
    "flex_sepa_bank_file",
    "flex_sepa_bank_entry",
    "account_bank_statement",
    "account_bank_statement_line",
    "account_move",
    "account_move_line",
    "account_partial_reconcile",
    "flex_sepa_return",
    "ir_attachment",
)


# Outside odoo.addons, Odoo gives a test class no tags: the default ones, given here.
@tagged("standard", "at_install")
class TestFuzzedImports(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.journal = cls.env["account.journal"].create(
            {
                "name": "Fuzzed bank",
                "code": "FUZZ",
                "type": "bank",
                "currency_id": cls.env.ref("base.EUR").id,
                "bank_acc_number": IBAN,
            }
        )

    def _rows(self):
        self.env.flush_all()
        counts = {}
        for table in TABLES:
            self.env.cr.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 - constant names
            counts[table] = self.env.cr.fetchone()[0]
        return counts

    @settings(
        max_examples=max(EXAMPLES // 3, 1),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.lists(camt_entries(), min_size=1, max_size=4), st.integers(0, 2**32 - 1))
    def test_mutated_files_are_imported_whole_or_not_at_all(self, entries, seed):
        build = random.Random(seed).choice([writer.camt053, writer.camt054])
        version = ("camt.053.001.08", "camt.053.001.02", "camt.054.001.08", "camt.054.001.02")[
            seed % 2 + (2 if build is writer.camt054 else 0)
        ]
        data = build(version, IBAN, entries, msg_id=f"FUZZ-{seed}")
        refs = [entry["ref"] for entry in entries if entry.get("ref")]
        # A quarter of the files as written: they must be booked, unless they give one bank
        # reference to two entries (then refused whole, naming it).
        intact = seed % 4 == 0 and len(refs) == len(set(refs))
        if not intact:
            data = _mutations(data, random.Random(seed))
        with self.env.cr.savepoint(flush=False) as savepoint:
            before = self._rows()
            try:
                bank_file = self.env["flex.sepa.bank.file"]._import_file(data, "fuzzed.xml")
            except UserError as error:
                self.assertFalse(intact, f"a valid file was refused: {error}")
                self.assertTrue(str(error))
                self.assertEqual(self._rows(), before, "a refused file wrote something")
            else:
                self.assertEqual(bank_file.company_id, self.env.company)
                if intact:
                    self.assertEqual(bank_file.entry_count, len(entries))
                self.assertGreater(
                    self._rows()["flex_sepa_bank_file"], before["flex_sepa_bank_file"]
                )
            savepoint.rollback()
        self.env.invalidate_all()
