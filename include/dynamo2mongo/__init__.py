"""dynamo2mongo: live migration of DynamoDB tables to MongoDB (domain code, no Airflow imports)."""

__version__ = "0.1.0"
