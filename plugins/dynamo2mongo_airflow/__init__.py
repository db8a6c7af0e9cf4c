"""Airflow glue for dynamo2mongo: operators, sensors and triggers that delegate to the domain package."""
