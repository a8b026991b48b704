"""The forwarding cache: TTLs honoured with the clock passed in, size bounded."""

from netservices.dns.cache import Cache


def test_entry_lives_for_its_ttl_and_reports_its_age():
    cache = Cache(10)
    cache.put("k", "v", 30, now=100.0)
    assert cache.get("k", now=100.0) == ("v", 0)
    assert cache.get("k", now=129.5) == ("v", 29)
    assert cache.get("k", now=130.0) is None
    assert len(cache) == 0


def test_zero_ttl_and_zero_size_keep_nothing():
    cache = Cache(10)
    cache.put("k", "v", 0, now=0)
    assert cache.get("k", now=0) is None
    off = Cache(0)
    off.put("k", "v", 60, now=0)
    assert off.get("k", now=0) is None


def test_least_recently_used_goes_first():
    cache = Cache(2)
    cache.put("a", 1, 60, now=0)
    cache.put("b", 2, 60, now=0)
    cache.get("a", now=1)
    cache.put("c", 3, 60, now=1)
    assert cache.get("b", now=1) is None and cache.get("a", now=1) == (1, 1) and len(cache) == 2
