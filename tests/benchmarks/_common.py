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
