"""NodeTimerHook: per-node wall times, and the summary at the end of a run."""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace

from hgt_cluster_kedro.hooks import NodeTimerHook


def test_node_times_are_measured_and_summarised(caplog):
    hook = NodeTimerHook()
    hook.before_pipeline_run()
    fast, slow = SimpleNamespace(name="fast"), SimpleNamespace(name="slow")
    with caplog.at_level(logging.INFO, logger="hgt_cluster_kedro.hooks"):
        for node, pause in ((fast, 0.0), (slow, 0.05)):
            hook.before_node_run(node=node)
            time.sleep(pause)
            hook.after_node_run(node=node)
        hook.after_pipeline_run()
    assert hook.seconds["slow"] >= 0.05 > hook.seconds["fast"]
    summary = [r.getMessage() for r in caplog.records if "Node times" in r.getMessage()]
    assert len(summary) == 1
    # slowest first
    assert summary[0].index("slow") < summary[0].index("fast")
