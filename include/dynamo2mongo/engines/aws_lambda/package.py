"""The forward-sync deployment package: built from the installed code, the same code giving the same
bytes (so the same CodeSha256, and a redeploy of unchanged code uploads nothing)."""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import os
import platform
import sys
import zipfile
from pathlib import Path, PurePosixPath

from dynamo2mongo.engines.aws_lambda.settings import LambdaDeployError

# The dynamo2mongo package, whole: the handler runs forward sync's own code.
PACKAGE_ROOT = Path(__file__).resolve().parents[2]
HANDLER_SOURCE = PACKAGE_ROOT.parent / "lambda" / "handler.py"
# The packaged C extensions (bson._cbson, pymongo._cmessage) are built for this interpreter: the
# function runs on the same Python version and CPU architecture, so they load there too.
RUNTIME = f"python{sys.version_info.major}.{sys.version_info.minor}"
ARCHITECTURE = {"aarch64": "arm64", "arm64": "arm64"}.get(platform.machine().lower(), "x86_64")
# Installed distributions copied into the package: pymongo's holds the bson and gridfs packages too;
# dnspython resolves mongodb+srv:// (Atlas) URIs; msgspec reads the event's DynamoDB JSON
# (dynamo2mongo.fullload.export.ddbjson). boto3 and botocore come with the Lambda runtime. A new import on the
# handler's path must be added here: the test that runs the package in a clean interpreter finds it.
DISTRIBUTIONS = ("pymongo", "dnspython", "msgspec")
# Not needed by the handler, and not importable on Lambda (Java sources, moto).
EXCLUDED_SUBPACKAGES = ("sandbox",)
# Lambda quotas: a .zip uploaded directly to the API, and the function's code once extracted.
MAX_ZIPPED_BYTES = 50 * 1024 * 1024
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024
# ZIP's earliest date: fixed timestamps (and sorted entries) make the same code the same bytes, hence
# the same CodeSha256, so a redeploy of unchanged code uploads nothing.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def _skipped(path: PurePosixPath) -> bool:
    return "__pycache__" in path.parts or path.suffix == ".pyc"


def _package_files() -> list[tuple[str, Path]]:
    """(name in the zip, file on disk) of everything the function needs, sorted by name."""
    if not HANDLER_SOURCE.is_file():
        raise LambdaDeployError(
            f"the Lambda handler {HANDLER_SOURCE} is missing: install this repository with its include/ directory "
            f"(pip install -e .) where Airflow runs"
        )
    files = {"handler.py": HANDLER_SOURCE}
    for path in PACKAGE_ROOT.rglob("*"):
        relative = PurePosixPath(path.relative_to(PACKAGE_ROOT).as_posix())
        if path.is_file() and relative.parts[0] not in EXCLUDED_SUBPACKAGES and not _skipped(relative):
            files[f"{PACKAGE_ROOT.name}/{relative}"] = path
    for name in DISTRIBUTIONS:
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            raise LambdaDeployError(
                f"{name} is not installed where Airflow runs; the forward-sync package copies it from there "
                f"(pip install -r requirements.txt)"
            ) from None
        if not distribution.files:
            raise LambdaDeployError(f"the installed {name} lists no files (RECORD is missing): reinstall it with pip")
        for entry in distribution.files:
            relative = PurePosixPath(entry.as_posix())
            # Entries outside site-packages (console scripts) are not importable code.
            if relative.parts[0] == ".." or _skipped(relative):
                continue
            source = Path(distribution.locate_file(entry))
            if source.is_file():
                files[str(relative)] = source
    return sorted(files.items())


def build_package(dest_zip_path: str | os.PathLike) -> Path:
    """Write the forward-sync deployment package to ``dest_zip_path``; returns its path.

    Everything comes from the installed code: handler.py at the root, the dynamo2mongo package (minus
    the sandbox) and the DISTRIBUTIONS from site-packages. Nothing is downloaded.
    The same code always gives the same bytes.
    """
    destination = Path(dest_zip_path)
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".partial")
    unzipped = 0
    with zipfile.ZipFile(partial, "w") as archive:
        for name, source in _package_files():
            data = source.read_bytes()
            unzipped += len(data)
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.create_system = 3  # Unix, so that the permission bits below are honoured
            mode = 0o755 if name.endswith(".so") else 0o644
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    zipped = partial.stat().st_size
    if zipped > MAX_ZIPPED_BYTES or unzipped > MAX_UNZIPPED_BYTES:
        partial.unlink()
        raise LambdaDeployError(
            f"the forward-sync deployment package is {zipped / 2**20:.1f} MiB zipped and {unzipped / 2**20:.1f} MiB "
            f"unzipped, over Lambda's limits ({MAX_ZIPPED_BYTES / 2**20:.0f} MiB for a direct upload, "
            f"{MAX_UNZIPPED_BYTES / 2**20:.0f} MiB extracted): look for large files that ended up in "
            f"{PACKAGE_ROOT} or in the copied distributions ({', '.join(DISTRIBUTIONS)})"
        )
    partial.replace(destination)
    return destination


def code_sha256(zip_bytes: bytes) -> str:
    """Lambda's CodeSha256 of a .zip package: the base64 of its SHA-256 digest."""
    return base64.b64encode(hashlib.sha256(zip_bytes).digest()).decode("ascii")
