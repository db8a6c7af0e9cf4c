# The image of every Python service in docker-compose.yaml: Airflow at the version requirements.txt pins
# (the Python 3.11 build, which the lock was made with), and the project installed from requirements.txt
# as README "Pointing it at AWS and Atlas" step 1 says. Its `-e .` points into /opt/dynamo2mongo, where
# the compose file mounts include/, dags/, plugins/ and config/, so edits need no rebuild.
FROM apache/airflow:3.3.2-python3.11

USER root
RUN mkdir /opt/dynamo2mongo && chown airflow:0 /opt/dynamo2mongo
USER airflow
WORKDIR /opt/dynamo2mongo
COPY --chown=airflow:0 requirements.txt pyproject.toml ./
COPY --chown=airflow:0 include ./include
RUN pip install --no-cache-dir -r requirements.txt
