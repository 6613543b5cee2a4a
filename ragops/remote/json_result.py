"""The result protocol of the JSON-printing host scripts (a shared piece: ``ragops.remote.NEEDS``
ships it in front of every script that uses it, so there is one copy).

``check(name, ok, evidence)`` is one entry of a result's ``checks``; ``run_json_main(main)`` is a
script's whole ``__main__``: ``main(argv)`` is run and its result printed as the last stdout line,
one JSON object with ``ok``; an exception becomes ``{"ok": false, "error": "Type: message"}``
(the caller needs JSON, not a traceback). ``echo_checks``: every check also goes to stderr as
``PASS|FAIL name: evidence`` (for a human reading the run's log).
"""

import json
import sys


def check(name, ok, evidence):
    return {"check": name, "ok": bool(ok), "evidence": evidence}


def run_json_main(main, echo_checks=False):
    try:
        result = main(sys.argv[1:])
    except Exception as exc:  # noqa: BLE001 - the caller needs JSON, not a traceback
        result = {"ok": False, "error": "%s: %s" % (type(exc).__name__, exc)}
    if echo_checks:
        for c in result.get("checks") or []:
            sys.stderr.write("%s %s: %s\n" % ("PASS" if c["ok"] else "FAIL", c["check"], c["evidence"]))
    print(json.dumps(result))
