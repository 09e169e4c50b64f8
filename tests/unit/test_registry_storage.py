"""Unit tests for intent_router.storage.DirectoryStore and intent_router.registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from intent_router.backends.local import LocalBackend
from intent_router.errors import DeploymentNotFound, UserInputError
from intent_router.registry import ChampionRecord, ChampionRegistry, LedgerEntry
from intent_router.storage import DirectoryStore


# -- DirectoryStore ------------------------------------------------------------------------------
@pytest.fixture
def store(tmp_path: Path) -> DirectoryStore:
    return DirectoryStore(tmp_path / "store")


def test_read_of_a_missing_object_is_none(store: DirectoryStore) -> None:
    assert store.read("nothing/here.json") is None


def test_write_then_read_round_trips_bytes(store: DirectoryStore) -> None:
    data = bytes(range(256)) * 4

    store.write("a/b/c.bin", data)

    assert store.read("a/b/c.bin") == data


def test_write_returns_a_file_uri_inside_the_root(store: DirectoryStore) -> None:
    uri = store.write("x/y.txt", b"hello")

    assert uri.startswith("file://")
    assert uri == store.uri("x/y.txt")
    assert uri.endswith("/store/x/y.txt")
    assert (store.root / "x" / "y.txt").read_bytes() == b"hello"


def test_write_overwrites_an_existing_object(store: DirectoryStore) -> None:
    store.write("k.json", b"first version, longer")
    store.write("k.json", b"second")

    assert store.read("k.json") == b"second"


def test_write_is_atomic_and_leaves_no_temp_files(store: DirectoryStore) -> None:
    for i in range(5):
        store.write("dir/obj.json", f"version {i}".encode())
    store.write("dir/other.json", b"")

    files = sorted(p.relative_to(store.root).as_posix() for p in store.root.rglob("*"))
    assert files == ["dir", "dir/obj.json", "dir/other.json"]
    assert not list(store.root.rglob("*.tmp"))


def test_empty_bytes_are_stored_and_read_back_as_empty(store: DirectoryStore) -> None:
    store.write("empty", b"")

    assert store.read("empty") == b""


def test_delete_removes_and_tolerates_missing(store: DirectoryStore) -> None:
    store.write("gone.txt", b"x")

    store.delete("gone.txt")
    store.delete("gone.txt")

    assert store.read("gone.txt") is None


@pytest.mark.parametrize("path", ["../x", "a/../../x", "../store-sibling/file", "/etc/passwd"])
def test_paths_escaping_the_root_are_rejected(store: DirectoryStore, path: str) -> None:
    with pytest.raises(ValueError, match="escapes the storage root"):
        store.write(path, b"nope")
    with pytest.raises(ValueError, match="escapes the storage root"):
        store.read(path)
    with pytest.raises(ValueError, match="escapes the storage root"):
        store.delete(path)
    assert not (store.root.parent / "x").exists()


def test_dot_dot_that_stays_inside_the_root_is_allowed(store: DirectoryStore) -> None:
    store.write("a/../b.txt", b"inside")

    assert store.read("b.txt") == b"inside"


# -- ChampionRegistry ----------------------------------------------------------------------------
def champion(model_id: str, router: str = "default") -> ChampionRecord:
    return ChampionRecord(
        router=router,
        model_id=model_id,
        deployment_id=f"deploy-{model_id}",
        run_id=f"run-{model_id}",
        taxonomy="default",
        signals=("visual", "audio", "transcription", "metadata"),
        metrics={"top_signal_accuracy": 0.95, "mean_rubric": 4.5},
        promoted_at="2026-11-01T00:00:00+00:00",
    )


@pytest.fixture
def registry(store: DirectoryStore) -> ChampionRegistry:
    return ChampionRegistry(store, "default")


def test_no_champion_and_empty_ledger_initially(registry: ChampionRegistry) -> None:
    assert registry.current() is None
    assert registry.ledger() == []


def test_promote_sets_the_champion_and_appends_to_the_ledger(registry: ChampionRegistry) -> None:
    entry = registry.promote(champion("model-a"), note="first")

    assert isinstance(entry, LedgerEntry)
    assert entry.entry == 1
    assert entry.action == "promote"
    assert entry.previous_model_id is None
    assert entry.note == "first"
    assert registry.current() == champion("model-a")
    assert registry.ledger() == [entry]


def test_promote_twice_records_the_previous_model(registry: ChampionRegistry) -> None:
    registry.promote(champion("model-a"))
    second = registry.promote(champion("model-b"))

    ledger = registry.ledger()
    assert len(ledger) == 2
    assert [e.entry for e in ledger] == [1, 2]
    assert ledger[0].previous_model_id is None
    assert ledger[1].previous_model_id == "model-a"
    assert second == ledger[1]
    current = registry.current()
    assert current is not None
    assert current.model_id == "model-b"


def test_registry_state_is_persisted_in_the_store(store: DirectoryStore) -> None:
    ChampionRegistry(store, "default").promote(champion("model-a"))

    reopened = ChampionRegistry(store, "default")

    current = reopened.current()
    assert current is not None
    assert current.model_id == "model-a"
    assert len(reopened.ledger()) == 1
    assert store.read("routers/default/champion.json") is not None
    ledger_bytes = store.read("routers/default/ledger.jsonl")
    assert ledger_bytes is not None
    assert ledger_bytes.count(b"\n") == 1


def test_rollback_repoints_to_the_earlier_model_and_appends_an_entry(
    registry: ChampionRegistry,
) -> None:
    registry.promote(champion("model-a"))
    registry.promote(champion("model-b"))

    entry = registry.rollback()

    assert entry.action == "rollback"
    assert entry.entry == 3
    assert entry.champion.model_id == "model-a"
    assert entry.previous_model_id == "model-b"
    assert entry.note == "rollback to entry 1"
    current = registry.current()
    assert current is not None
    assert current.model_id == "model-a"
    assert [e.action for e in registry.ledger()] == ["promote", "promote", "rollback"]


def test_rollback_to_a_named_entry(registry: ChampionRegistry) -> None:
    for model in ("model-a", "model-b", "model-c"):
        registry.promote(champion(model))

    entry = registry.rollback(to_entry=1, note="bad release")

    assert entry.champion.model_id == "model-a"
    assert entry.previous_model_id == "model-c"
    assert entry.note == "bad release"
    current = registry.current()
    assert current is not None
    assert current.model_id == "model-a"


def test_rollback_to_a_missing_entry_raises_user_input_error(registry: ChampionRegistry) -> None:
    registry.promote(champion("model-a"))
    registry.promote(champion("model-b"))

    with pytest.raises(UserInputError, match="no entry 99"):
        registry.rollback(to_entry=99)

    current = registry.current()
    assert current is not None
    assert current.model_id == "model-b"
    assert len(registry.ledger()) == 2


def test_rollback_without_a_champion_raises_user_input_error(registry: ChampionRegistry) -> None:
    with pytest.raises(UserInputError, match="no champion"):
        registry.rollback()
    with pytest.raises(UserInputError, match="no champion"):
        registry.rollback(to_entry=1)
    assert registry.ledger() == []


def test_rollback_with_a_single_promotion_raises_user_input_error(
    registry: ChampionRegistry,
) -> None:
    registry.promote(champion("model-a"))

    with pytest.raises(UserInputError, match="no earlier champion"):
        registry.rollback()
    assert len(registry.ledger()) == 1


def test_second_rollback_goes_further_back(registry: ChampionRegistry) -> None:
    for model in ("model-a", "model-b", "model-c"):
        registry.promote(champion(model))
    first = registry.rollback()
    assert first.champion.model_id == "model-b"

    second = registry.rollback()

    assert second.champion.model_id == "model-a"


def test_registries_with_different_router_names_are_independent(store: DirectoryStore) -> None:
    news = ChampionRegistry(store, "news")
    sport = ChampionRegistry(store, "sport")

    news.promote(champion("news-1", router="news"))
    news.promote(champion("news-2", router="news"))
    sport.promote(champion("sport-1", router="sport"))
    news.rollback()

    sport_current = sport.current()
    news_current = news.current()
    assert sport_current is not None
    assert news_current is not None
    assert sport_current.model_id == "sport-1"
    assert news_current.model_id == "news-1"
    assert len(sport.ledger()) == 1
    assert len(news.ledger()) == 3
    assert ChampionRegistry(store, "other").current() is None


def test_redeploy_repoints_the_deployment_and_records_it(registry: ChampionRegistry) -> None:
    with pytest.raises(UserInputError, match="no champion to redeploy"):
        registry.redeploy("d-2")
    registry.promote(champion("m-1"))
    entry = registry.redeploy("d-2", note="lost")
    current = registry.current()
    assert current is not None and current.deployment_id == "d-2"
    assert current.model_id == "m-1"
    assert (entry.action, entry.entry, entry.note) == ("redeploy", 2, "lost")


def test_local_backend_says_a_deleted_deployment_is_not_found(store: DirectoryStore) -> None:
    backend = LocalBackend(store)
    with pytest.raises(DeploymentNotFound, match="no deployment local-deployment-x"):
        backend.deployment_status("local-deployment-x")
