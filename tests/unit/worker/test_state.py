"""The engine's state stores of one partition number: in memory, or on disk with a cache; both
write each change to the changelog once per transaction."""

from __future__ import annotations

import pytest

from hub.worker.state import ChangelogStore, DiskStore, rows_changelog

CHANGELOG = rows_changelog("bench-sut").name
REF = "row:pos:pos.ticket:{}"
KEY = b'"row:pos:pos.ticket:{}"'  # Faust's JSON key serializer


class Recorder:
    def __init__(self) -> None:
        self.written: list[tuple[str, bytes, bytes | None, int]] = []

    def send(self, topic, key, value, headers, partition=-1):
        self.written.append((topic, key, value, partition))


@pytest.fixture(params=["memory", "rocksdb"])
def store(request, tmp_path):
    recorder = Recorder()
    if request.param == "memory":
        made = ChangelogStore(recorder, CHANGELOG, partition=2)
    else:
        made = DiskStore(recorder, CHANGELOG, 2, tmp_path / "p2", cache=2)
    made.recorder = recorder
    yield made
    made.close()


def test_the_changelog_keeps_the_name_faust_gave_it():
    assert CHANGELOG == "bench-sut-engine-rows-changelog"


def test_changes_go_out_once_per_transaction_with_their_last_value(store):
    store.put(REF, {"row": {"ticket_id": 7}})
    store.put(REF, {"row": {"ticket_id": 8}})
    assert store.get(REF) == {"row": {"ticket_id": 8}}
    assert store.recorder.written == []  # written with the transaction, not before
    store.write_changes()
    assert store.recorder.written == [(CHANGELOG, KEY, b'{"row":{"ticket_id":8}}', 2)]
    store.put(REF, None)
    store.write_changes()
    assert store.recorder.written[-1] == (CHANGELOG, KEY, None, 2)
    assert store.get(REF) is None


def test_a_takeover_replaces_everything_and_writes_nothing(store):
    store.put("row:gone", {"row": {}})
    store.write_changes()
    count = store.replace([("row:a", {"row": {"n": 1}}), ("row:b", {"row": {}}), ("row:b", None)])
    assert count == 3  # entries read (the disk store keeps no list of its keys in memory)
    assert store.get("row:a") == {"row": {"n": 1}} and store.get("row:b") is None
    assert store.get("row:gone") is None
    assert len(store.recorder.written) == 1  # read back, not written


def test_the_disk_store_keeps_a_few_entries_in_memory_and_every_one_on_disk(tmp_path):
    store = DiskStore(Recorder(), CHANGELOG, 0, tmp_path / "p0", cache=2)
    for n in range(10):
        store.put(f"row:{n}", {"n": n})
    store.write_changes()
    assert store.cached <= 2
    assert [store.get(f"row:{n}") for n in range(10)] == [{"n": n} for n in range(10)]
    assert store.cached <= 2 and store.get("row:missing") is None
    store.close()
    assert not (tmp_path / "p0").exists()  # only ever a copy of the changelog


def test_the_disk_store_reads_what_was_last_written_whatever_its_cache_holds(tmp_path):
    import random

    chance = random.Random(7)
    store, truth = DiskStore(None, CHANGELOG, 0, tmp_path / "p0", cache=6), {}
    for step in range(5_000):
        ref = f"row:{chance.randrange(20)}"
        if chance.random() < 0.4:
            value = None if chance.random() < 0.2 else {"n": step}
            store.put(ref, value)
            truth[ref] = value
        else:
            assert store.get(ref) == truth.get(ref)
        if chance.random() < 0.1:
            store.write_changes()
        assert store.cached <= 6
    store.close()


def test_state_databases_of_processes_gone_are_deleted(tmp_path):
    import os

    from hub.settings import HubSettings
    from hub.worker.state import worker_disk

    root = tmp_path / "worker"
    gone, alive = root / "g-999999999", root / f"other-{os.getppid()}"
    for path in (gone, alive):
        (path / "p0").mkdir(parents=True)
    mine = worker_disk(HubSettings(state_dir=tmp_path, worker_id="g"))
    assert mine == root / f"g-{os.getpid()}"
    assert not gone.exists() and alive.exists()
