"""Where a run's files live: a local folder or object storage (`s3://bucket/key`).

`filesystem(uri)` gives the pyarrow file system and the path inside it. S3 is configured
only from the environment, never from a config file: the standard `AWS_ACCESS_KEY_ID`,
`AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` (or any other source of the AWS credential
chain), `AWS_REGION` / `AWS_DEFAULT_REGION` (default us-east-1) and `AWS_ENDPOINT_URL` /
`AWS_ENDPOINT_URL_S3` for an S3-compatible server (MinIO, moto, ...).

A remote run works in a local mirror folder, `$INSTRUCTMIX_MIRROR/s3/BUCKET/KEY` (default
`~/.cache/instructmix/mirror`): `pull` makes the mirror equal to the bucket, `push` the
bucket equal to the mirror (files compared by size and modification time: a synced local
file carries its object's time, which S3 keeps to the second). A folder inside
a mirror maps back to its URI (`remote_of`), so Ray can write there directly
(`ray_storage`). The mirror is on one machine's disk: a Ray worker on another node is
given a file's URI (`portable`) and fetches it into its own node's mirror (`on_this_node`).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import pyarrow.fs as pafs

REMOTE_SCHEMES = ("s3",)
DEFAULT_REGION = "us-east-1"
MIRROR_ENV = "INSTRUCTMIX_MIRROR"
ENDPOINT_ENV = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
REGION_ENV = ("AWS_REGION", "AWS_DEFAULT_REGION")
CHUNK = 8 << 20


class StorageError(RuntimeError):
    """Object storage is unreachable, refuses the credentials or lacks the bucket."""


def is_remote(uri: str | os.PathLike) -> bool:
    """True for an object-storage URI (`s3://...`), False for a local path."""
    text = str(uri)
    return "://" in text and text.split("://", 1)[0].lower() in REMOTE_SCHEMES


def endpoint() -> str | None:
    """The S3 endpoint from the environment (None: AWS itself)."""
    return next((os.environ[k] for k in ENDPOINT_ENV if os.environ.get(k)), None)


def region() -> str:
    return next((os.environ[k] for k in REGION_ENV if os.environ.get(k)), DEFAULT_REGION)


def s3_filesystem() -> pafs.S3FileSystem:
    """A pyarrow S3 file system configured from the environment only (credentials are
    left to the AWS chain, so they are not part of the pickled file system)."""
    kwargs: dict = {"region": region(), "connect_timeout": 5, "request_timeout": 60,
                    "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=3)}
    url = endpoint()
    if url:
        parsed = urlparse(url if "://" in url else f"https://{url}")
        kwargs.update(endpoint_override=parsed.netloc + parsed.path.rstrip("/"),
                      scheme=parsed.scheme or "https")
    return pafs.S3FileSystem(**kwargs)


def split(uri: str) -> tuple[str, str]:
    """`s3://bucket/key/` -> ("bucket", "key"); raises on other schemes or no bucket."""
    parsed = urlparse(str(uri))
    if parsed.scheme.lower() not in REMOTE_SCHEMES:
        raise ValueError(f"unsupported storage URI {uri!r} (use a local path or s3://)")
    if not parsed.netloc:
        raise ValueError(f"storage URI {uri!r} names no bucket (s3://BUCKET/KEY)")
    return parsed.netloc, parsed.path.strip("/")


def normalize(uri: str) -> str:
    """`s3://bucket/key` without a trailing slash (and without `//` in the key)."""
    bucket, key = split(uri)
    key = "/".join(p for p in key.split("/") if p)
    return f"s3://{bucket}/{key}" if key else f"s3://{bucket}"


def filesystem(uri: str | os.PathLike) -> tuple[pafs.FileSystem, str]:
    """(file system, path inside it): local paths become absolute; `s3://bucket/key`
    gives an S3 file system and "bucket/key"."""
    text = str(uri)
    if not is_remote(text):
        if "://" in text:
            split(text)  # raises: an unsupported scheme
        return pafs.LocalFileSystem(), str(Path(text).expanduser().resolve())
    bucket, key = split(text)
    return s3_filesystem(), f"{bucket}/{key}".rstrip("/")


def check(uri: str) -> None:
    """Raise one clear StorageError unless the bucket of `uri` is there and readable."""
    bucket, _ = split(uri)
    where = endpoint() or f"AWS S3 ({region()})"
    try:
        info = s3_filesystem().get_file_info(bucket)
    except OSError as e:
        reason = (str(e).strip().splitlines() or ["?"])[0]
        raise StorageError(f"run_dir {uri}: object storage at {where} refused or did not "
                           f"answer ({reason}); check AWS_ENDPOINT_URL and the credentials "
                           f"(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)") from None
    if info.type == pafs.FileType.NotFound:
        raise StorageError(f"run_dir {uri}: bucket {bucket!r} does not exist at {where} "
                           f"(or these credentials may not see it); create it first")


# -- the local mirror ---------------------------------------------------------------
def mirror_root() -> Path:
    root = os.environ.get(MIRROR_ENV) or "~/.cache/instructmix/mirror"
    return Path(root).expanduser().resolve()


def mirror_of(uri: str) -> Path:
    """The local folder a remote run works in."""
    bucket, key = split(uri)
    return mirror_root().joinpath("s3", bucket, *PurePosixPath(key).parts)


def remote_of(local: str | os.PathLike) -> str | None:
    """The URI a folder inside a mirror stands for (None: a plain local path)."""
    try:
        parts = Path(local).resolve().relative_to(mirror_root()).parts
    except ValueError:
        return None
    if len(parts) < 2 or parts[0] not in REMOTE_SCHEMES:
        return None
    return f"{parts[0]}://" + "/".join(parts[1:])


def portable(path: str | os.PathLike) -> str:
    """A path a Ray worker on any node can use (`on_this_node`): the URI of a file in a
    remote run's mirror, else the path itself."""
    return remote_of(path) or str(path)


def on_this_node(where: str) -> str:
    """The local path of a `portable` value on this node: a URI is fetched into this
    node's mirror first (by one process of the node at a time)."""
    if not is_remote(where):
        return where
    from filelock import FileLock

    local = mirror_of(where)
    key = hashlib.sha1(str(local).encode()).hexdigest()[:16]
    with FileLock(os.path.join(tempfile.gettempdir(), f"instructmix-fetch-{key}.lock")):
        fetch(where, local)
    return str(local)


def ray_storage(local: str | os.PathLike) -> tuple[str, pafs.FileSystem | None]:
    """Ray Train / Tune's (`storage_path`, `storage_filesystem`) for a folder: its URI's
    bucket path and file system inside a mirror, else the absolute local path."""
    uri = remote_of(local)
    if uri is None:
        return str(Path(local).resolve()), None
    fs, path = filesystem(uri)
    return path, fs


def _files(fs: pafs.FileSystem, root: str, skip: tuple[str, ...]) -> dict[str, pafs.FileInfo]:
    """Files under `root` by relative POSIX path, except those under a `skip` prefix."""
    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    out = {}
    for info in infos:
        if info.type == pafs.FileType.File:
            rel = info.path[len(root):].lstrip("/")
            if not any(rel == s or rel.startswith(s + "/") for s in skip):
                out[rel] = info
    return out


def _copy(src_fs, src: str, dst_fs, dst: str) -> None:
    with src_fs.open_input_stream(src) as fin, dst_fs.open_output_stream(dst) as fout:
        while chunk := fin.read(CHUNK):
            fout.write(chunk)


def _same(local: pafs.FileInfo, remote: pafs.FileInfo) -> bool:
    return local.size == remote.size and local.mtime_ns == remote.mtime_ns


def _stamp(local_path: str, remote: pafs.FileInfo) -> None:
    """A synced local file carries the object's time: later syncs compare it."""
    os.utime(local_path, ns=(remote.mtime_ns, remote.mtime_ns))


def pull(uri: str, local: Path, skip: tuple[str, ...] = ()) -> int:
    """Make `local` equal to `uri` (files under `skip` left alone); returns files fetched."""
    fs, root = filesystem(uri)
    lfs, lroot = pafs.LocalFileSystem(), str(local.resolve())
    remote, here = _files(fs, root, skip), _files(lfs, lroot, skip)
    fetched = 0
    for rel, info in remote.items():
        if rel not in here or not _same(here[rel], info):
            Path(lroot, rel).parent.mkdir(parents=True, exist_ok=True)
            _copy(fs, info.path, lfs, f"{lroot}/{rel}")
            _stamp(f"{lroot}/{rel}", info)
            fetched += 1
    for rel in set(here) - set(remote):
        Path(lroot, rel).unlink()
    return fetched


def push(local: Path, uri: str, skip: tuple[str, ...] = ()) -> int:
    """Make `uri` equal to `local` (files under `skip` left alone); returns files sent."""
    fs, root = filesystem(uri)
    lfs, lroot = pafs.LocalFileSystem(), str(local.resolve())
    here, remote = _files(lfs, lroot, skip), _files(fs, root, skip)
    for rel in set(remote) - set(here):
        fs.delete_file(f"{root}/{rel}")
    todo = sorted(r for r in here if r not in remote or not _same(here[r], remote[r]))
    for rel in todo:
        _copy(lfs, f"{lroot}/{rel}", fs, f"{root}/{rel}")
    sent = _files(fs, root, skip) if todo else {}
    for rel in todo:
        _stamp(f"{lroot}/{rel}", sent[rel])
    return len(todo)


def fetch(uri: str, local: Path) -> int:
    """Make the file or folder `local` equal to the object, or the objects under, `uri`;
    returns files fetched."""
    fs, root = filesystem(uri)
    info = fs.get_file_info(root)
    if info.type == pafs.FileType.Directory:
        return pull(uri, local)
    if info.type != pafs.FileType.File:
        raise StorageError(f"{uri}: not found (wanted at {local})")
    lfs = pafs.LocalFileSystem()
    if local.is_file() and _same(lfs.get_file_info(str(local)), info):
        return 0
    local.parent.mkdir(parents=True, exist_ok=True)
    _copy(fs, root, lfs, str(local))
    _stamp(str(local), info)
    return 1


def send(local: Path, uri: str) -> int:
    """Make `uri` equal to the file or folder `local`; returns files sent."""
    if local.is_dir():
        return push(local, uri)
    fs, root = filesystem(uri)
    lfs = pafs.LocalFileSystem()
    if _same(lfs.get_file_info(str(local)), fs.get_file_info(root)):
        return 0
    _copy(lfs, str(local), fs, root)
    _stamp(str(local), fs.get_file_info(root))
    return 1


def delete(uri: str) -> None:
    """Remove the object `uri`, or every object under it."""
    fs, root = filesystem(uri)
    kind = fs.get_file_info(root).type
    if kind == pafs.FileType.File:
        fs.delete_file(root)
    elif kind == pafs.FileType.Directory:
        fs.delete_dir(root)
