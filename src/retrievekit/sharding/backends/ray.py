"""Shards as Ray actors: one named actor per shard, holding that shard's memory-mapped collection, restarted by
Ray from the shard's last commit when it dies (its process or its node). The coordinator talks to them with
ordinary actor calls; a call to a dead or restarting actor raises ShardUnavailableError, never hangs (bounded by
``timeout``).

Ray binds to the machine's interface address unless told otherwise; a local Ray started here binds to 127.0.0.1.
On Linux Ray also rewrites 127.0.0.1 to the interface address unless RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 is set
before ``import ray`` (``init_ray`` sets it when Ray is not imported yet).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from retrievekit.core.errors import RetrievekitError
from retrievekit.sharding.backends.base import ShardPool, ShardUnavailableError
from retrievekit.sharding.shard import Shard

NAMESPACE = "retrievekit"
LOCAL = ("local", "auto-local")  # start a Ray here (bound to 127.0.0.1) unless this process already joined one


def init_ray(address: str | None, *, namespace: str = NAMESPACE, num_cpus: int | None = None) -> None:
    """Join the Ray cluster at ``address`` ("auto", "HOST:PORT", "ray://HOST:10001"), or start a local one bound
    to 127.0.0.1 (``address`` "local" or None); nothing if this process is connected already."""
    import sys

    if "ray" not in sys.modules:  # read once at import: keep 127.0.0.1 as given, send no usage reports
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address is None or address in LOCAL:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private local Ray: no token file written to ~/.ray
        # Ray starts its workers at nice 15; shard actors are the service itself, not background work: on a busy
        # machine they were starved (a 10x slower ingest measured). A cluster started by `ray start` needs
        # RAY_worker_niceness=0 in that command's environment for the same reason.
        os.environ.setdefault("RAY_worker_niceness", "0")
    try:
        import ray
    except ImportError:
        raise RetrievekitError("sharding on Ray needs the ray extra: pip install 'retrievekit[ray]'") from None
    if ray.is_initialized():
        return
    if address is None or address in LOCAL:
        ray.init(num_cpus=num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1", namespace=namespace,
                 log_to_driver=False)
    else:
        ray.init(address=address, namespace=namespace, log_to_driver=False)


# The first handle this process got to each shard actor, kept for the life of the process: Ray collects a
# non-detached actor once its creating handle is gone, even while other handles (from get_if_exists) still use it.
_HANDLES: dict[tuple[str, str], Any] = {}


class RayShards(ShardPool):
    """``paths`` must be reachable at the same path from every node that may run a shard (a shared or network
    file system, or one machine). ``cluster``: a name for this sharded collection (its resolved folder), so every
    client of the same collection in the same Ray cluster reuses the same actors. ``resources``: per-shard Ray
    resources (e.g. ``[{"shard0": 1}, ...]`` to pin shard i to nodes offering that resource); default: spread over
    the nodes. ``num_cpus``: CPUs each actor reserves (0: shards share CPUs with everything else). ``detached``
    (default: True on a cluster given by address, False on a local Ray started here): the shard actors outlive this
    process, for other clients (a server, more writers) of the same collection; ``shutdown`` ends them."""

    def __init__(self, paths: Sequence[Path], *, address: str | None, cluster: str, num_cpus: float = 0,
                 resources: Sequence[Mapping[str, float]] | None = None, detached: bool | None = None,
                 namespace: str = NAMESPACE) -> None:
        init_ray(address, namespace=namespace)
        import ray

        if resources is not None and len(resources) != len(paths):
            raise RetrievekitError(f"{len(resources)} resource sets for {len(paths)} shards")
        if detached is None:  # a cluster others connect to keeps its shards; a private local Ray does not
            detached = not (address is None or address in LOCAL)
        tag = hashlib.blake2b(cluster.encode(), digest_size=6).hexdigest()
        remote = ray.remote(Shard)
        self.actors: list[Any] = []
        for i, path in enumerate(paths):
            name = f"retrievekit-shard-{tag}-{i}"
            known = _HANDLES.get((namespace, name))
            if known is not None:
                self.actors.append(known)
                continue
            options: dict[str, Any] = {
                "name": name, "namespace": namespace, "get_if_exists": True,
                "max_restarts": -1,  # Ray restarts a dead shard (from its last commit) as often as needed
                "max_task_retries": 0,  # a call in flight when it died fails: writes are not replayed blindly
                "num_cpus": num_cpus, "max_concurrency": 8,  # searches of several clients run side by side
            }
            if resources is not None:
                options["resources"] = dict(resources[i])
            else:
                options["scheduling_strategy"] = "SPREAD"
            if detached:
                options["lifetime"] = "detached"
            handle = remote.options(**options).remote(str(path), i)
            _HANDLES[(namespace, name)] = handle
            self.actors.append(handle)
        self._ray = ray

    @property
    def size(self) -> int:
        return len(self.actors)

    def submit(self, shard: int, method: str, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.actors[shard], method).remote(*args, **kwargs)

    def wait(self, shard: int, pending: Any) -> Any:
        ray = self._ray
        try:
            return ray.get(pending, timeout=self.timeout)
        except ray.exceptions.RayTaskError as exc:  # the shard's own error (a bad filter, a lost transaction)
            raise exc.as_instanceof_cause() from None
        except ray.exceptions.GetTimeoutError:
            ray.cancel(pending)
            raise ShardUnavailableError(shard, f"no answer within {self.timeout} s") from None
        except ray.exceptions.RayActorError as exc:  # dead, restarting, or its node is gone
            reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            raise ShardUnavailableError(shard, f"{type(exc).__name__}: {reason}") from None

    def discard(self, pending: Any) -> None:
        try:
            self._ray.cancel(pending)
        except Exception:  # already finished or gone: nothing to cancel
            pass

    def kill(self, shard: int, *, restart: bool = True) -> None:
        """Kill a shard's actor (Ray restarts it from its last commit unless ``restart`` is False)."""
        self._ray.kill(self.actors[shard], no_restart=not restart)

    def shutdown(self) -> None:
        """End this collection's shard actors (for every client); the shards' data stays."""
        for actor in self.actors:
            self._ray.kill(actor, no_restart=True)
        for key in [k for k, v in _HANDLES.items() if any(v is a for a in self.actors)]:
            del _HANDLES[key]
        self.actors = []

    def close(self) -> None:
        """Forget the actors here (they stay for other clients; see ``shutdown``)."""
        self.actors = []
