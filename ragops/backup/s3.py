"""S3 buckets for restic repositories, from the controller with boto3 (imported lazily): check or
create the bucket and report its versioning state before the first backup."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..seam import controller_write
from .errors import RepoUnreachableError, ResticError
from .repository import Repo


@dataclass
class S3Location:
    endpoint: str  # https://host[:port]
    bucket: str
    prefix: str


@dataclass
class BucketInfo:
    bucket: str
    endpoint: str
    existed: bool
    created: bool
    versioning: str  # Enabled | Suspended | never enabled | unknown
    message: str


def parse_s3_url(url: str) -> S3Location:
    """`s3:http(s)://host[:port]/bucket[/prefix]` or `s3:host/bucket[/prefix]` (https)."""
    match = re.match(r"^s3:(?:(https?)://)?([^/]+)/([^/]+)/?(.*)$", url)
    if not match:
        raise ConfigError(f"{url!r} is not an s3: repository URL (s3:https://endpoint/bucket[/prefix])")
    scheme, host, bucket, prefix = match.groups()
    return S3Location(endpoint=f"{scheme or 'https'}://{host}", bucket=bucket, prefix=prefix.rstrip("/"))


def make_s3_client(repo: Repo, location: S3Location, region: str | None = None) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=20,
                    s3={"addressing_style": "path"})
    return boto3.client("s3", endpoint_url=location.endpoint, config=config,
                        aws_access_key_id=repo.secrets.get("AWS_ACCESS_KEY_ID") or None,
                        aws_secret_access_key=repo.secrets.get("AWS_SECRET_ACCESS_KEY") or None,
                        region_name=region or dict(repo.options).get("s3.region") or "us-east-1")


def ensure_bucket(repo: Repo, *, create: bool = True, dry: bool = False, who: str = "") -> BucketInfo:
    """Check that the repository's bucket exists (create it if allowed) and read its versioning.
    The checks are reads; creating the bucket is a change: under ``dry`` printed, not made."""
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

    location = parse_s3_url(repo.url)
    client = make_s3_client(repo, location)
    where = f"{repo.describe()} (endpoint {location.endpoint}, bucket {location.bucket})"
    existed, created = True, False
    try:
        try:
            client.head_bucket(Bucket=location.bucket)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                raise ResticError(f"{where}: access denied ({code}): check the S3 keys") from None
            if code not in ("404", "NoSuchBucket", "NotFound"):
                raise ResticError(f"{where}: {code}: {exc}") from None
            existed = False
            if create:
                made = controller_write(f"create S3 bucket {location.bucket} at {location.endpoint}",
                                        lambda: client.create_bucket(Bucket=location.bucket), dry=dry, who=who)
                created = made is not None
        versioning = "never enabled"
        if existed or created:
            status = client.get_bucket_versioning(Bucket=location.bucket).get("Status")
            versioning = status or "never enabled"
    except (EndpointConnectionError, ConnectionError) as exc:
        raise RepoUnreachableError(f"{where}: S3 endpoint unreachable: {exc}") from None
    except ClientError as exc:
        raise ResticError(f"{where}: {exc}") from None
    except BotoCoreError as exc:
        raise RepoUnreachableError(f"{where}: S3 error: {exc}") from None
    state = "created" if created else ("exists" if existed else "does not exist (would be created)")
    message = f"bucket {location.bucket} {state}; versioning: {versioning}"
    if versioning != "Enabled":
        message += " (object versioning protects against deleted or overwritten repository files; consider enabling it)"
    return BucketInfo(bucket=location.bucket, endpoint=location.endpoint, existed=existed, created=created,
                      versioning=versioning, message=message)
