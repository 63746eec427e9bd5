"""config.cache.RedisCache: Django's RedisCache with one redis-py client per pool, on a real Redis."""

import uuid

import pytest
from django.conf import settings

from config.cache import RedisCache
from tests.helpers import run_in_threads


@pytest.fixture
def cache():
    backend = RedisCache(settings.REDIS_URL, {"KEY_PREFIX": f"cache-test-{uuid.uuid4().hex}"})
    yield backend
    backend.delete_many(["key", "count"])  # its own keys only: the suite's worker and simulator share this Redis


def test_the_service_cache_is_this_backend():
    assert settings.CACHES["default"]["BACKEND"] == "config.cache.RedisCache"


def test_it_reads_and_writes_like_djangos_and_keeps_one_client_per_pool(cache):
    assert cache.add("key", 1, 5) is True
    assert cache.add("key", 2, 5) is False
    assert cache.get("key") == 1
    assert cache.incr("key") == 2
    client = cache._cache.get_client()
    assert cache._cache.get_client(write=True) is client
    cache.delete("key")
    assert cache.get("key") is None


def test_the_shared_client_serves_threads_at_once(cache):
    cache.set("count", 0, 30)

    run_in_threads([lambda: [cache.incr("count") for _ in range(50)]] * 8)

    assert cache.get("count") == 400
