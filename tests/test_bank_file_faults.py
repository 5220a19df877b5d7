"""Bank files imported exactly once, under concurrency and crashes, on committed data.

- The same file imported from two sessions at the same time: one imports it, the other
  fails cleanly (it waits on the file's unique index, then its whole transaction goes);
  the bookings exist once.
- Two different files reporting the same bookings (a camt.054 and the camt.053 that
  repeats it) imported at the same time: each booking once.
- An import killed with SIGKILL in the middle (a real second process, its transaction
  open): nothing of it is left; imported again, it books everything, once.

The files hold bookings of a bank journal made for the test (its own IBAN): credits no
debit explains (wire transfers), each booked as an open statement line, the simplest
money a bank file moves. Settlement and return matching is tested in the addon's tests.
"""

import random
import textwrap
import threading
import uuid
from datetime import date
from decimal import Decimal

import pytest
from faults import german_iban, kill_in_transaction, start_script

import odoo
from odoo import SUPERUSER_ID, api
from odoo.exceptions import UserError
from odoo.modules.registry import Registry

from odoo.addons.subscription_flex_sepa.tests import bankfiles

DAY = date(2027, 3, 10)


def _registry():
    return Registry(odoo.tools.config["db_name"])


def _journal(registry):
    """A bank journal of the main company with its own account; returns (id, IBAN)."""
    iban = german_iban(random.randrange(10**9, 10**10))  # an account nobody else uses
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        company = env.ref("base.main_company")
        journal = env["account.journal"].create(
            {
                "name": f"Faults {iban[-6:]}",
                "code": f"F{uuid.uuid4().hex[:4].upper()}",
                "type": "bank",
                "company_id": company.id,
                "currency_id": env.ref("base.EUR").id,
                "bank_acc_number": iban,
            }
        )
        assert journal.bank_account_id.sanitized_acc_number == iban
        return journal.id, iban


def _entries(count, prefix):
    return [
        {
            "kind": "other",
            "sign": "CRDT",
            "amount": Decimal("10.00") + Decimal(index % 90) / 100,
            "date": DAY,
            "ref": f"{prefix}-{index}",
            "info": f"Wire transfer {prefix} {index}",
        }
        for index in range(count)
    ]


def _booked(registry, journal_id):
    """(statement lines, bank files, bank entries not duplicates) of the journal."""
    with registry.cursor() as cr:
        cr.execute(
            "SELECT count(*), count(DISTINCT payment_ref) FROM account_bank_statement_line"
            " WHERE journal_id = %s",
            [journal_id],
        )
        lines, distinct = cr.fetchone()
        assert lines == distinct, "a booking was booked twice"
        cr.execute(
            "SELECT count(DISTINCT file_id), count(*) FILTER (WHERE state != 'duplicate')"
            "  FROM flex_sepa_bank_entry WHERE journal_id = %s",
            [journal_id],
        )
        files, entries = cr.fetchone()
        return lines, files, entries


def _import_in_thread(registry, data, name, barrier, outcomes):
    try:
        with registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            barrier.wait(timeout=60)
            bank_file = env["flex.sepa.bank.file"]._import_file(data, name)
            count = bank_file.entry_count
            cr.commit()
            outcomes.append(("imported", name, count))
    except UserError as error:
        outcomes.append(("refused", name, type(error).__name__, str(error)))
    except Exception as error:  # noqa: BLE001 - the test reports anything else
        outcomes.append(("error", name, repr(error)))


def _race(registry, files):
    barrier = threading.Barrier(len(files))
    outcomes = []
    threads = [
        threading.Thread(target=_import_in_thread, args=(registry, data, name, barrier, outcomes))
        for name, data in files
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not [o for o in outcomes if o[0] == "error"], outcomes
    assert len(outcomes) == len(files), outcomes
    return outcomes


def test_same_file_from_two_sessions_at_once_is_imported_once():
    registry = _registry()
    journal_id, iban = _journal(registry)
    data = bankfiles.camt054(
        "camt.054.001.08", iban, _entries(300, "SAME"), msg_id=f"SAME-{iban[-6:]}"
    )
    outcomes = _race(registry, [("a.xml", data), ("b.xml", data)])
    assert sorted(o[0] for o in outcomes) == ["imported", "refused"], outcomes
    # The one that waited is told why, in words (not a database error).
    assert [o[2] for o in outcomes if o[0] == "refused"] == ["UserError"], outcomes
    assert _booked(registry, journal_id) == (300, 1, 300)
    # A third try, later: told it is already there, nothing written.
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        with pytest.raises(UserError, match="already imported"):
            env["flex.sepa.bank.file"]._import_file(data, "c.xml")
    assert _booked(registry, journal_id) == (300, 1, 300)


def test_two_files_with_the_same_bookings_at_once_book_them_once():
    """The camt.054 of the day and the camt.053 that repeats its bookings (same
    AcctSvcrRef) plus 50 more, imported at the same moment."""
    registry = _registry()
    journal_id, iban = _journal(registry)
    entries = _entries(250, "DAY")
    notification = bankfiles.camt054(
        "camt.054.001.08", iban, entries[:200], msg_id=f"NTF-{iban[-6:]}"
    )
    statement = bankfiles.camt053("camt.053.001.08", iban, entries, msg_id=f"STM-{iban[-6:]}")
    outcomes = _race(registry, [("ntf.xml", notification), ("stmt.xml", statement)])
    imported = [o for o in outcomes if o[0] == "imported"]
    assert imported, outcomes
    lines, _files, entry_count = _booked(registry, journal_id)
    if len(imported) == 2:
        # The second one started after the first committed: it saw the bookings and
        # kept them as duplicates.
        assert (lines, entry_count) == (250, 250)
    else:
        # It waited on the bookings' unique index and failed whole: imported later, it
        # books only what is new.
        (loser,) = [o for o in outcomes if o[0] == "refused"]
        data = notification if loser[1] == "ntf.xml" else statement
        with registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            env["flex.sepa.bank.file"]._import_file(data, loser[1])
        lines, _files, entry_count = _booked(registry, journal_id)
        assert (lines, entry_count) == (250, 250)


KILLED_IMPORT = textwrap.dedent(
    """
    import sys
    import time
    import odoo
    from odoo import SUPERUSER_ID, api
    from odoo.modules.registry import Registry

    odoo.tools.config.parse_config(["-c", sys.argv[1], "-d", sys.argv[2], "--log-level=warn"])
    data = open(sys.argv[3], "rb").read()
    registry = Registry(sys.argv[2])

    from odoo.addons.subscription_flex_sepa.models.flex_sepa_bank_file import FlexSepaBankFile

    book_statement = FlexSepaBankFile._import_statement

    def _import_statement(self, message, statement):
        # The statement's bookings written to the database, the transaction still open
        # (the attachment, the risk update and the commit to come): the test kills here.
        result = book_statement(self, message, statement)
        self.env.flush_all()
        print("written", flush=True)
        time.sleep(120)
        return result

    FlexSepaBankFile._import_statement = _import_statement
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        print("importing", flush=True)
        env["flex.sepa.bank.file"]._import_file(data, "killed.xml")
        env.flush_all()
        print("imported, committing", flush=True)
    print("done", flush=True)
    """
)


def test_import_killed_in_the_middle_leaves_nothing_and_runs_again_once(tmp_path):
    registry = _registry()
    journal_id, iban = _journal(registry)
    count = 3000
    data = bankfiles.camt053(
        "camt.053.001.08", iban, _entries(count, "KILL"), msg_id=f"KILL-{iban[-6:]}"
    )
    path = tmp_path / "statement.xml"
    path.write_bytes(data)
    script = tmp_path / "import.py"
    script.write_text(KILLED_IMPORT)
    process = start_script(registry, script, path)
    line = process.stdout.readline()
    assert line.strip() == "importing", (line, process.stderr.read())
    # Well inside the import: the file parsed, its 3,000 bookings written in the process's
    # open transaction (the script says so, then waits to be killed).
    line = process.stdout.readline()
    assert line.strip() == "written", (line, process.stderr.read())
    kill_in_transaction(registry, process)
    assert "done" not in process.stdout.read()
    # PostgreSQL rolled the dead session back: no file, no entry, no statement line, no
    # journal item, no move left half-made.
    assert _booked(registry, journal_id) == (0, 0, 0)
    with registry.cursor() as cr:
        cr.execute("SELECT count(*) FROM account_move WHERE journal_id = %s", [journal_id])
        assert cr.fetchone()[0] == 0
    # Imported again (the bank's file is still there): everything, once.
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        bank_file = env["flex.sepa.bank.file"]._import_file(data, "again.xml")
        assert bank_file.entry_count == count
    assert _booked(registry, journal_id) == (count, 1, count)
    with registry.cursor() as cr:
        cr.execute(
            "SELECT count(*), sum(amount) FROM account_bank_statement_line WHERE journal_id = %s",
            [journal_id],
        )
        lines, total = cr.fetchone()
    expected = sum(entry["amount"] for entry in _entries(count, "KILL"))
    assert (lines, Decimal(str(total)).quantize(Decimal("0.01"))) == (count, expected)
