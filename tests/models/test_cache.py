import threading

import pytest
import torch

from models import ModelCache, load_backbone


def test_one_instance_per_key_and_lru_eviction():
    cache = ModelCache(max_models=2)
    a = cache.get("resnet18", "untrained")
    assert cache.get("resnet18", "untrained") is a and cache.loads == 1
    b = cache.get("googlenet", "untrained")
    assert cache.get("resnet18", "untrained") is a  # a is now the most recent
    cache.get("efficientnet_lite0")  # evicts googlenet, the least recently used
    assert [k[0] for k in cache.entries()] == ["resnet18", "efficientnet_lite0"]
    assert cache.get("googlenet", "untrained") is not b and cache.loads == 4
    assert len(cache) == 2


def test_byte_budget():
    small = load_backbone("resnet18", "untrained").nbytes
    cache = ModelCache(max_models=10, max_bytes=int(small * 1.2))
    cache.get("resnet18", "untrained")
    cache.get("efficientnet_lite0")  # 18.8 MB + 46.8 MB > budget: resnet18 goes
    assert [k[0] for k in cache.entries()] == ["efficientnet_lite0"]
    cache.get("resnet50", "untrained")  # larger than the budget alone: kept, the rest goes
    assert [k[0] for k in cache.entries()] == ["resnet50"]


def test_threads_share_one_load():
    cache = ModelCache()
    barrier = threading.Barrier(8)
    got = []

    def worker():
        barrier.wait()
        got.append(cache.get("efficientnet_lite0"))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(got) == 8 and all(b is got[0] for b in got) and cache.loads == 1


def test_checkpoints_are_keyed_by_content():
    import io

    cache = ModelCache()
    state = load_backbone("resnet18", "untrained").spec.build(3).state_dict()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    a = cache.get("resnet18", "checkpoint", checkpoint=data)
    assert cache.get("resnet18", "checkpoint", checkpoint=bytes(data)) is a
    named = cache.get("resnet18", "checkpoint", checkpoint=data, class_names=b"x\ny\nz")
    assert named is not a and named.categories == ("x", "y", "z")
    with pytest.raises(ValueError):
        ModelCache(max_models=0)


def test_a_load_that_fails_keeps_no_lock_and_can_be_tried_again():
    """Random bytes as a checkpoint, many times (a user uploading): each fails with the
    loader's own error, and the cache holds no per-key lock after it (it kept one per failed
    checkpoint); the same model then loads."""
    import os

    from models import ModelError

    cache = ModelCache()
    for _ in range(5):
        with pytest.raises(ModelError):
            cache.get("resnet18", "checkpoint", checkpoint=os.urandom(256))
    assert cache._key_locks == {} and len(cache) == 0 and cache.loads == 0
    assert cache.get("resnet18", "untrained").name == "resnet18" and cache._key_locks == {}
