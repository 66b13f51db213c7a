"""How ``pytest -n auto`` splits the suite between workers (used by conftest.py under ``--dist loadscope``).

Each test module runs whole on one worker, so its module fixtures are built once; all of tests/torch is
one unit, so the session's trained runs are trained once and torch's export machinery warms up once.
The units known to be long go out first, so no worker is left finishing one of them alone at the end.
"""

from __future__ import annotations

from xdist.scheduler import LoadScopeScheduling

# Longest first, from `pytest -n auto --durations=0` (seconds of test time in Nov 2026: 45, 22, 9, 6, 5, 5).
LONG_UNITS = ("tests/torch", "tests/test_cluster.py", "tests/reliability/test_crashes.py",
              "tests/test_install.py", "tests/reliability/test_properties.py",
              "tests/reliability/test_nasty_input.py")


class LongFirstScheduling(LoadScopeScheduling):
    """xdist's loadscope, with tests/torch as one unit and the long units handed out first."""

    def __init__(self, config, log=None) -> None:
        super().__init__(config, log)
        self.ordered = False

    def _split_scope(self, nodeid: str) -> str:
        # xdist's own loadfile and loadgroup schedulers customise loadscope by overriding this method.
        return "tests/torch" if nodeid.startswith("tests/torch/") else super()._split_scope(nodeid)

    def _assign_work_unit(self, node) -> None:
        if not self.ordered:  # the queue is complete on the first call; order it once
            self.ordered = True
            rank = {unit: i for i, unit in enumerate(LONG_UNITS)}
            for unit in sorted(self.workqueue, key=lambda u: rank.get(u, len(LONG_UNITS))):
                self.workqueue.move_to_end(unit)
        super()._assign_work_unit(node)
