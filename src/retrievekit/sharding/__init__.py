"""Sharded collections: one collection split over N ordinary ones, searched by scatter-gather with exact global
BM25 statistics, written in atomic multi-shard commits; shards in this process or on Ray (extra ``ray``)."""

from retrievekit.sharding.collection import Cut, ShardedCollection, ShardedWriter
from retrievekit.sharding.routing import shard_of
from retrievekit.sharding.search import ShardedSearchResults

__all__ = ["Cut", "ShardedCollection", "ShardedSearchResults", "ShardedWriter", "shard_of"]
