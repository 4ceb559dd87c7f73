"""Scale-out: one more instance joins a running lab, and nginx sends it traffic."""

from __future__ import annotations

import pytest
import requests

pytestmark = pytest.mark.cluster


def test_an_added_instance_is_healthy_and_takes_a_share_of_new_clients(make_lab) -> None:
    lab = make_lab("--mode", "redis", "--instances", "2")
    from sessions_lab.cluster.cluster import Cluster

    assert "app3 added" in Cluster(lab.run_dir).add("app3")
    assert lab.process("app3")["healthy"] is True
    served = {requests.get(f"{lab.url}/healthz", timeout=5).json()["instance"] for _ in range(12)}
    assert served == {"app1", "app2", "app3"}
    with pytest.raises(Exception, match="the next instance is app4"):
        Cluster(lab.run_dir).add("app9")
    lab.cli("down")
    assert lab.state()["instances"] == 3
