"""Shared pytest hooks."""

from __future__ import annotations


# -- C core: which ISA paths and kernels ran, and which this CPU lacks (tests/test_kernels_property.py)
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    try:
        from engine_report import RAN

        from rnncore import _engine, _kernels
    except ImportError:
        return
    if not RAN["kernels"]:
        return
    table = _engine.isa_table()
    kernels = _kernels.kernels()
    tr = terminalreporter
    tr.section("rnncore C kernels by ISA")
    for t in table:
        ks = [k["name"] for k in kernels if k["isa"] == t["name"]]
        ran = [k for k in ks if k in RAN["kernels"]]
        if t["available"]:
            status = f"RAN {len(ran)}/{len(ks)} kernels"
        elif t["compiled"]:
            status = "compiled, NOT supported by this CPU: not run"
        else:
            status = "not in this build"
        tr.write_line(f"  {t['name']:<12} {status}")
