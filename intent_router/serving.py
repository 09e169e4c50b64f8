"""Serve a router's champion to a search service: one client for every backend.

`load_router("default")` reads the router's champion pointer from storage and answers with it:
the local student in this process, or Converse on the Bedrock deployment with the prompt the
champion was trained on (botocore standard retries, explicit timeouts). A background thread
re-reads the pointer every `reload_interval_s` and swaps in a new champion once it has loaded;
requests read an immutable snapshot, so none pays for the check or sees a half-loaded model. A
pointer or artifact that cannot be read keeps the previous champion serving and is reported in
`status()`.

It never raises to the caller on a model error, a timeout or throttling: the answer comes from
the fallback (the teacher, when the cascade is configured, else the training prior) and says so
(`fallback`, `fallback_reason`). Bad input (an empty or over-long query) raises ValueError.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, NamedTuple, Protocol

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, ReadTimeoutError
from pydantic import BaseModel, ConfigDict, Field

from intent_router.backends.bedrock import BedrockBackend
from intent_router.backends.local import LocalBackend, student_answers, teacher_for
from intent_router.errors import CorruptStateError, RouterOutputError, UserInputError
from intent_router.prompts import student_system_prompt, teacher_prompt, teacher_user_message
from intent_router.registry import ChampionRecord, ChampionRegistry, now_iso
from intent_router.schema import RoutingDecision, parse_routing_output
from intent_router.storage import DirectoryStore, ObjectStore
from intent_router.taxonomy import Taxonomy, builtin_taxonomy, builtin_taxonomy_names
from intent_router.text import check_query

logger = logging.getLogger(__name__)

AnsweredBy = Literal["student", "teacher", "prior"]

THROTTLED_CODES = frozenset(
    {"ThrottlingException", "TooManyRequestsException", "ServiceQuotaExceededException"}
)
UNAVAILABLE_CODES = frozenset(
    {"ServiceUnavailableException", "InternalServerException", "ModelNotReadyException"}
)
TIMEOUT_CODES = frozenset({"ModelTimeoutException", "RequestTimeout"})


class ServingSettings(BaseModel):
    """How a router client answers, reloads and falls back."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    reload_interval_s: float = Field(
        default=5.0,
        ge=0.05,
        le=3600,
        description="How often the champion pointer is re-read (in the background).",
    )
    cascade: bool = Field(
        default=False,
        description="Ask the teacher when the student is unsure (the champion's cascade "
        "threshold) and when the student fails; without it a failure answers the prior.",
    )
    teacher_model_id: str | None = Field(
        default=None,
        description="Bedrock teacher (model or inference profile id) for the cascade of a "
        "Bedrock champion; a local champion's teacher is the taxonomy's reference router.",
    )
    connect_timeout_s: float = Field(
        default=2.0, gt=0, le=60, description="Converse connect timeout (botocore)."
    )
    read_timeout_s: float = Field(
        default=10.0, gt=0, le=300, description="Converse read timeout (botocore)."
    )
    max_attempts: int = Field(
        default=2,
        ge=1,
        le=10,
        description="botocore standard-mode attempts per Converse call, the first included; "
        "then the query falls back.",
    )
    concurrency: int = Field(
        default=16, ge=1, le=256, description="Converse calls in flight for one route_many."
    )
    max_tokens: int = Field(default=300, ge=50, le=2000, description="Converse maxTokens.")


@dataclass(frozen=True, slots=True)
class Decision:
    """One routed query: weights per signal, why, how sure, and who answered."""

    weights: dict[str, float]
    reasoning: str
    confidence: float | None
    model_id: str
    answered_by: AnsweredBy
    fallback: bool
    latency_ms: float
    fallback_reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "weights": self.weights,
            "reasoning": self.reasoning,
            "confidence": self.confidence,
            "model_id": self.model_id,
            "answered_by": self.answered_by,
            "fallback": self.fallback,
            "fallback_reason": self.fallback_reason,
            "latency_ms": self.latency_ms,
        }


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a model gave no usable answer: throttled, timeout, unavailable, model_error,
    unparsed or error (anything else the service refused)."""

    reason: str
    message: str


class Answered(NamedTuple):
    """A model's usable answer (what the serving path needs of a RoutingDecision)."""

    weights: dict[str, float]
    reasoning: str


Answer = RoutingDecision | Answered | Failure


class Answerer(Protocol):
    """A model behind the router: answers every query, failures included, in order."""

    def answer(self, queries: Sequence[str]) -> list[tuple[Answer, float]]:
        """(answer, seconds) per query."""


class StudentAnswerer:
    """The local student in this process (vectorised over a batch)."""

    def __init__(self, backend: LocalBackend, model_id: str) -> None:
        self.student = backend.read_student(model_id)  # dropped with this answerer

    def answer(self, queries: Sequence[str]) -> list[tuple[Answer, float]]:
        started = time.perf_counter()
        answers = student_answers(self.student, queries)
        each = (time.perf_counter() - started) / max(1, len(queries))
        return [(Answered(weights, reasoning), each) for weights, reasoning in answers]


class ReferenceTeacherAnswerer:
    """The taxonomy's reference router (the local teacher)."""

    def __init__(self, taxonomy: Taxonomy) -> None:
        self.teacher = teacher_for(taxonomy)

    def answer(self, queries: Sequence[str]) -> list[tuple[Answer, float]]:
        out: list[tuple[Answer, float]] = []
        for query in queries:
            started = time.perf_counter()
            decision = self.teacher.route(query)
            out.append((decision, time.perf_counter() - started))
        return out


def failure_of(error: BaseException) -> Failure:
    """The fallback reason of a Converse error."""
    message = " ".join(str(error).split())[:300]
    if isinstance(error, RouterOutputError):
        return Failure("unparsed", message)
    if isinstance(error, ReadTimeoutError | ConnectTimeoutError):
        return Failure("timeout", message)
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        if code in THROTTLED_CODES:
            return Failure("throttled", message)
        if code in TIMEOUT_CODES:
            return Failure("timeout", message)
        if code in UNAVAILABLE_CODES:
            return Failure("unavailable", message)
        if code == "ModelErrorException":
            return Failure("model_error", message)
        return Failure("error", message)
    if isinstance(error, BotoCoreError):  # connection refused, DNS, SSL: the endpoint is away
        return Failure("unavailable", message)
    return Failure("error", message)


class ConverseAnswerer:
    """A Bedrock model (a custom-model deployment, or the teacher) over Converse."""

    def __init__(
        self,
        runtime: Any,
        model_id: str,
        system_prompt: str,
        *,
        quoted: bool,
        signals: Sequence[str],
        max_tokens: int,
        concurrency: int,
    ) -> None:
        self.runtime = runtime
        self.model_id = model_id
        self.system_prompt = system_prompt
        self.quoted = quoted
        self.signals = tuple(signals)
        self.max_tokens = max_tokens
        self.concurrency = concurrency

    def _one(self, query: str) -> tuple[Answer, float]:
        message = teacher_user_message(query) if self.quoted else query
        request = BedrockBackend.converse_request(
            self.model_id, self.system_prompt, message, self.max_tokens
        )
        started = time.perf_counter()
        try:
            response = self.runtime.converse(**request)
            text = BedrockBackend._text(response)
            answer: Answer = parse_routing_output(text, self.signals)
        except Exception as error:  # the caller gets a fallback, never the exception
            answer = failure_of(error)
            if answer.reason == "error":
                logger.warning("Converse on %s failed: %s", self.model_id, answer.message)
        return answer, time.perf_counter() - started

    def answer(self, queries: Sequence[str]) -> list[tuple[Answer, float]]:
        if len(queries) <= 1:
            return [self._one(q) for q in queries]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(queries))) as pool:
            return list(pool.map(self._one, queries))


def serving_backend(champion: ChampionRecord) -> Literal["local", "bedrock"]:
    """Where the champion runs: a Bedrock deployment (an ARN) or the local student."""
    return "bedrock" if champion.deployment_id.startswith("arn:") else "local"


def region_of(arn: str) -> str:
    """The Region field of an ARN; UserInputError when it has none."""
    parts = arn.split(":")
    if len(parts) < 6 or not parts[3]:
        raise UserInputError(f"{arn!r} is not a regional ARN")
    return parts[3]


def converse_config(settings: ServingSettings, region: str) -> Config:
    """botocore settings of the serving client: standard retries, explicit timeouts."""
    return Config(
        region_name=region,
        retries={"mode": "standard", "total_max_attempts": settings.max_attempts},
        connect_timeout=settings.connect_timeout_s,
        read_timeout=settings.read_timeout_s,
        max_pool_connections=max(10, settings.concurrency),
    )


def bedrock_runtime_client(store: ObjectStore, region: str, settings: ServingSettings) -> Any:
    """A bedrock-runtime client: the storage block's AWS credentials when the store is an
    S3Bucket block, else boto3's default credential chain (environment, profile, role)."""
    config = converse_config(settings, region)
    credentials = getattr(getattr(store, "block", None), "credentials", None)
    if credentials is not None and hasattr(credentials, "get_boto3_session"):
        return credentials.get_boto3_session().client("bedrock-runtime", config=config)
    import boto3

    return boto3.session.Session().client("bedrock-runtime", config=config)


RuntimeFactory = Callable[[ObjectStore, str, ServingSettings], Any]


def champion_taxonomy(champion: ChampionRecord, taxonomy: Taxonomy | None) -> Taxonomy | None:
    """The champion's taxonomy: the one given (its signals must match), else the built-in one
    it names, else None."""
    if taxonomy is not None:
        if set(taxonomy.signal_names) != set(champion.signals):
            raise UserInputError(
                f"taxonomy {taxonomy.name!r} has signals {list(taxonomy.signal_names)}; "
                f"champion {champion.model_id} of router {champion.router!r} routes to "
                f"{list(champion.signals)}"
            )
        return taxonomy
    stem = champion.taxonomy.replace("-", "_")
    if stem in builtin_taxonomy_names():
        builtin = builtin_taxonomy(stem)
        if set(builtin.signal_names) == set(champion.signals):
            return builtin
    return None


def _no_taxonomy(champion: ChampionRecord) -> str:
    """Why champion_taxonomy found none: the taxonomy is not built in, or the built-in one of
    that name routes to other signals."""
    stem = champion.taxonomy.replace("-", "_")
    if stem in builtin_taxonomy_names():
        signals = list(builtin_taxonomy(stem).signal_names)
        return (
            f"whose built-in version routes to {signals}, not the champion's "
            f"{list(champion.signals)}"
        )
    return "which is not built in"


@dataclass(frozen=True)
class LoadedChampion:
    """An immutable snapshot of what answers: swapped whole on reload."""

    record: ChampionRecord
    pointer: bytes
    student: Answerer
    teacher: Answerer | None
    prior: dict[str, float]
    loaded_at: str


@dataclass
class RouterStats:
    """What a router did since it started (thread-safe counts)."""

    queries: Counter[str] = field(default_factory=Counter)  # by answered_by
    fallbacks: Counter[str] = field(default_factory=Counter)  # by reason
    reloads: int = 0
    reload_failures: int = 0
    last_reload_error: str | None = None
    last_check_at: str | None = None


class Router:
    """One router's champion, kept current; `route` and `route_many` never raise on a model
    failure. Use `load_router` to build one."""

    def __init__(
        self,
        name: str,
        store: ObjectStore,
        settings: ServingSettings | None = None,
        *,
        taxonomy: Taxonomy | None = None,
        runtime_factory: RuntimeFactory | None = None,
    ) -> None:
        self.name = name
        self.store = store
        self.settings = settings or ServingSettings()
        self.taxonomy = taxonomy
        self.registry = ChampionRegistry(store, name)
        self.runtime_factory = runtime_factory  # None: bedrock_runtime_client
        self._local = LocalBackend(store)
        self._runtimes: dict[str, Any] = {}
        self._active: LoadedChampion | None = None
        self._stats = RouterStats()
        self._stats_lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self._swapped = threading.Condition()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    # -- loading ------------------------------------------------------------------------------
    def _runtime(self, region: str) -> Any:
        client = self._runtimes.get(region)
        if client is None:
            factory = self.runtime_factory or bedrock_runtime_client
            client = self._runtimes[region] = factory(self.store, region, self.settings)
        return client

    def _load(self, record: ChampionRecord, pointer: bytes) -> LoadedChampion:
        """Everything the champion needs to answer; UserInputError (incl. a missing or corrupt
        artifact) when it cannot serve."""
        taxonomy = champion_taxonomy(record, self.taxonomy)
        settings = self.settings
        student: Answerer
        teacher: Answerer | None = None
        prior: dict[str, float] | None = record.prior
        if serving_backend(record) == "local":
            local = StudentAnswerer(self._local, record.model_id)
            if set(local.student.signals) != set(record.signals):
                raise CorruptStateError(
                    f"model artifact of {record.model_id} routes to {list(local.student.signals)}"
                    f"; router {record.router!r}'s champion record says {list(record.signals)}"
                )
            student = local
            if prior is None and local.student.prior is not None:
                prior = dict(
                    zip(local.student.signals, map(float, local.student.prior), strict=True)
                )
            if settings.cascade:
                teacher = ReferenceTeacherAnswerer(self._cascade_taxonomy(record, taxonomy))
        else:
            if taxonomy is None:
                raise UserInputError(
                    f"router {record.router!r} serves a Bedrock champion of taxonomy "
                    f"{record.taxonomy!r}, {_no_taxonomy(record)} (it sets the prompt); pass "
                    "--taxonomy FILE"
                )
            runtime = self._runtime(region_of(record.deployment_id))
            quoted = record.prompt == "teacher"
            student = ConverseAnswerer(
                runtime,
                record.deployment_id,
                teacher_prompt(taxonomy) if quoted else student_system_prompt(taxonomy),
                quoted=quoted,
                signals=record.signals,
                max_tokens=settings.max_tokens,
                concurrency=settings.concurrency,
            )
            if settings.cascade:
                self._cascade_taxonomy(record, taxonomy)
                if settings.teacher_model_id is None:
                    raise UserInputError(
                        f"router {record.router!r} serves a Bedrock champion: the cascade "
                        "needs the teacher's model id (teacher_model_id)"
                    )
                teacher = ConverseAnswerer(
                    runtime,
                    settings.teacher_model_id,
                    teacher_prompt(taxonomy),
                    quoted=True,
                    signals=record.signals,
                    max_tokens=settings.max_tokens,
                    concurrency=settings.concurrency,
                )
        if prior is None:
            prior = {s: 1.0 / len(record.signals) for s in record.signals}
        return LoadedChampion(record, pointer, student, teacher, prior, now_iso())

    @staticmethod
    def _cascade_taxonomy(record: ChampionRecord, taxonomy: Taxonomy | None) -> Taxonomy:
        if record.cascade is None:
            raise UserInputError(
                f"router {record.router!r} has no cascade policy (its champion was promoted "
                "before confidence was calibrated); run `router-distill run` to train one"
            )
        if record.cascade.fallback_role != "teacher":
            raise UserInputError(
                f"router {record.router!r} falls back to the model of role "
                f"{record.cascade.fallback_role!r}; the cascade can only ask the teacher"
            )
        if taxonomy is None:
            raise UserInputError(
                f"router {record.router!r} uses taxonomy {record.taxonomy!r}, "
                f"{_no_taxonomy(record)}; pass --taxonomy FILE for the cascade"
            )
        return taxonomy

    def refresh(self, *, raise_errors: bool = False) -> bool:
        """Re-read the champion pointer now; True when a new champion was loaded. A pointer
        or model that cannot be read keeps the current champion and is recorded (raised too
        with `raise_errors`)."""
        with self._reload_lock:
            checked = now_iso()
            try:
                found = self.registry.read_pointer()
                if found is None:
                    if self._active is None:
                        self._record_check(checked, None)
                        return False
                    raise CorruptStateError(
                        f"routers/{self.name}/champion.json is missing; still serving "
                        f"{self._active.record.model_id}"
                    )
                pointer, record = found
                if self._active is not None and pointer == self._active.pointer:
                    self._record_check(checked, None)
                    return False
                loaded = self._load(record, pointer)
            except Exception as error:  # a reload must never take the serving model down
                message = " ".join(str(error).split())[:300] or type(error).__name__
                with self._stats_lock:
                    self._stats.reload_failures += 1
                    self._stats.last_reload_error = message
                    self._stats.last_check_at = checked
                if raise_errors:
                    raise
                logger.warning("router %s: champion not reloaded: %s", self.name, message)
                return False
            previous = self._active
            with self._swapped:
                self._active = loaded
                self._swapped.notify_all()
            with self._stats_lock:
                self._stats.reloads += 1 if previous is not None else 0
                self._stats.last_reload_error = None
                self._stats.last_check_at = checked
        logger.info(
            "router %s now serves %s (was %s)",
            self.name,
            loaded.record.model_id,
            previous.record.model_id if previous else "nothing",
        )
        return True

    def _record_check(self, checked: str, error: str | None) -> None:
        with self._stats_lock:
            self._stats.last_check_at = checked
            self._stats.last_reload_error = error

    def wait_for_champion(self, model_id: str, timeout_s: float) -> bool:
        """Block until `model_id` answers (a reload swapped it in) or the timeout passes."""
        with self._swapped:
            return self._swapped.wait_for(
                lambda: self._active is not None and self._active.record.model_id == model_id,
                timeout=timeout_s,
            )

    def start(self) -> Router:
        """Keep re-reading the pointer every `reload_interval_s`, in a background thread."""
        if self._watcher is None:
            self._watcher = threading.Thread(
                target=self._watch, name=f"router-{self.name}-reload", daemon=True
            )
            self._watcher.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(self.settings.reload_interval_s):
            self.refresh()

    def close(self) -> None:
        """Stop re-reading the pointer (answers keep working with the current champion)."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
            self._watcher = None

    def __enter__(self) -> Router:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    # -- answering ----------------------------------------------------------------------------
    @property
    def champion(self) -> ChampionRecord | None:
        active = self._active
        return active.record if active is not None else None

    @property
    def ready(self) -> bool:
        return self._active is not None

    @property
    def blocking(self) -> bool:
        """True when answering waits on the network (a Bedrock champion)."""
        active = self._active
        return active is not None and serving_backend(active.record) == "bedrock"

    def _snapshot(self) -> LoadedChampion:
        active = self._active
        if active is None:
            error = self._stats.last_reload_error
            raise NoChampionError(
                f"router {self.name!r} has no champion loaded"
                + (f" ({error})" if error else "; run `router-distill run` to promote one")
            )
        return active

    def route(self, query: str) -> Decision:
        """Route one query. ValueError for bad input; a model failure answers the fallback."""
        return self._decide(self._snapshot(), [check_query(query)])[0]

    def route_many(self, queries: Sequence[str]) -> list[Decision]:
        """Route queries in one go (the local student is vectorised, Converse runs
        `concurrency` calls at once). ValueError naming the first bad query."""
        checked = []
        for number, query in enumerate(queries, start=1):
            try:
                checked.append(check_query(query))
            except ValueError as error:
                raise ValueError(f"query {number}: {error}") from None
        return self.route_checked(checked)

    def pin(self) -> LoadedChampion:
        """The champion answering now, to answer a request in parts with one model
        (`route_checked(..., champion=)`). NoChampionError when none is loaded."""
        return self._snapshot()

    def route_checked(
        self, queries: Sequence[str], champion: LoadedChampion | None = None
    ) -> list[Decision]:
        """`route_many` for queries that already passed `text.check_query` (the HTTP service
        validates them as it parses the request), with `champion` if given."""
        if not queries:
            return []
        return self._decide(champion or self._snapshot(), list(queries))

    def _decide(self, champion: LoadedChampion, queries: list[str]) -> list[Decision]:
        record = champion.record
        policy = record.cascade
        signals = record.signals
        answers = champion.student.answer(queries)
        results: list[Decision | None] = [None] * len(queries)
        ask_teacher: list[int] = []
        failures: dict[int, Failure] = {}
        for index, (answer, seconds) in enumerate(answers):
            if isinstance(answer, Failure):
                failures[index] = answer
                if champion.teacher is not None:
                    ask_teacher.append(index)
                continue
            confidence = None
            if policy is not None:
                vector = [answer.weights[s] for s in signals]
                confidence = round(policy.confidence(vector), 4)
                if champion.teacher is not None and policy.defers(vector):
                    ask_teacher.append(index)
            results[index] = Decision(
                answer.weights,
                answer.reasoning,
                confidence,
                record.model_id,
                "student",
                False,
                round(seconds * 1000, 3),
            )
        if ask_teacher and champion.teacher is not None:
            taught = champion.teacher.answer([queries[i] for i in ask_teacher])
            for index, (answer, seconds) in zip(ask_teacher, taught, strict=True):
                if isinstance(answer, Failure):
                    continue  # a deferred student answer stands; a failed one gets the prior
                failure = failures.pop(index, None)
                deferred = results[index]  # the student was unsure: its confidence says so
                results[index] = Decision(
                    answer.weights,
                    answer.reasoning,
                    deferred.confidence if deferred is not None else None,
                    record.model_id,
                    "teacher",
                    failure is not None,
                    round(seconds * 1000 + answers[index][1] * 1000, 3),
                    failure.reason if failure else None,
                )
        for index, failure in failures.items():
            results[index] = self._prior_decision(champion, failure, answers[index][1])
        decided = [r for r in results if r is not None]
        with self._stats_lock:
            self._stats.queries.update(d.answered_by for d in decided)
            self._stats.fallbacks.update(d.fallback_reason for d in decided if d.fallback_reason)
        return decided

    @staticmethod
    def _prior_decision(champion: LoadedChampion, failure: Failure, seconds: float) -> Decision:
        prior = champion.prior
        top = max(prior, key=lambda s: prior[s])
        return Decision(
            dict(prior),
            f"The router could not answer ({failure.reason}); the usual mix of its training "
            f"data (mostly {top}).",
            None,
            champion.record.model_id,
            "prior",
            True,
            round(seconds * 1000, 3),
            failure.reason,
        )

    def status(self) -> dict[str, Any]:
        """Readiness and counts, for health checks and metrics."""
        active = self._active
        with self._stats_lock:
            stats = self._stats
            return {
                "router": self.name,
                "ready": active is not None,
                "model_id": active.record.model_id if active else None,
                "backend": serving_backend(active.record) if active else None,
                "loaded_at": active.loaded_at if active else None,
                "last_check_at": stats.last_check_at,
                "reload_error": stats.last_reload_error,
                "reloads": stats.reloads,
                "reload_failures": stats.reload_failures,
                "queries": dict(stats.queries),
                "fallbacks": dict(stats.fallbacks),
            }


class NoChampionError(UserInputError):
    """The router has no champion to answer with (none promoted, or none could be loaded)."""


def open_store(storage_block: str | None) -> ObjectStore:
    """The store the runs write champions to: a saved file-system block 'slug/name' (loading
    it needs the Prefect API), else the local default under ROUTER_DISTILL_HOME."""
    if storage_block is None:
        from intent_router.settings import home

        return DirectoryStore(home() / "store")
    from blocks.storage import load_storage_block, object_store  # wiring: Prefect blocks

    return object_store(load_storage_block(storage_block))


def load_router(
    router: str = "default",
    storage_block: str | None = None,
    *,
    taxonomy: Taxonomy | None = None,
    settings: ServingSettings | None = None,
    store: ObjectStore | None = None,
    runtime_factory: RuntimeFactory | None = None,
    require_champion: bool = True,
    watch: bool = True,
) -> Router:
    """A started router client for `router`'s champion.

    Storage is `store`, else the saved block `storage_block`, else the local default. Raises
    NoChampionError when `require_champion` and no champion can be loaded (with the reason),
    UserInputError for a bad name or storage. `watch=False`: no background reload (call
    `refresh()`)."""
    serving = Router(
        router,
        store if store is not None else open_store(storage_block),
        settings,
        taxonomy=taxonomy,
        runtime_factory=runtime_factory,
    )
    try:
        serving.refresh(raise_errors=require_champion)
    except BaseException:
        serving.close()
        raise
    if require_champion and not serving.ready:
        raise NoChampionError(
            f"no router has been promoted yet for {router!r}; run `router-distill run` first"
        )
    if watch:
        serving.start()
    return serving
