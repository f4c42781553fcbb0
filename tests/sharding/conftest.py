"""Ray reads these once, when it is imported, so they are set before any test module imports it: Ray must keep
127.0.0.1 (instead of rewriting it to the machine's interface address), send no usage reports and run its
workers at normal priority."""

import os

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_worker_niceness", "0")  # Ray's default (15) starves the shard actors on a busy machine
