"""The embedded Redis starts in a data directory that does not exist yet (a first start on PostgreSQL,
where no SQLite file has made it)."""

from __future__ import annotations

import redis

from app.core.redis_embedded import EmbeddedRedis


def test_it_starts_in_a_data_directory_that_is_not_there_yet(tmp_path):
    data_dir = tmp_path / "not" / "yet"
    server = EmbeddedRedis(data_dir).start()
    try:
        assert redis.Redis.from_url(server.url).ping()
        assert data_dir.is_dir()
    finally:
        server.stop()
