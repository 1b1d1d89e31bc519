"""Operations settings: URLs shown in /status, logs and check-config keep what identifies them
and hide only secrets; the cluster example configs load and differ only where they must."""

from __future__ import annotations

from pathlib import Path

from chatd.settings import load_settings, redact_url

CLUSTER = Path(__file__).resolve().parents[2] / "config" / "cluster"


def test_a_postgresql_user_name_is_kept_and_its_password_hidden() -> None:
    assert redact_url("postgresql://chatd@db:5432/chatd") == "postgresql://chatd@db:5432/chatd"
    assert redact_url("postgresql://chatd:pw@db/chatd") == "postgresql://chatd:***@db/chatd"
    assert redact_url("postgres://u:p%40ss@db/x?sslmode=require") == (
        "postgres://u:***@db/x?sslmode=require"
    )
    assert redact_url("redis://pw-only@h") == "redis://***@h"  # Redis: may be a bare password


def test_the_three_cluster_configs_share_store_broker_and_name_and_differ_in_port_and_id() -> None:
    nodes = [load_settings(CLUSTER / f"node-{n}.toml", environ={}) for n in (1, 2, 3)]
    assert len({s.server.port for s in nodes}) == 3
    assert [s.server.node_id for s in nodes] == ["node-1", "node-2", "node-3"]
    assert len({s.server.name for s in nodes}) == 1  # logins are bound to it: one for all
    assert len({s.store.db for s in nodes}) == 1
    assert nodes[0].store.db.startswith("postgresql://")
    assert len({s.broker.url for s in nodes}) == 1
    assert nodes[0].broker.url.startswith("redis://")
    # nothing else differs
    strip = [
        {**s.as_dict(), "server": {**s.as_dict()["server"], "port": 0, "node_id": ""}}
        for s in nodes
    ]
    assert strip[0] == strip[1] == strip[2]
