"""Where shards run: in this process (``local``) or as Ray actors (``ray``); one ``ShardPool`` interface."""
