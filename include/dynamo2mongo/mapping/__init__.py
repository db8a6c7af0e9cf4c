"""The lossless DynamoDB <-> MongoDB data mapping (DESIGN §4): types, the `_id` convention, names, Extended JSON."""
