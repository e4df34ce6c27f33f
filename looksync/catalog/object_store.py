"""Object storage for feeds, the embeddings store, run reports and index snapshots.

One small interface, two backends: a local directory (the default) and S3 or any S3-compatible store
(MinIO, moto's server in tests) through boto3. Keys are '/'-separated and relative to the store's
root (a directory, or ``s3://<bucket>/<prefix>``). boto3 is imported only when an S3 store is made.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from looksync.settings import Settings


class StorageError(RuntimeError):
    """An object could not be read or written; the message names the URI."""


class ObjectStore(Protocol):
    uri: str

    def put_bytes(self, key: str, data: bytes) -> str: ...
    def get_bytes(self, key: str) -> bytes: ...
    def put_file(self, key: str, path: Path) -> str: ...
    def get_file(self, key: str, path: Path) -> Path: ...
    def exists(self, key: str) -> bool: ...
    def list(self, prefix: str = "") -> Iterator[str]: ...
    def delete(self, key: str) -> None: ...


def _clean_key(key: str) -> str:
    key = key.strip("/")
    if not key or any(part in ("", ".", "..") for part in key.split("/")):
        raise StorageError(f"invalid object key {key!r}")
    return key


class LocalStore:
    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.uri = self.root.as_uri()

    def _path(self, key: str) -> Path:
        return self.root / _clean_key(key)

    def put_bytes(self, key: str, data: bytes) -> str:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        return path.as_uri()

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except OSError as exc:
            raise StorageError(f"{self.uri}/{key}: {exc.strerror or exc}") from exc

    def put_file(self, key: str, path: Path) -> str:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        shutil.copyfile(path, tmp)
        os.replace(tmp, target)
        return target.as_uri()

    def get_file(self, key: str, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copyfile(self._path(key), path)
        except OSError as exc:
            raise StorageError(f"{self.uri}/{key}: {exc.strerror or exc}") from exc
        return path

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> Iterator[str]:
        base = self.root / prefix.strip("/") if prefix.strip("/") else self.root
        if not base.exists():
            return
        for path in sorted(base.rglob("*")):
            if path.is_file() and not path.name.endswith(".tmp"):
                yield path.relative_to(self.root).as_posix()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


class S3Store:
    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None, region: str = "us-east-1", client=None):
        import boto3

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.uri = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self.client = client or boto3.client("s3", endpoint_url=endpoint_url, region_name=region)

    def _key(self, key: str) -> str:
        key = _clean_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _fail(self, key: str, exc: Exception) -> StorageError:
        return StorageError(f"s3://{self.bucket}/{self._key(key)}: {exc}")

    def put_bytes(self, key: str, data: bytes) -> str:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        except Exception as exc:  # botocore raises many types; all mean "not written"
            raise self._fail(key, exc) from exc
        return f"s3://{self.bucket}/{self._key(key)}"

    def get_bytes(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except Exception as exc:
            raise self._fail(key, exc) from exc

    def put_file(self, key: str, path: Path) -> str:
        try:
            self.client.upload_file(str(path), self.bucket, self._key(key))
        except Exception as exc:
            raise self._fail(key, exc) from exc
        return f"s3://{self.bucket}/{self._key(key)}"

    def get_file(self, key: str, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.client.download_file(self.bucket, self._key(key), str(path))
        except Exception as exc:
            raise self._fail(key, exc) from exc
        return path

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise self._fail(key, exc) from exc
        except Exception as exc:  # connection, credentials, ...: "cannot say", not "absent"
            raise self._fail(key, exc) from exc

    def list(self, prefix: str = "") -> Iterator[str]:
        full = "/".join(p for p in (self.prefix, prefix.strip("/")) if p)
        paginator = self.client.get_paginator("list_objects_v2")
        strip = len(self.prefix) + 1 if self.prefix else 0
        for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
            for obj in page.get("Contents", []):
                yield obj["Key"][strip:]

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))


S3ClientFactory = Callable[[Settings], Any]
_s3_client_factory: S3ClientFactory | None = None


def use_s3_client_factory(factory: S3ClientFactory | None) -> S3ClientFactory | None:
    """Hand the object stores a maker of S3 clients (``settings -> boto3 client``); None goes back to
    plain boto3 clients. The Airflow wing hands down its ``looksync_s3`` connection's clients this way
    (credentials and botocore config through the S3Hook), so the catalog never imports Airflow.
    Returns the factory it replaced."""
    global _s3_client_factory
    previous, _s3_client_factory = _s3_client_factory, factory
    return previous


def _s3_client(settings: Settings):
    """The handed-down factory's client, else a boto3 client (default session) on the settings'
    endpoint and region."""
    if _s3_client_factory is not None:
        return _s3_client_factory(settings)
    import boto3

    return boto3.client("s3", endpoint_url=settings.s3_endpoint_url, region_name=settings.s3_region)


def open_store(uri: str | Path, settings: Settings | None = None) -> ObjectStore:
    """A store for ``s3://bucket/prefix`` or a local path / ``file://`` URI."""
    text = str(uri)
    if text.startswith("s3://"):
        parts = urlsplit(text)
        if settings is None:
            return S3Store(parts.netloc, parts.path)
        return S3Store(parts.netloc, parts.path, client=_s3_client(settings))
    if text.startswith("file://"):
        text = urlsplit(text).path
    return LocalStore(Path(text))


def default_store(settings: Settings, area: str) -> ObjectStore:
    """The configured store for one area ('snapshots', 'embeddings', 'reports', ...): S3 when a bucket
    is configured, else ``<data_dir>/<area>``."""
    if settings.s3_bucket:
        return S3Store(settings.s3_bucket, f"{settings.s3_prefix.strip('/')}/{area}", client=_s3_client(settings))
    return LocalStore(settings.data_dir / area)
