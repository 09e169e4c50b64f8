"""Unit tests for intent_router.storage.DirectoryStore and intent_router.registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from intent_router.backends.local import LocalBackend
from intent_router.errors import (
    CorruptStateError,
    DeploymentNotFound,
    ModelArtifactError,
    UserInputError,
)
from intent_router.params import DistillParams
from intent_router.registry import (
    ROUTER_NAME_PATTERN,
    ChampionRecord,
    ChampionRegistry,
    LedgerEntry,
    best_entry,
    check_router_name,
    rolled_back_models,
)
from intent_router.settings import HOME_ENV, home
from intent_router.storage import DirectoryStore
from intent_router.student import HashedNgramStudent
from tests.support.records import assert_compare_and_swap, champion_record


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
    return champion_record(model_id, router=router)


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


# -- corrupt state is an error, never "empty" ----------------------------------------------------
POINTER = "routers/default/champion.json"
LEDGER = "routers/default/ledger.jsonl"


def _one_line(error: BaseException) -> str:
    text = str(error)
    assert "\n" not in text
    return text


@pytest.mark.parametrize(
    ("content", "problem"),
    [(b"", "empty file"), (b"  \n", "empty file"), (b'{"router": "default", "mod', "Invalid JSON")],
)
def test_an_empty_or_truncated_pointer_is_corrupt_not_no_champion(
    registry: ChampionRegistry, store: DirectoryStore, content: bytes, problem: str
) -> None:
    registry.promote(champion("model-a"))
    store.write(POINTER, content)

    with pytest.raises(CorruptStateError) as caught:
        registry.current()
    message = _one_line(caught.value)
    assert message.startswith(f"{POINTER} is corrupt ({problem}")
    assert "the ledger has the history" in message
    assert isinstance(caught.value, UserInputError)
    with pytest.raises(CorruptStateError):
        registry.promote(champion("model-b"))
    with pytest.raises(CorruptStateError):
        registry.check()
    assert store.read(POINTER) == content  # never overwritten silently
    assert len(registry.ledger()) == 1


def test_a_pointer_of_the_wrong_shape_is_corrupt(
    registry: ChampionRegistry, store: DirectoryStore
) -> None:
    store.write(POINTER, b'{"model_id": "x"}')

    with pytest.raises(CorruptStateError, match=r"champion.json is corrupt \(router: Field"):
        registry.current()


def test_a_garbage_ledger_line_names_its_number_and_blocks_changes(
    registry: ChampionRegistry, store: DirectoryStore
) -> None:
    registry.promote(champion("model-a"))
    registry.promote(champion("model-b"))
    lines = (store.read(LEDGER) or b"").splitlines(keepends=True)
    broken = lines[0] + b"not json at all\n" + lines[1]
    store.write(LEDGER, broken)

    with pytest.raises(CorruptStateError) as caught:
        registry.ledger()
    assert _one_line(caught.value).startswith(f"{LEDGER} line 2 is corrupt (Invalid JSON")
    for change in (
        lambda: registry.rollback(),
        lambda: registry.promote(champion("model-c")),
        lambda: registry.redeploy("d-9"),
    ):
        with pytest.raises(CorruptStateError, match="line 2"):
            change()
    assert store.read(LEDGER) == broken
    current = registry.current()
    assert current is not None and current.model_id == "model-b"


def test_duplicate_entry_numbers_are_corrupt(
    registry: ChampionRegistry, store: DirectoryStore
) -> None:
    registry.promote(champion("model-a"))
    line = store.read(LEDGER) or b""
    store.write(LEDGER, line + line)

    with pytest.raises(CorruptStateError, match=r"line 2 is corrupt \(entry 1 after entry 1"):
        registry.ledger()


def test_a_ledger_that_is_not_utf8_is_corrupt(
    registry: ChampionRegistry, store: DirectoryStore
) -> None:
    store.write(LEDGER, b"\xff\xfe\n")

    with pytest.raises(CorruptStateError, match="not UTF-8"):
        registry.ledger()


def test_a_missing_pointer_is_still_no_champion(registry: ChampionRegistry) -> None:
    assert registry.current() is None
    registry.check()  # empty state is fine


def test_check_passes_on_good_state(registry: ChampionRegistry) -> None:
    registry.promote(champion("model-a"))
    registry.promote(champion("model-b"))
    registry.rollback()

    registry.check()


def test_notes_with_unicode_line_separators_round_trip(registry: ChampionRegistry) -> None:
    registry.promote(champion("model-a"), note="first\u2028second\x85third")

    assert [e.note for e in registry.ledger()] == ["first\u2028second\x85third"]


def test_a_router_folder_that_is_a_file_is_a_one_line_error(store: DirectoryStore) -> None:
    (store.root / "routers").mkdir(parents=True)
    (store.root / "routers" / "default").write_text("oops")
    registry = ChampionRegistry(store, "default")

    for action in (registry.current, registry.ledger, lambda: registry.promote(champion("m"))):
        with pytest.raises(CorruptStateError) as caught:
            action()
        assert _one_line(caught.value).startswith("routers/default is a file, not a folder")


def test_a_storage_root_that_is_a_file_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "store").write_text("oops")
    registry = ChampionRegistry(DirectoryStore(tmp_path / "store"), "default")

    with pytest.raises(CorruptStateError, match="is a file, not a folder"):
        registry.current()
    with pytest.raises(CorruptStateError, match="is a file, not a folder"):
        registry.promote(champion("m"))


@pytest.mark.parametrize(
    ("relative", "problem"),
    [("home-file", "is a file, not a folder"), ("home-file/home", "cannot be created: ")],
)
def test_a_bad_router_distill_home_is_a_one_line_user_input_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, relative: str, problem: str
) -> None:
    (tmp_path / "home-file").write_text("x")
    target = tmp_path / relative
    monkeypatch.setenv(HOME_ENV, str(target))

    with pytest.raises(UserInputError) as caught:
        home()
    assert _one_line(caught.value).startswith(f"{HOME_ENV} {target} {problem}")


# -- router names ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name",
    ["../../etc", "x" * 300, "../routers/default", "default/", "Default", "-x", "x\n", "", "a_b"],
)
def test_invalid_router_names_are_rejected_in_one_place(store: DirectoryStore, name: str) -> None:
    with pytest.raises(UserInputError, match="invalid router name") as caught:
        ChampionRegistry(store, name)
    assert len(_one_line(caught.value)) < 200
    with pytest.raises(UserInputError, match="invalid router name"):
        check_router_name(name)
    with pytest.raises(ValidationError):
        DistillParams(router_name=name)
    assert not (store.root / "routers").exists()


@pytest.mark.parametrize("name", ["default", "a", "news-archives", "0", "a" * 48])
def test_valid_router_names_are_accepted(store: DirectoryStore, name: str) -> None:
    assert check_router_name(name) == name
    assert ChampionRegistry(store, name).router == name
    assert DistillParams(router_name=name).router_name == name


def test_params_use_the_registry_router_name_pattern() -> None:
    metadata = DistillParams.model_fields["router_name"].metadata
    assert any(getattr(m, "pattern", None) == ROUTER_NAME_PATTERN for m in metadata)


# -- a promotion whose previous champion is itself -------------------------------------------------
def test_promoting_the_champion_again_is_a_no_op_returning_its_entry(
    registry: ChampionRegistry,
) -> None:
    first = registry.promote(champion("model-a"))

    again = registry.promote(champion("model-a"), note="retried task")

    assert again == first
    assert len(registry.ledger()) == 1
    assert all(e.previous_model_id != e.champion.model_id for e in registry.ledger())


def test_promoting_the_champion_with_another_deployment_is_refused(
    registry: ChampionRegistry,
) -> None:
    registry.promote(champion("model-a"))

    with pytest.raises(UserInputError, match="model-a is already the champion of 'default'"):
        registry.promote(champion("model-a").model_copy(update={"deployment_id": "other"}))
    assert len(registry.ledger()) == 1


def test_rollback_to_an_entry_of_the_current_model_is_refused(
    registry: ChampionRegistry,
) -> None:
    registry.promote(champion("model-a"))
    registry.promote(champion("model-b"))

    with pytest.raises(UserInputError, match=r"entry 2 .* already the champion"):
        registry.rollback(to_entry=2)
    assert len(registry.ledger()) == 2


def test_a_retried_promotion_after_a_crash_repairs_a_stale_pointer(
    registry: ChampionRegistry, store: DirectoryStore
) -> None:
    registry.promote(champion("model-a"))
    stale = store.read(POINTER)
    registry.promote(champion("model-b"))
    assert stale is not None
    store.write(POINTER, stale)  # as if the process died between ledger and pointer writes

    entry = registry.promote(champion("model-b"))

    assert entry.entry == 2
    assert registry.current() == champion("model-b")
    assert len(registry.ledger()) == 2


def test_the_pointer_never_moves_back_to_an_older_entry(
    registry: ChampionRegistry, store: DirectoryStore
) -> None:
    registry.promote(champion("model-a"))
    second = registry.promote(champion("model-b"))
    first = registry.ledger()[0]

    registry._write_pointer(store, first)  # a late writer of an older entry

    assert registry.current() == second.champion


def test_changes_need_a_store_with_conditional_writes(tmp_path: Path) -> None:
    class PlainStore:
        def __init__(self) -> None:
            self.inner = DirectoryStore(tmp_path)

        def read(self, path: str) -> bytes | None:
            return self.inner.read(path)

        def write(self, path: str, data: bytes) -> str:
            return self.inner.write(path, data)

        def delete(self, path: str) -> None:
            self.inner.delete(path)

        def uri(self, path: str) -> str:
            return self.inner.uri(path)

    registry = ChampionRegistry(PlainStore(), "default")

    assert registry.current() is None
    with pytest.raises(UserInputError, match="no conditional writes"):
        registry.check()
    with pytest.raises(UserInputError, match="no conditional writes"):
        registry.promote(champion("model-a"))


# -- DirectoryStore conditional writes ---------------------------------------------------------
def test_write_if_creates_only_when_missing_and_replaces_only_when_unchanged(
    store: DirectoryStore,
) -> None:
    assert_compare_and_swap(store, "k")


# -- ledger helpers ------------------------------------------------------------------------------
def _entry(number: int, action: str, model: str, previous: str | None, **metrics: float) -> Any:
    record = champion(model).model_copy(update={"metrics": metrics})
    return LedgerEntry(
        entry=number,
        action=action,  # type: ignore[arg-type]
        at="2026-11-01T00:00:00+00:00",
        champion=record,
        previous_model_id=previous,
    )


def test_rolled_back_models_are_the_models_rolled_away_from() -> None:
    entries = [
        _entry(1, "promote", "a", None),
        _entry(2, "promote", "b", "a"),
        _entry(3, "rollback", "a", "b"),
        _entry(4, "promote", "c", "a"),
        _entry(5, "redeploy", "c", "c"),
    ]

    assert rolled_back_models(entries) == {"b"}
    assert rolled_back_models([]) == set()


def test_best_entry_picks_the_best_promotion_by_metric() -> None:
    entries = [
        _entry(1, "promote", "a", None, acc=0.91, lat=30.0),
        _entry(2, "promote", "b", "a", acc=0.97, lat=50.0),
        _entry(3, "rollback", "a", "b", acc=0.99),  # a rollback is not a new result
        _entry(4, "promote", "c", "a", acc=0.97, lat=20.0),
        _entry(5, "promote", "d", "c", acc=float("nan")),
        _entry(6, "promote", "e", "d"),
    ]

    best = best_entry(entries, "acc")
    assert best is not None and best.entry == 4  # the latest of equals
    fastest = best_entry(entries, "lat", higher_is_better=False)
    assert fastest is not None and fastest.champion.model_id == "c"
    without_c = best_entry(entries, "acc", exclude_models={"c"})
    assert without_c is not None and without_c.champion.model_id == "b"
    assert best_entry(entries, "missing") is None
    assert best_entry([], "acc") is None


# -- model artifacts ---------------------------------------------------------------------------
def test_a_missing_or_truncated_model_artifact_is_a_typed_error_naming_it(
    store: DirectoryStore,
) -> None:
    backend = LocalBackend(store)
    path = backend.artifact_path("local-model/m-1")
    with pytest.raises(
        ModelArtifactError, match=f"model artifact {path} of local-model/m-1 is missing"
    ):
        backend.load_student("local-model/m-1")

    data = HashedNgramStudent(signals=("visual", "audio"), n_buckets=1024).to_bytes()
    store.write(path, data[: len(data) // 2])
    with pytest.raises(ModelArtifactError) as caught:
        backend.load_student("local-model/m-1")
    assert _one_line(caught.value).startswith(
        f"model artifact {path} of local-model/m-1 is corrupt"
    )
    assert isinstance(caught.value, CorruptStateError)


def test_a_lost_or_cut_ledger_is_corrupt_state_not_an_empty_history(
    store: DirectoryStore,
) -> None:
    registry = ChampionRegistry(store, "default")
    registry.promote(champion("a"))
    registry.promote(champion("b"))
    ledger = store.root / "routers" / "default" / "ledger.jsonl"
    first_line = ledger.read_text().splitlines()[0]
    ledger.write_text(first_line + "\n")  # cut: the pointer names entry 2
    with pytest.raises(CorruptStateError, match=r"names ledger entry 2 but .* ends at entry 1"):
        registry.ledger()
    ledger.unlink()  # lost
    with pytest.raises(CorruptStateError, match=r"ledger\.jsonl is missing"):
        registry.check()
    with pytest.raises(CorruptStateError, match="is missing"):
        registry.promote(champion("c"))  # never rewrites history from the pointer
    assert not ledger.exists()
