"""Reading DynamoDB point-in-time exports (manifests and ION / DYNAMODB_JSON data files)."""

from dynamo2mongo.errors import Permanent


class MalformedRecord(Permanent, ValueError):
    """One line of an export data file could not be read; ``reason`` says why."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)
