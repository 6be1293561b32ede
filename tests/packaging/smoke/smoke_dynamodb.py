"""``sessionkit[dynamodb]``: the DynamoDB store against moto's emulator in server mode,
sync (boto3) and async (boto3 in a worker thread), after ``create_schema`` made the table
as ``sessionkit init`` does."""

from __future__ import annotations

import os

from smokelib import main, server_store_roundtrip


def check() -> None:
    from sessionkit import open_store

    url = os.environ["SMOKE_DYNAMODB_URL"]
    store = open_store(url)
    assert store.create_schema() is True
    store.close()
    server_store_roundtrip(url)


if __name__ == "__main__":
    main(check)
