"""sqlite online backup of one database file: ``sqlite_backup.py SRC DST`` (stdlib only).

A consistent copy while writers go on (``src.backup``); waits up to 60 s for a lock.
"""
import sqlite3
import sys

if __name__ == "__main__":
    src = sqlite3.connect(sys.argv[1], timeout=60)
    dst = sqlite3.connect(sys.argv[2])
    src.backup(dst)
    dst.close()
    src.close()
