# The image of every Python service in docker-compose.yaml: Airflow at the version requirements.txt pins
# (the Python 3.11 build, which the lock was made with), and the project installed from requirements.txt
# as README "Pointing it at AWS and Atlas" step 1 says. Its `-e .` points into /opt/dynamo2mongo, where
# the compose file mounts include/, dags/, plugins/ and config/, so edits need no rebuild.

# The compiled line conversion (native/), built where a Rust toolchain is: an abi3 wheel for Python 3.11+.
FROM rust:1.95-slim-bookworm AS native
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-pip && rm -rf /var/lib/apt/lists/*
RUN pip3 install --break-system-packages --no-cache-dir maturin==1.9.4
COPY native /src/native
RUN cd /src/native && maturin build --release --locked --out /wheels

FROM apache/airflow:3.3.2-python3.11

USER root
RUN mkdir /opt/dynamo2mongo && chown airflow:0 /opt/dynamo2mongo
USER airflow
WORKDIR /opt/dynamo2mongo
COPY --chown=airflow:0 requirements.txt pyproject.toml ./
COPY --chown=airflow:0 include ./include
COPY --from=native /wheels /tmp/wheels
RUN pip install --no-cache-dir -r requirements.txt /tmp/wheels/*.whl
