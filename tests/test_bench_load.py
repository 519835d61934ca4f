"""benchmarks/machine.py and report.py: the hypervisor's steal time is measured on its own and named in the
report's load column (a shared VM's usual source of noise)."""
from __future__ import annotations

import os

from benchmarks import machine, report


def test_steal_snapshot_reads_proc_stat():
    stolen, wall = machine.steal_snapshot()
    assert stolen >= 0 and wall > 0
    later = machine.steal_snapshot()
    assert later[0] >= stolen and later[1] >= wall


def test_steal_fraction_is_stolen_cpu_seconds_over_all_cpus():
    cpus = os.cpu_count() or 1
    assert machine.steal_fraction((10.0, 100.0), (10.0 + 0.5 * cpus, 101.0)) == 0.5
    assert machine.steal_fraction((10.0, 100.0), (10.0, 101.0)) == 0.0


def test_load_text_names_steal_from_one_percent():
    assert report.load_text({"other_load": 0.34, "steal": 0.3}) == "34% (steal 30%)"
    assert report.load_text({"other_load": 0.05, "steal": 0.004}) == "5%"
    assert report.load_text({"other_load": 0.02}) == "2%"   # results written before steal was recorded
