"""Search-log traffic: read and clean it, label only never-seen queries, move the watermark."""

from __future__ import annotations

from prefect import task
from prefect.logging import get_run_logger
from pydantic import BaseModel, ConfigDict

from blocks.storage import s3_client
from intent_router.backends.base import TeacherFingerprint
from intent_router.dataset import LabelledQuery
from intent_router.errors import RouterOutputError
from intent_router.evaluation import TRAFFIC  # cell and vocabulary of traffic records
from intent_router.metrics import top_signal
from intent_router.schema import parse_routing_output
from intent_router.taxonomy import Taxonomy
from intent_router.traffic import (
    CleanedTraffic,
    LabelCache,
    RawTraffic,
    TrafficQuery,
    TrafficSource,
    Watermark,
    clean_traffic,
    normalise_query,
    read_watermark,
    write_watermark,
)
from intent_router.traffic import read_traffic as read_source
from tasks.distill import BACKOFF, JITTER, RETRIES
from tasks.runtime import Runtime, retry_if_transient

LABEL_CHUNK = 100  # labels are cached after every chunk: a failure loses at most one chunk


class TrafficLabels(BaseModel):
    """Teacher labels for cleaned traffic queries, and what they cost this run."""

    model_config = ConfigDict(frozen=True)

    records: tuple[LabelledQuery, ...]  # in the order of the queries given; invalid dropped
    teacher_calls: int
    cached: int
    invalid: int


@task(
    name="read-traffic",
    retries=RETRIES,
    retry_delay_seconds=BACKOFF,
    retry_jitter_factor=JITTER,
    retry_condition_fn=retry_if_transient,
)
def read_traffic(source: TrafficSource, runtime: Runtime) -> RawTraffic:
    """Read real queries from a search log or Bedrock's invocation logs (nothing is paid)."""
    client = None if source.kind == "file" else s3_client(runtime.storage_block)
    raw = read_source(source, s3_client=client)
    r = raw.report
    get_run_logger().info(
        "read %d queries from %s (%d files, %d lines; skipped %d non-UTF-8, %d too long, "
        "%d unparseable, %d empty)",
        len(raw.queries),
        source.location,
        r.files,
        r.lines,
        r.non_utf8,
        r.too_long,
        r.unparseable,
        r.empty,
    )
    return raw


@task(name="clean-traffic")
def clean(raw: RawTraffic, exclude: list[str], mask_pii: bool) -> CleanedTraffic:
    """Normalise, mask e-mails and phone numbers, drop junk and duplicates (and golden twins)."""
    cleaned = clean_traffic(raw.queries, mask_pii=mask_pii, exclude=exclude)
    get_run_logger().info("traffic after cleaning: %s", cleaned.counts)
    return cleaned


@task(
    name="label-traffic",
    retries=RETRIES,
    retry_delay_seconds=BACKOFF,
    retry_jitter_factor=JITTER,
    retry_condition_fn=retry_if_transient,
)
def label_traffic(
    queries: list[TrafficQuery],
    taxonomy: Taxonomy,
    teacher: TeacherFingerprint,
    runtime: Runtime,
) -> TrafficLabels:
    """Have the teacher label only the queries it never labelled (the label cache), in chunks
    that are cached as they finish, so a failure or a retry never pays twice."""
    logger = get_run_logger()
    cache = LabelCache(runtime.store(), teacher)
    texts = [q.query for q in queries]
    known = cache.get_many(texts)
    cached = len(known)
    # Grouped by cache shard, so each chunk's labels land in one or two shard files instead
    # of one write to nearly every shard (64 shards, 100 labels a chunk).
    missing = sorted(
        (t for t in dict.fromkeys(texts) if t not in known),
        key=lambda t: cache.shard_path(normalise_query(t)),
    )
    backend = runtime.backend_client()
    calls = 0
    for start in range(0, len(missing), LABEL_CHUNK):
        chunk = missing[start : start + LABEL_CHUNK]
        results = backend.label(chunk, taxonomy)
        calls += len(chunk)
        fresh = {
            r.query: r.text for r in results if r.text is not None and _valid(r.text, taxonomy)
        }
        cache.put_many(fresh)
        known.update(fresh)
    records: list[LabelledQuery] = []
    invalid = 0
    for query in queries:
        try:  # a corrupt cached label is dropped like an invalid answer
            decision = parse_routing_output(known.get(query.query) or "", taxonomy.signal_names)
        except RouterOutputError:
            invalid += 1
            continue
        records.append(
            LabelledQuery(
                query=query.query,
                cell=TRAFFIC,
                difficulty="real",
                dominant=top_signal(decision.weights, taxonomy.signal_names),
                vocabulary=TRAFFIC,
                teacher_output=decision.to_json(),
                weights=decision.weights,
            )
        )
    logger.info(
        "traffic labels: %d teacher calls this run, %d from the label cache, %d invalid",
        calls,
        cached,
        invalid,
    )
    return TrafficLabels(
        records=tuple(records), teacher_calls=calls, cached=cached, invalid=invalid
    )


@task(name="find-unlabelled-traffic")
def unlabelled(queries: list[str], teacher: TeacherFingerprint, runtime: Runtime) -> list[str]:
    """The queries the label cache does not hold: what labelling them will cost (preflight)."""
    known = LabelCache(runtime.store(), teacher).get_many(queries)
    return [q for q in dict.fromkeys(queries) if q not in known]


def _valid(text: str, taxonomy: Taxonomy) -> bool:
    try:
        parse_routing_output(text, taxonomy.signal_names)
    except RouterOutputError:
        return False
    return True


@task(name="read-traffic-watermark")
def last_watermark(router: str, consumer: str, runtime: Runtime) -> Watermark | None:
    """Where the router's last run (or monitor check) stopped reading traffic."""
    return read_watermark(runtime.store(), router, consumer)


@task(name="move-traffic-watermark")
def move_watermark(router: str, watermark: Watermark, runtime: Runtime) -> None:
    """Record how far the consumer has read the router's traffic, so the next run knows what
    is new."""
    write_watermark(runtime.store(), router, watermark)
