"""sqlite ``VACUUM`` of one database file: ``sqlite_vacuum.py DB`` (stdlib only; waits up to 60 s for a lock)."""
import sqlite3
import sys

if __name__ == "__main__":
    db = sqlite3.connect(sys.argv[1], timeout=60)
    db.execute("VACUUM")
    db.close()
