"""The lossless DynamoDB <-> MongoDB data mapping (DESIGN §4).

One module per idea: ``to_bson`` (items to documents), ``to_dynamodb`` (documents back to items),
``numbers`` (DynamoDB's numbers both ways), ``hints`` (the reserved ``_ddb`` field and its type
hints), ``item_limits`` (what DynamoDB refuses of an item), ``keys`` (the ``_id`` convention),
``names`` (attribute names MongoDB cannot hold as they are), ``extjson`` and ``canonical``. What
the rest of the package uses is importable from here.
"""

from dynamo2mongo.mapping.hints import RESERVED
from dynamo2mongo.mapping.item_limits import ITEM_SIZE_LIMIT, item_problems, item_size
from dynamo2mongo.mapping.to_bson import item_to_document
from dynamo2mongo.mapping.to_dynamodb import (
    DATE_MAPPINGS,
    DEFAULT_BSON_MAPPING,
    OBJECT_ID_MAPPINGS,
    BsonMapping,
    document_to_item,
)
from dynamo2mongo.mapping.unrepresentable import Unrepresentable

__all__ = [
    "DATE_MAPPINGS",
    "DEFAULT_BSON_MAPPING",
    "ITEM_SIZE_LIMIT",
    "OBJECT_ID_MAPPINGS",
    "RESERVED",
    "BsonMapping",
    "Unrepresentable",
    "document_to_item",
    "item_problems",
    "item_size",
    "item_to_document",
]
