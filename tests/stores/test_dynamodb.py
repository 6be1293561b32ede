"""The DynamoDB store against moto's emulator in server mode (``moto[server]``, started on
loopback by tests/servers.py): the conformance suite in both flavours, then DynamoDB's own
limits and failures (item size, throttling, conditional checks, connection errors)."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse  # type: ignore[import-untyped]
from click.testing import CliRunner

from sessionkit import (
    ConfigError,
    LockTimeout,
    SessionConfig,
    SessionEngine,
    SessionTooLarge,
    StoreUnavailable,
    open_store,
)
from sessionkit.cli import build_group
from sessionkit.doctor import diagnose
from sessionkit.ids import digest, handle, new_id
from sessionkit.records import RecordMeta, SessionLimit, Write
from sessionkit.stores.base import mask_url
from sessionkit.stores.dynamodb import DynamoDBStore
from sessionkit.stores.dynamodb.items import LAYOUT_VERSION, guard_of
from sessionkit.testing import (
    Browser,
    ChallengeConformance,
    FakeClock,
    LockConformance,
    ResealConformance,
    ScanConformance,
    ServerStoreConformance,
    SessionLimitConformance,
    UserIndexConformance,
)
from tests import servers
from tests.conftest import KEY, dynamodb_url
from tests.fixtures.formats.spec import CLIENT, READ_AT, SESSIONS, USER
from tests.fixtures.formats.spec import HERE as FORMATS
from tests.fixtures.formats.spec import KEY as FIXTURE_KEY
from tests.servers import Server, free_port


def fresh_store(server: Server, clock: FakeClock | None = None) -> DynamoDBStore:
    store = DynamoDBStore.from_url(dynamodb_url(server), **({"clock": clock} if clock else {}))
    assert store.create_schema() is True
    return store


class TestDynamoDBConformance(
    ServerStoreConformance,
    UserIndexConformance,
    LockConformance,
    ScanConformance,
    SessionLimitConformance,
    ResealConformance,
    ChallengeConformance,
):
    @pytest.fixture(autouse=True)
    def _server(self, moto_server: Server) -> None:
        self.server = moto_server

    def make_store(self, clock: FakeClock) -> DynamoDBStore:
        return fresh_store(self.server, clock)


@pytest.fixture
def store(moto_server: Server, clock: FakeClock) -> Iterator[DynamoDBStore]:
    made = fresh_store(moto_server, clock)
    yield made
    asyncio.run(made.aclose())


# -- helpers ------------------------------------------------------------------------------
def meta(clock: FakeClock, user: str | None = None) -> RecordMeta:
    return RecordMeta(created=int(clock.now), last_seen=int(clock.now), user=user)


def create(store: DynamoDBStore, clock: FakeClock, items: dict[str, str], **kw: Any) -> str:
    key = kw.pop("digest", None) or digest(new_id())
    write = Write(key, items, frozenset(), meta(clock, kw.pop("user", None)), 600.0,
                  create=True, replace=True, **kw)  # fmt: skip
    assert store.save(write) is True
    return key


def raw(store: DynamoDBStore, key: str) -> dict[str, Any] | None:
    """The item as DynamoDB holds it, read past the store."""
    found: dict[str, Any] | None = store._client.get_item(
        TableName=store.table, Key={"digest": {"S": key}}, ConsistentRead=True
    ).get("Item")
    return found


class Injected:
    """Answers chosen requests with an error of DynamoDB's, through botocore's public event
    system (``before-send`` handlers may return the response): the request goes no further,
    and botocore parses, retries and raises exactly as for DynamoDB's own answer."""

    def __init__(self, store: DynamoDBStore, operation: str, code: str, message: str,
                 status: int = 400, **extra: Any) -> None:  # fmt: skip
        self.sent = 0
        self.body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}",
                                "message": message, **extra}).encode()  # fmt: skip
        self.status = status
        store._client.meta.events.register(f"before-send.dynamodb.{operation}", self)

    def __call__(self, request: Any, **kwargs: Any) -> AWSResponse:
        self.sent += 1
        return AWSResponse(
            request.url, self.status, {"x-amzn-requestid": "injected"}, _Raw(self.body)
        )


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **kwargs: Any) -> Iterator[bytes]:
        yield self.body


# -- the URL ------------------------------------------------------------------------------
def test_the_url_opens_the_store_and_masks_its_secrets(moto_server: Server) -> None:
    url = dynamodb_url(moto_server) + "&session_token=tok3n&user_index=by-user&timeout=5"
    store = open_store(url)
    assert isinstance(store, DynamoDBStore)
    assert store.target.region == "us-east-1" and store.target.timeout == 5.0
    assert store.target.user_index == "by-user"
    for secret in ("testing", "tok3n"):
        assert secret not in repr(store) and secret not in mask_url(url)
        assert secret not in repr(store.target)
    assert "secret_access_key=***" in repr(store) and "session_token=***" in repr(store)
    store.close()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("dynamodb://", "name a table"),
        ("dynamodb://ab", "name a table"),
        ("dynamodb://table?regoin=eu-west-1", "unknown option 'regoin'"),
        ("dynamodb://key:s3cret@table", "no user or password"),
        ("dynamodb://table?region=x&endpoint=localhost:8000", "http(s)://"),
        ("dynamodb://table?region=x&max_attempts=0", "at least 1"),
    ],
)
def test_bad_urls_are_config_errors(url: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        open_store(url)
    assert problem in str(caught.value) and "s3cret" not in str(caught.value)


def test_no_region_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    with pytest.raises(ConfigError, match="region") as caught:
        open_store("dynamodb://sessions?access_key_id=AKIDEXAMPLE")
    # the URL as it was given, its secrets masked, and what to do
    assert str(caught.value) == (
        "sessionkit setting 'store': 'dynamodb://sessions?access_key_id=***': no AWS region "
        "is configured; add ?region=... to the URL, or set AWS_REGION"
    )


def test_an_unknown_profile_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    with pytest.raises(ConfigError, match="profile") as caught:
        open_store("dynamodb://sessions?region=eu-west-1&profile=nosuch")
    assert str(caught.value).startswith(
        "sessionkit setting 'store': 'dynamodb://sessions?region=eu-west-1&profile=nosuch': "
    )


# -- the table ------------------------------------------------------------------------------
def test_init_creates_the_table_with_its_index_and_ttl(moto_server: Server) -> None:
    url = dynamodb_url(moto_server)
    done = CliRunner().invoke(build_group(), ["init", url])
    assert done.exit_code == 0, done.output
    assert "created the session storage" in done.output and "testing" not in done.output
    store = DynamoDBStore.from_url(url)
    table = store._client.describe_table(TableName=store.table)["Table"]
    assert [i["IndexName"] for i in table["GlobalSecondaryIndexes"]] == ["sessionkit-user"]
    assert table["GlobalSecondaryIndexes"][0]["KeySchema"] == [
        {"AttributeName": "user", "KeyType": "HASH"}
    ]
    ttl = store._client.describe_time_to_live(TableName=store.table)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "ttl"}
    again = CliRunner().invoke(build_group(), ["init", url])
    assert again.exit_code == 0 and "nothing to create" in again.output
    assert store.create_schema() is False
    store.close()


def test_a_table_without_the_user_index_is_refused(moto_server: Server) -> None:
    store = DynamoDBStore.from_url(dynamodb_url(moto_server))
    store._client.create_table(
        TableName=store.table, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "digest", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "digest", "KeyType": "HASH"}],
    )  # fmt: skip
    with pytest.raises(ConfigError, match="no global secondary index 'sessionkit-user'"):
        store.create_schema()
    store.close()


def test_a_missing_table_says_to_run_init(moto_server: Server) -> None:
    store = DynamoDBStore.from_url(dynamodb_url(moto_server))
    with pytest.raises(StoreUnavailable) as caught:
        store.load(digest(new_id()))
    assert "sessionkit init" in str(caught.value) and "testing" not in str(caught.value)
    store.close()


def test_items_carry_the_native_ttl_and_only_bound_sessions_are_indexed(
    store: DynamoDBStore, clock: FakeClock
) -> None:
    anonymous = create(store, clock, {"a": '"1"'})
    bound = create(store, clock, {"a": '"1"'}, user="ann")
    item = raw(store, anonymous)
    assert item is not None and "user" not in item
    assert int(item["ttl"]["N"]) == math.ceil(clock.now + 600)
    assert float(item["expires_at"]["N"]) == clock.now + 600
    listed = store._client.scan(TableName=store.table, IndexName="sessionkit-user")["Items"]
    assert [i["digest"]["S"] for i in listed] == [bound]
    assert store.touch(anonymous, int(clock.now) + 5, 900.0)
    touched = raw(store, anonymous)
    assert touched is not None and int(touched["ttl"]["N"]) == math.ceil(clock.now + 900)
    assert touched["last_seen"]["N"] == str(int(clock.now) + 5)


# -- keys, order, merges --------------------------------------------------------------------
def test_any_session_key_and_a_merge_too_long_for_one_expression(
    store: DynamoDBStore, clock: FakeClock
) -> None:
    key = create(store, clock, {"": '"empty"', "a.b[0]": '"path-like"', "é #:x": '"odd"'})
    many = {f"key-{i:03d}": str(i) for i in range(300)}  # ~10 KB of update expression
    assert store.save(Write(key, many, frozenset({""}), meta(clock), 600.0)) is True
    record = store.load(key)
    assert record is not None
    assert list(record.items) == ["a.b[0]", "é #:x", *many]
    assert record.version == 2
    in_place = Write(key, {"a.b[0]": '"changed"'}, frozenset(), meta(clock), 600.0,
                     new_keys=frozenset())  # fmt: skip
    assert store.save(in_place) is True
    record = store.load(key)
    assert record is not None and next(iter(record.items)) == "a.b[0]" and record.version == 3
    assert store.save(in_place._replace(new_keys=frozenset({"a.b[0]"})))  # set again: last
    record = store.load(key)
    assert record is not None and list(record.items)[-1] == "a.b[0]" and record.version == 4


def test_a_merge_never_resurrects_and_a_rotation_needs_a_live_source(
    store: DynamoDBStore, clock: FakeClock
) -> None:
    key = create(store, clock, {"a": "1"})
    store.delete(key)
    merge = Write(key, {"b": "2"}, frozenset(), meta(clock), 600.0)
    assert store.save(merge) is False  # ConditionalCheckFailedException: nothing written
    assert raw(store, key) is None
    new = digest(new_id())
    rotation = Write(new, {"a": "1"}, frozenset(), meta(clock), 600.0, create=True,
                     replace=True, rotated_from=key)  # fmt: skip
    assert store.save(rotation) is False  # TransactionCanceled (ConditionalCheckFailed)
    assert raw(store, new) is None
    source = create(store, clock, {"a": "1"})
    clock.advance(601)  # expired, though DynamoDB's TTL has not removed it
    assert raw(store, source) is not None and store.load(source) is None
    assert store.save(rotation._replace(rotated_from=source)) is False
    assert store.save(Write(source, {"b": "2"}, frozenset(), meta(clock), 600.0)) is False
    assert store.touch(source, int(clock.now), 600.0) is False


def test_parallel_merges_of_different_keys_all_survive(
    store: DynamoDBStore, clock: FakeClock
) -> None:
    key = create(store, clock, {"start": "0"})

    def merge(i: int) -> None:
        write = Write(key, {f"k{i}": str(i)}, frozenset(), meta(clock), 600.0)
        assert store.save(write) is True

    threads = [threading.Thread(target=merge, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    record = store.load(key)
    assert record is not None and len(record.items) == 13 and record.version == 13


# -- DynamoDB's limits and failures ----------------------------------------------------------
def test_an_item_over_400_kb_is_session_too_large(store: DynamoDBStore, clock: FakeClock) -> None:
    near = create(store, clock, {"blob": '"' + "x" * 390_000 + '"'})  # fits: DynamoDB takes it
    with pytest.raises(SessionTooLarge) as caught:
        create(store, clock, {"blob": '"' + "x" * 410_000 + '"'})
    assert caught.value.limit == 409_600 and caught.value.size > 409_600
    assert "DynamoDB's item size limit" in str(caught.value)
    with pytest.raises(SessionTooLarge):
        store.save(Write(near, {"more": "y" * 410_000}, frozenset(), meta(clock), 600.0))
    record = store.load(near)
    assert record is not None and set(record.items) == {"blob"}


def test_dynamodbs_own_size_refusal_is_session_too_large(
    store: DynamoDBStore, clock: FakeClock
) -> None:
    """A merge that fits the check here but not DynamoDB's (the stored part is big): the
    service's ValidationException is the same SessionTooLarge."""
    key = create(store, clock, {"a": "1"})
    Injected(store, "UpdateItem", "ValidationException",
             "Item size to update has exceeded the maximum allowed size")  # fmt: skip
    with pytest.raises(SessionTooLarge, match="DynamoDB's item size limit"):
        store.save(Write(key, {"b": "2"}, frozenset(), meta(clock), 600.0))


def test_an_oversized_session_through_the_engine_is_the_too_large_policy(
    moto_server: Server, clock: FakeClock
) -> None:
    store = fresh_store(moto_server, clock)
    engine = SessionEngine(SessionConfig(secret_key=KEY, store=store), clock=clock)
    browser = Browser(engine)
    browser.visit(lambda s: s.__setitem__("a", 1))
    with pytest.raises(SessionTooLarge):
        browser.visit(lambda s: s.__setitem__("blob", "x" * 500_000))
    assert browser.visit(lambda s: dict(s)).result == {"a": 1}
    store.close()


@pytest.mark.parametrize(
    "code",
    ["ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"],
)
def test_throttling_is_store_unavailable(store: DynamoDBStore, clock: FakeClock, code: str) -> None:
    key = create(store, clock, {"a": "1"})  # on moto, before the throttling starts
    throttle = Injected(store, "GetItem", code, "Rate of requests exceeds the allowed throughput.")
    with pytest.raises(StoreUnavailable) as caught:
        store.load(key)
    message = str(caught.value)
    assert "throttled" in message and code in message and "capacity" in message
    assert "secret_access_key=***" in message and "testing" not in message
    assert caught.value.ambiguous is False
    assert throttle.sent == 3  # botocore's standard retries (max_attempts=3), then us
    assert store.save(Write(key, {"b": "2"}, frozenset(), meta(clock), 600.0))  # writes pass


def test_throttled_requests_take_the_store_down_policy(
    moto_server: Server, clock: FakeClock
) -> None:
    store = fresh_store(moto_server, clock)
    engine = SessionEngine(SessionConfig(secret_key=KEY, store=store), clock=clock)
    browser = Browser(engine)
    browser.visit(lambda s: s.__setitem__("a", 1))
    Injected(store, "UpdateItem", "ThrottlingException", "slow down")
    with pytest.raises(StoreUnavailable, match="throttled"):
        browser.visit(lambda s: s.__setitem__("a", 2))
    assert store.load(browser.visit(lambda s: s._ctx.digest).result) is not None
    store.close()


def test_a_throttled_transaction_is_store_unavailable(
    store: DynamoDBStore, clock: FakeClock
) -> None:
    """A rotation's TransactWriteItems, cancelled because one of its items was throttled."""
    old = create(store, clock, {"a": "1"})
    reasons = [{"Code": "None"}, {"Code": "ThrottlingError", "Message": "Throughput exceeds"}]
    said = "Transaction cancelled [None, ThrottlingError]"
    Injected(store, "TransactWriteItems", "TransactionCanceledException", said,
             CancellationReasons=reasons)  # fmt: skip
    rotation = Write(digest(new_id()), {"a": "1"}, frozenset(), meta(clock), 600.0,
                     create=True, replace=True, rotated_from=old)  # fmt: skip
    with pytest.raises(StoreUnavailable, match=r"throttled.*ThrottlingError"):
        store.save(rotation)
    assert store.load(old) is not None and store.load(rotation.digest) is None


def test_refused_credentials_say_so(store: DynamoDBStore) -> None:
    Injected(store, "GetItem", "UnrecognizedClientException", "The security token is invalid")
    with pytest.raises(StoreUnavailable, match="Check the AWS credentials"):
        store.load(digest(new_id()))


def test_a_5xx_after_a_write_is_ambiguous(store: DynamoDBStore, clock: FakeClock) -> None:
    key = create(store, clock, {"a": "1"})
    Injected(store, "UpdateItem", "InternalServerError", "oops", status=500)
    with pytest.raises(StoreUnavailable) as caught:
        store.save(Write(key, {"b": "2"}, frozenset(), meta(clock), 600.0))
    assert caught.value.ambiguous is True


def test_nothing_listening_is_store_unavailable_with_the_url_masked() -> None:
    url = (
        f"dynamodb://sessions?region=us-east-1&endpoint=http://127.0.0.1:{free_port()}"
        "&access_key_id=AKIDEXAMPLE&secret_access_key=wJalrXUtnFEMI&connect_timeout=0.5"
    )
    store = open_store(url, max_attempts=1)
    with pytest.raises(StoreUnavailable) as caught:
        store.load(digest(new_id()))
    message = str(caught.value)
    assert "unavailable" in message and "EndpointConnectionError" in message
    assert "wJalrXUtnFEMI" not in message and "AKIDEXAMPLE" not in message
    assert caught.value.ambiguous is False
    with pytest.raises(StoreUnavailable):
        asyncio.run(store.asave(Write(digest(new_id()), {}, frozenset(),
                                      RecordMeta(1, 1), 60.0, create=True)))  # fmt: skip
    store.close()


def test_the_emulator_stopping_and_coming_back() -> None:
    server = servers.moto_server()
    try:
        store = DynamoDBStore.from_url(dynamodb_url(server), max_attempts=1)
        store.create_schema()
        clock = FakeClock()
        key = create(store, clock, {"a": "1"})
        server.stop()
        with pytest.raises(StoreUnavailable, match="unavailable"):
            store.load(key)
        server.start()  # the emulator keeps nothing: the table is gone
        with pytest.raises(StoreUnavailable, match="sessionkit init"):
            store.load(key)
        store.create_schema()
        assert store.load(key) is None
        store.close()
    finally:
        server.close()


# -- corrupted items ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "damage",
    [
        {"data": {"S": "not a map"}},
        {"meta": {"S": "[1, 2"}},
        {"meta": {"S": '["not", "a", "meta", "list"]'}},
        {"version": {"S": "one"}},
        {"layout": {"N": "2"}},  # a layout this release does not know
        {"data": {"M": {"a": {"S": "x"}}}},  # a key without the "k" prefix
        {"data": {"M": {"ka": {"N": "1"}}}},
        {"user": {"S": "umallory"}},  # the index key and the metadata disagree
    ],
)
def test_a_corrupted_item_reads_as_no_session_and_is_logged(
    store: DynamoDBStore, clock: FakeClock, caplog: pytest.LogCaptureFixture,
    damage: dict[str, Any],
) -> None:  # fmt: skip
    key = create(store, clock, {"a": '"1"'})
    item = raw(store, key)
    assert item is not None
    store._client.put_item(TableName=store.table, Item={**item, **damage})
    with caplog.at_level(logging.WARNING, logger="sessionkit.security"):
        assert store.load(key) is None
    assert (
        "record_rejected" in caplog.text and handle(key) in caplog.text and key not in caplog.text
    )


def test_a_merge_into_a_corrupted_item_is_refused_and_logged(
    store: DynamoDBStore, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    key = create(store, clock, {"a": '"1"'})
    item = raw(store, key)
    assert item is not None
    store._client.put_item(TableName=store.table, Item={**item, "data": {"S": "junk"}})
    with caplog.at_level(logging.WARNING, logger="sessionkit.security"):
        assert store.save(Write(key, {"b": "2"}, frozenset(), meta(clock), 600.0)) is False
    assert "corrupted" in caplog.text and handle(key) in caplog.text
    assert raw(store, key) == {**item, "data": {"S": "junk"}}  # left as it was


# -- the user index, locks and guards stay out of each other's way ---------------------------
def test_an_empty_user_id_is_indexed_too(store: DynamoDBStore, clock: FakeClock) -> None:
    key = create(store, clock, {"a": "1"}, user="")
    item = raw(store, key)
    assert item is not None and item["user"] == {"S": "u"}
    assert [i.handle for i in store.user_sessions("")] == [handle(key)]
    record = store.load(key)
    assert record is not None and record.meta.user == ""
    assert store.revoke_user("") == 1 and store.load(key) is None


def test_scan_and_listings_skip_locks_and_guards(store: DynamoDBStore, clock: FakeClock) -> None:
    key = create(store, clock, {"a": "1"}, user="zoe")
    limited = Write(digest(new_id()), {}, frozenset(), meta(clock, "zoe"), 600.0, create=True,
                    replace=True, limit=SessionLimit(5))  # fmt: skip
    assert store.save_limited(limited) == []
    with store.lock(key, ttl=5, wait=1):
        assert len(list(store.scan())) == 2
        assert {i.handle for i in store.user_sessions("zoe")} == {
            handle(key),
            handle(limited.digest),
        }
        assert store.load(key) is not None
    assert store.revoke_user("zoe") == 2
    assert store.user_sessions("zoe") == [] and list(store.scan()) == []


def test_a_bound_regenerate_keeps_the_guard_exact(store: DynamoDBStore, clock: FakeClock) -> None:
    """A login under the limit names its session in the user's guard; ``regenerate()``
    moves that name to the new digest (the index may not list the new one yet)."""
    first = Write(digest(new_id()), {}, frozenset(), meta(clock, "yan"), 600.0, create=True,
                  replace=True, limit=SessionLimit(1))  # fmt: skip
    assert store.save_limited(first) == []
    moved = digest(new_id())
    rotation = Write(moved, {}, frozenset(), meta(clock, "yan"), 600.0, create=True,
                     replace=True, rotated_from=first.digest, previous_user="yan")  # fmt: skip
    assert store.save(rotation) is True
    guard = raw(store, guard_of("yan"))
    assert guard is not None and set(guard["members"]["M"]) == {moved}
    assert "user" not in guard and "yan" not in json.dumps(guard)
    second = first._replace(digest=digest(new_id()))
    assert store.save_limited(second) == [moved]
    assert store.load(moved) is None


# -- sessionkit doctor ------------------------------------------------------------------------
def test_doctor_checks_the_index_ttl_and_capacity(moto_server: Server) -> None:
    store = DynamoDBStore.from_url(dynamodb_url(moto_server))
    store._client.create_table(
        TableName=store.table, BillingMode="PROVISIONED",
        ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
        AttributeDefinitions=[{"AttributeName": "digest", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "digest", "KeyType": "HASH"}],
    )  # fmt: skip
    found = {f.check: f for f in diagnose(store)}
    assert found["connectivity"].level == "ok"
    assert found["user index"].level == "error" and "sessionkit init" in found["user index"].message
    assert found["ttl"].level == "warn" and "--fix" in found["ttl"].message
    assert found["capacity"].level == "warn" and "5 writes" in found["capacity"].message
    fixed = {f.check: f for f in diagnose(store, fix=True)}
    assert fixed["ttl"].level == "ok" and "turned" in fixed["ttl"].message
    assert {f.check: f for f in diagnose(store)}["ttl"].message == "native TTL on 'ttl'"
    store.close()
    made = fresh_store(moto_server)
    assert all(f.level == "ok" for f in diagnose(made)), diagnose(made)
    made.close()


# -- what this release wrote, read by every later one (tests/fixtures/formats) ---------------
def test_the_layout_fixture_reads_back(moto_server: Server) -> None:
    """``dynamodb.json`` (generate_dynamodb.py): the items a release wrote, restored into a
    fresh table, read back sync and async; the index lists the signed-in session, and the
    lock the old release held still excludes."""
    fixture = json.loads((FORMATS / "dynamodb.json").read_text())
    assert fixture["layout"] == LAYOUT_VERSION  # a new layout keeps this file, adds its own
    store = fresh_store(moto_server, FakeClock(READ_AT))
    for item in fixture["items"]:
        store._client.put_item(TableName=store.table, Item=item)
    config = SessionConfig(secret_key=FIXTURE_KEY, store=store)
    engine = SessionEngine(config, clock=FakeClock(READ_AT))

    def want(name: str) -> dict[str, Any]:
        data, _, flash = SESSIONS[name]
        return {**data, "message": flash} if flash else dict(data)

    for name, cookie in fixture["cookies"].items():
        session = engine.open(cookie, CLIENT)
        assert dict(session) == want(name) and session.user_id == SESSIONS[name][1], name

    async def aread() -> None:
        for name, cookie in fixture["cookies"].items():
            session = engine.open(cookie, CLIENT)
            await engine.aload(session)
            assert dict(session) == want(name), name

    asyncio.run(aread())
    (listed,) = store.user_sessions(USER)
    assert listed.handle == engine.open(fixture["cookies"]["signed_in"], CLIENT).handle
    locked = engine.open(fixture["cookies"][fixture["locked"]], CLIENT)
    with pytest.raises(LockTimeout), engine.lock(locked, ttl=5, wait=0.2):
        pass
    store.close()


def test_the_command_line_on_dynamodb(moto_server: Server) -> None:
    """``stats`` scans, ``list``/``revoke`` use the index, ``gc`` has nothing to do (native
    TTL), ``health`` shows the URL masked: the same commands as on every store."""
    url = dynamodb_url(moto_server)
    cli = build_group()
    assert CliRunner().invoke(cli, ["init", url]).exit_code == 0
    store = DynamoDBStore.from_url(url)
    engine = SessionEngine(SessionConfig(secret_key=KEY, store=store))
    for _ in range(2):
        Browser(engine).visit(lambda s: s.bind_user("cli-user"))
    Browser(engine).visit(lambda s: s.__setitem__("a", 1))
    outputs = {
        name: CliRunner().invoke(cli, [*args, url])
        for name, args in {
            "stats": ["stats", "--json"], "gc": ["gc"], "health": ["health"],
            "list": ["list", "--json", "--user", "cli-user"],
        }.items()
    }  # fmt: skip
    for name, done in outputs.items():
        assert done.exit_code == 0, (name, done.output)
        assert "testing" not in done.output, name
    stats = json.loads(outputs["stats"].output)
    assert stats["sessions"] == 3 and stats["users"] == 1
    listed = json.loads(outputs["list"].output)
    assert sorted(i["handle"] for i in listed) == sorted(
        i.handle for i in store.user_sessions("cli-user")
    )
    assert all(i["device"] == "Chrome on Linux" for i in listed) and len(listed) == 2
    assert "nothing to do" in outputs["gc"].output
    assert "secret_access_key=***" in outputs["health"].output
    revoked = CliRunner().invoke(cli, ["revoke", "--user", "cli-user", url])
    assert revoked.exit_code == 0 and store.user_sessions("cli-user") == []
    store.close()


def test_health_up_and_down(moto_server: Server) -> None:
    up = SessionEngine(SessionConfig(secret_key=KEY, store=fresh_store(moto_server)))
    for found in (up.health(), asyncio.run(up.ahealth())):
        assert found.ok and found.latency_ms is not None and found.server_version is None
        assert "secret_access_key=***" in found.store and "testing" not in found.store
    up.store.close()
    url = (
        f"dynamodb://sessions?region=us-east-1&endpoint=http://127.0.0.1:{free_port()}"
        "&access_key_id=AKIDEXAMPLE&secret_access_key=wJalrXUtnFEMI&max_attempts=1"
    )
    down = SessionEngine(SessionConfig(secret_key=KEY, store=url))
    for found in (down.health(), asyncio.run(down.ahealth())):
        assert not found.ok and found.error is not None and "unavailable" in found.error
        assert "wJalrXUtnFEMI" not in found.error + found.store
    down.store.close()
