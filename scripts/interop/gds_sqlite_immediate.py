"""SQLite write transactions that wait instead of failing, for the test cloud's Keystone and Glance.

Installed into the cloud's virtualenv by scripts/cloud.sh with a .pth file, so it is imported at
interpreter start in every uwsgi worker. Production OpenStack runs on MySQL/PostgreSQL; the test cloud
runs on SQLite, where a transaction that began with a read (SQLAlchemy's default deferred BEGIN) and
then writes fails at once with "database is locked" whenever another connection wrote meanwhile:
SQLite's busy timeout cannot help there (WAL: a stale snapshot; rollback journal: a lock upgrade
that would deadlock). Glance's API then answers 500 to a perfectly valid request. Starting every
transaction with BEGIN IMMEDIATE takes the write lock up front, so concurrent requests queue on the
busy timeout (`?timeout=30` in the connection URL) instead. It changes no Keystone or Glance code:
only the BEGIN statement oslo.db already sends.
"""
try:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
except ImportError:  # a venv without SQLAlchemy: nothing to do
    Engine = None

if Engine is not None:
    @event.listens_for(Engine, "before_cursor_execute", retval=True)
    def _begin_immediate(conn, _cursor, statement, parameters, _context, _executemany):
        # oslo.db turns pysqlite's implicit BEGIN off and issues its own plain BEGIN on every
        # transaction start; that statement becomes BEGIN IMMEDIATE here.
        if conn.dialect.name == "sqlite" and statement.strip().upper() == "BEGIN":
            statement = "BEGIN IMMEDIATE"
        return statement, parameters
