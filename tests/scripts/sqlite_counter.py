#!/usr/bin/env python3
"""A counter in one SQLite database that processes on several mounts increment at once.

    sqlite_counter.py create DIR      make DIR/counter.db (rollback journal) holding 0
    sqlite_counter.py bump DIR N      N transactions, each reading the count and writing it
                                      plus one under SQLite's own locks; "done" at the end
    sqlite_counter.py check DIR       print PRAGMA integrity_check's verdict and the count

SQLite takes POSIX (fcntl) locks on the database for each transaction: no update is lost
only if every mount honours the others' locks and reads what the last holder wrote.
"""
import sqlite3
import sys

what, where = sys.argv[1], sys.argv[2] + "/counter.db"
if what == "create":
    db = sqlite3.connect(where)
    db.execute("PRAGMA journal_mode=DELETE")
    db.execute("CREATE TABLE c(n INTEGER)")
    db.execute("INSERT INTO c VALUES (0)")
    db.commit()
elif what == "bump":
    db = sqlite3.connect(where, timeout=60, isolation_level=None)
    for _ in range(int(sys.argv[3])):
        db.execute("BEGIN IMMEDIATE")
        (n,) = db.execute("SELECT n FROM c").fetchone()
        db.execute("UPDATE c SET n = ?", (n + 1,))
        db.execute("COMMIT")
    print("done", flush=True)
elif what == "check":
    db = sqlite3.connect(where)
    verdict = db.execute("PRAGMA integrity_check").fetchone()[0]
    print(verdict, db.execute("SELECT n FROM c").fetchone()[0])
else:
    sys.exit(f"unknown command {what}")
