"""The node process: open each hosted shard's store, start its Raft group, serve the node API.

Leadership balancing: every ``balance_interval_s`` the leader of a shard whose preferred leader
(the config's first replica) is another node asks PySyncObj to hand leadership over. Generated
configs rotate preferred leaders over the nodes, so leaders spread (about 5/5/6 for 16 shards)
instead of piling on whichever node won the first elections. A transfer is refused by PySyncObj
unless the target is fully caught up, so a lagging or dead preferred node keeps no leadership.
"""

from __future__ import annotations

import asyncio
import logging
import pathlib

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from ledger.config import ClusterConfig
from ledger.node.credentials import NodeAuthInterceptor
from ledger.node.service import NodeService, add_to_server
from ledger.replication.raft_group import ShardReplica, raft_settings, tick_period_s
from ledger.replication.snapshot import ShardSnapshots
from ledger.replication.state_machine import ShardStateMachine
from ledger.replication.tick_loop import TickLoop
from ledger.serving import bind_port, wait_for_stop_signal
from ledger.storage import LevelDBShardStore

__all__ = ["open_replicas", "run_node"]

log = logging.getLogger(__name__)

balance_interval_s = 2.0
balance_warmup_s = 3.0


def open_replicas(
    config: ClusterConfig,
    node_id: str,
    data_dir: pathlib.Path,
    compaction_entries: int,
    ticks: TickLoop,
    fsync: bool = True,
) -> dict[int, ShardReplica]:
    node = config.node(node_id)
    replicas: dict[int, ShardReplica] = {}
    for shard in config.shards_of(node_id):
        shard_dir = data_dir / f"shard-{shard.index:02d}"
        shard_dir.mkdir(parents=True, exist_ok=True)
        machine = ShardStateMachine(LevelDBShardStore(shard_dir / "db"))
        snapshots = ShardSnapshots(shard.index, machine)
        replica_nodes = config.replicas(shard.index)
        partners = [
            other.raft_address(shard.index) for other in replica_nodes if other.node_id != node_id
        ]
        position = [other.node_id for other in replica_nodes].index(node_id)
        replicas[shard.index] = ShardReplica(
            shard.index,
            node.raft_address(shard.index),
            partners,
            machine,
            raft_settings(
                shard_dir=shard_dir,
                secret=config.raft_secret,
                snapshots=snapshots,
                compaction_entries=compaction_entries,
                position=position,
                fsync=fsync,
            ),
            ticks,
        )
    return replicas


async def _balance_leadership(
    config: ClusterConfig, node_id: str, replicas: dict[int, ShardReplica]
) -> None:
    await asyncio.sleep(balance_warmup_s)
    while True:
        for shard, replica in replicas.items():
            preferred = config.shards[shard].preferred_leader
            if preferred != node_id and replica.is_leader():
                replica.request_transfer(config.node(preferred).raft_address(shard))
        await asyncio.sleep(balance_interval_s)


async def run_node(
    config: ClusterConfig,
    node_id: str,
    host: str,
    port: int,
    data_dir: pathlib.Path,
    compaction_entries: int,
    fsync: bool = True,
) -> None:
    ticks = TickLoop(tick_period_s)
    replicas = open_replicas(config, node_id, data_dir, compaction_entries, ticks, fsync)
    # TLS with this node's certificate; every call but health needs the cluster credential.
    server = grpc.aio.server(interceptors=[NodeAuthInterceptor(config.raft_secret)])
    add_to_server(NodeService(config, node_id, replicas), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    bound_port = bind_port(server, host, port, config.node_server_credentials(node_id))
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    print(f"ledger-node {node_id} listening on {host}:{bound_port}", flush=True)

    balancer = asyncio.create_task(_balance_leadership(config, node_id, replicas))
    await wait_for_stop_signal()
    balancer.cancel()
    await health_servicer.enter_graceful_shutdown()
    await server.stop(2.0)
    for replica in replicas.values():
        replica.stop()
    ticks.stop()
    for replica in replicas.values():
        replica.machine.store.close()
    print(f"ledger-node {node_id} stopped", flush=True)
