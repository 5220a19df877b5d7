"""What the benchmark scripts share: PostgreSQL administration and printing."""

import contextlib


def say(message=""):
    print(message, flush=True)


def pg_admin(sql, dbname="postgres"):
    """Run ``sql`` outside any transaction (CREATE/DROP DATABASE, VACUUM)."""
    import psycopg2

    cnx = psycopg2.connect(dbname=dbname)
    cnx.autocommit = True
    with contextlib.closing(cnx), cnx.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall() if cur.description else None


def db_exists(name):
    import psycopg2

    with contextlib.closing(psycopg2.connect(dbname="postgres")) as cnx, cnx.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        return bool(cur.fetchone())


def drop_db(name):
    """Drop ``name``, closing Odoo's own connections to it first."""
    import odoo

    odoo.sql_db.close_db(name)
    odoo.modules.registry.Registry.delete(name)
    pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def copy_db(template, name):
    """``CREATE DATABASE … TEMPLATE`` (file copy: fast for a big database)."""
    import odoo

    odoo.sql_db.close_db(template)
    drop_db(name)
    pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')


def vacuum_analyze(dbname):
    """``VACUUM ANALYZE`` of ``dbname``; returns the seconds it took."""
    import time

    import odoo

    odoo.sql_db.close_db(dbname)
    started = time.perf_counter()
    pg_admin("VACUUM ANALYZE", dbname)
    return time.perf_counter() - started


def prepared_registry(args, install, *seeders):
    """The registry of ``args.db``: installed and seeded (``install(db)`` then each
    ``seeder(registry)``), or copied from ``args.template`` when that one exists (made
    first when missing)."""
    import odoo

    source = args.template or args.db
    if not args.template or not db_exists(args.template):
        drop_db(source)
        registry = install(source)
        for seeder in seeders:
            seeder(registry)
    if args.template:
        copy_db(args.template, args.db)
    return odoo.modules.registry.Registry(args.db)


def install_addon(db, addon):
    """A new database ``db`` with ``addon`` installed (no demo data); its registry."""
    import time

    import odoo
    from odoo.service import db as db_service

    say(f"creating {db} ({addon}, no demo) ...")
    started = time.perf_counter()
    db_service._create_empty_database(db)
    odoo.tools.config["init"] = {addon: 1}
    registry = odoo.modules.registry.Registry.new(db, update_module=True)
    odoo.tools.config["init"] = {}
    say(f"installed in {time.perf_counter() - started:.0f} s")
    return registry
