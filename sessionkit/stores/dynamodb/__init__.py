"""The DynamoDB store (``dynamodb://TABLE?region=...&endpoint=...``), through boto3.

- ``store``: ``DynamoDBStore``, the store protocol, locks, the user index (a GSI), scan;
- ``items``: the item layout, the update expressions and the item codec;
- ``url``: URL parsing, the client's settings and ``create_table``'s definition.
"""

from sessionkit.stores.dynamodb.store import DynamoDBStore

__all__ = ["DynamoDBStore"]
