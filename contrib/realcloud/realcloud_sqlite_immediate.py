"""Loaded in the cinder venv by a .pth file: SQLite transactions start with BEGIN IMMEDIATE.

cinder-api, -scheduler and -volume share one SQLite file. oslo.db starts every
transaction with a plain (deferred) BEGIN, so a transaction that reads first
and writes later fails at once with "database is locked" when another process
wrote in between: SQLite cannot wait there without risking a deadlock, and
cinder-api answered 500. BEGIN IMMEDIATE takes the write lock up front, where
SQLite does wait (the connection's 30 s busy timeout). Test infrastructure only:
production Cinder runs on MySQL/PostgreSQL.
"""

try:
    from sqlalchemy import event, text
    from sqlalchemy.engine import Engine
except ImportError:  # a venv without SQLAlchemy has nothing to change
    Engine = None

if Engine is not None:

    @event.listens_for(Engine, "begin")
    def _begin_immediate(conn):
        # Runs before oslo.db's own listener, which then sees the transaction
        # open and emits no BEGIN of its own.
        if conn.engine.dialect.name == "sqlite" and "in_transaction" not in conn.info:
            conn.execute(text("BEGIN IMMEDIATE"))
            conn.info["in_transaction"] = True
