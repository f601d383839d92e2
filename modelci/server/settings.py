"""Settings from flags, the environment (``MODELCI_*``) and an optional ``.env`` file."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from platformdirs import user_data_dir
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from modelci.core.domain import DEFAULT_PROFILE_BUDGET_S
from modelci.core.usecases import MAX_BUDGET_S

LOOPBACK_HOSTS = ("localhost", "::1")
GiB = 1024**3
MiB = 1024**2


def default_data_dir() -> Path:
    return Path(user_data_dir("modelci", appauthor=False))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MODELCI_", env_file=".env", extra="ignore")

    mongodb_url: str | None = Field(
        default=None,
        description="MongoDB to use; unset starts the embedded SecantusDB under data_dir.",
    )
    database: str = Field(default="modelci", description="Database name.")
    write_concern: str = Field(
        default="majority",
        pattern=r"^(majority|[0-9]+)$",
        description="Members that must have a write before it is acknowledged (MongoDB "
        "`w`): majority, or a number.",
    )
    write_journal: bool = Field(
        default=True,
        description="Acknowledge a write only once it is in the journal on disk (MongoDB "
        "`j`); false trades durability across crashes for speed.",
    )
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Embedded database files and weight files live here.",
    )
    host: str = Field(default="127.0.0.1", description="Address to listen on.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port to listen on.")
    processes: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Web server processes `serve` runs on one port; more use more cores.",
    )
    weight_store: Literal["auto", "files", "gridfs"] = Field(
        default="auto",
        description="Where weight bytes live: files under data_dir, or GridFS in MongoDB; "
        "auto picks files with the embedded database and GridFS with MONGODB_URL.",
    )
    max_upload_bytes: int = Field(
        default=4 * GiB, gt=0, description="Largest multipart request (weight upload) accepted."
    )
    max_json_bytes: int = Field(
        default=1 * MiB, gt=0, description="Largest plain JSON GraphQL request accepted."
    )
    kept_models_mb: int = Field(
        default=64,
        ge=0,
        description="Memory a server process gives to models it has read, so that an "
        "unchanged model read again is not validated again (0: none).",
    )
    read_model_mb: int = Field(
        default=256,
        ge=0,
        description="Memory a server process gives to its copy of the models and aliases, "
        "kept current by the database's change stream, that answers reads (0: every read "
        "asks the database). The newest models are kept; a read needing older ones asks "
        "the database. About 12 KB a profiled model: the default keeps some 20 000.",
    )
    read_wait_s: float = Field(
        default=0.5,
        gt=0,
        le=30,
        description="Longest a read waits for the copy in memory to apply a write the "
        "caller must see (one made through another server process) before it asks the "
        "database instead.",
    )
    request_head_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a connection has to send a request's line and headers.",
    )
    ws_connection_init_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a WebSocket connection has to send connection_init (with its "
        "token) before it is closed, on either GraphQL WebSocket protocol.",
    )
    body_idle_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="Seconds a request body may send nothing before it is cut off.",
    )
    max_concurrent_uploads: int = Field(
        default=64, ge=1, description="Uploads a server process takes at once, in all."
    )
    max_uploads_per_token: int = Field(
        default=32, ge=1, description="Uploads a server process takes at once from one token."
    )
    check_slots: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Uploads a server process checks at once (each in a helper process, "
        "and a TorchScript archive's load in the cage).",
    )
    check_slots_per_token: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Of those, how many one token's uploads may hold; its further uploads "
        "wait behind each other while other tokens' are checked.",
    )
    check_seconds: float = Field(
        default=120.0,
        gt=0,
        description="Seconds a helper process may spend checking one upload (an ONNX "
        "model's load in onnxruntime, an archive's directory) before it is refused.",
    )
    torchscript_check_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Seconds loading an uploaded TorchScript archive in the cage (which "
        "runs its __setstate__ code) may take before the upload is refused.",
    )
    max_queued_jobs_per_token: int = Field(
        default=500, ge=1, description="Jobs one token may have queued at once."
    )
    log_level: str = Field(default="INFO", description="Python logging level.")
    log_format: Literal["text", "json"] = Field(
        default="text", description="text for people, json (one object a line) for collectors."
    )
    auth: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="Require API tokens: auto = on unless listening on loopback only; "
        "off is allowed on loopback only.",
    )
    token: str | None = Field(
        default=None, description="API token that `modelci worker` sends to the hub."
    )
    allow_pickle: bool = Field(
        default=False,
        description="Accept pickled PyTorch models (torch.save). Unpickling runs arbitrary "
        "code: only for uploads from people you trust.",
    )
    workers: int = Field(
        default=1, ge=0, le=64, description="Profiling worker processes `serve` starts."
    )
    profile_window_s: float = Field(
        default=1.0, gt=0, description="Length of a timed profiling window, in seconds."
    )
    profile_min_runs: int = Field(
        default=5,
        ge=1,
        description="Timed runs per window, at least (a floor: a window lasts its length "
        "or this many runs, whichever is longer).",
    )
    profile_max_windows: int = Field(
        default=10, ge=3, description="Windows before a result is published as unstable."
    )
    profile_budget_s: float = Field(
        default=DEFAULT_PROFILE_BUDGET_S,
        ge=1,
        le=MAX_BUDGET_S,
        description="Seconds a profiling job may take when its caller gives no budget, "
        "shared across its devices and batch sizes.",
    )
    profile_threads: int | None = Field(
        default=None, ge=1, description="Intra-op threads for profiling; unset: CPUs available."
    )
    watch_poll_s: float = Field(
        default=1.0,
        gt=0,
        description="Seconds between reads of the jobs that subscriptions follow, for "
        "changes made through another server process (one read for all of them).",
    )
    # WebSocket caps, per token (per client address with auth off) and per server process.
    max_ws_connections_per_token: int = Field(
        default=20,
        ge=1,
        description="WebSocket connections one token may have open at once; one more is "
        "closed with code 4429.",
    )
    max_subscriptions_per_connection: int = Field(
        default=100,
        ge=1,
        description="Subscriptions (operations under way) one WebSocket connection may "
        "have at once; one more is refused with TOO_MANY_REQUESTS.",
    )
    max_subscriptions_per_token: int = Field(
        default=200,
        ge=1,
        description="Subscriptions one token may have at once over all its WebSocket "
        "connections; one more is refused with TOO_MANY_REQUESTS.",
    )
    # Events and webhooks (``outbox.py``, ``webhooks.py``).
    webhook_hosts: str = Field(
        default="",
        description="Hosts webhooks may be sent to, comma-separated (example.com, "
        "ci.internal); empty: any host of an http(s) URL, loopback included.",
    )
    webhook_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="Seconds a webhook's receiver has to answer a delivery (connecting "
        "included) before the attempt counts as failed.",
    )
    webhook_max_attempts: int = Field(
        default=10,
        ge=1,
        le=100,
        description="Attempts at one webhook delivery before it is marked FAILED.",
    )
    webhook_backoff_s: float = Field(
        default=1.0,
        gt=0,
        description="Seconds before a failed delivery's second attempt, doubled for "
        "each attempt after (1, 2, 4, … s), up to webhook_max_backoff_s.",
    )
    webhook_max_backoff_s: float = Field(
        default=600.0, gt=0, description="Longest wait between two attempts of a delivery."
    )
    events_poll_s: float = Field(
        default=1.0,
        gt=0,
        description="Seconds between a server process's looks for events to publish and "
        "deliveries due that another process wrote (its own it handles at once).",
    )
    events_kept_days: float = Field(
        default=7.0,
        gt=0,
        description="Days the events log and the webhooks' delivery logs are kept.",
    )

    @property
    def weights_dir(self) -> Path:
        return self.data_dir / "weights"

    @property
    def staging_dir(self) -> Path:
        return self.data_dir / "staging"

    @property
    def embedded_db_dir(self) -> Path:
        return self.data_dir / "db"

    def database_client_options(self) -> dict[str, Any]:
        """Options for every client of the hub's database: durable acknowledgements.

        With ``w: majority, j: true`` (the default) a mutation answers only once its writes
        are journaled on disk, so they survive a crash of every process on the machine;
        the embedded database syncs its journal per write for ``j: true``.
        """
        w: int | str = int(self.write_concern) if self.write_concern.isdigit() else "majority"
        return {"tz_aware": True, "w": w, "journal": self.write_journal}

    def listens_on_loopback(self) -> bool:
        return self.host in LOOPBACK_HOSTS or self.host.startswith("127.")

    def auth_enabled(self) -> bool:
        if self.auth == "auto":
            return not self.listens_on_loopback()
        return self.auth == "on"

    def webhook_host_list(self) -> frozenset[str]:
        hosts = (host.strip().lower() for host in self.webhook_hosts.split(","))
        return frozenset(host for host in hosts if host)

    def uses_gridfs(self) -> bool:
        if self.weight_store == "auto":
            return self.mongodb_url is not None
        return self.weight_store == "gridfs"


def env_file_text() -> str:
    """A commented ``.env`` listing every setting with its default (``modelci init-env``)."""
    lines = ["# ModelCI Hub settings. Uncomment and edit; the environment overrides this file."]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        lines.append("")
        lines.append(f"# {field.description}")
        lines.append(f"# MODELCI_{name.upper()}={'' if default is None else default}")
    return "\n".join(lines) + "\n"
