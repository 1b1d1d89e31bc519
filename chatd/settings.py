"""One frozen Settings object: defaults < config file (TOML) < ``CHATD_SECTION__KEY`` env < flags.

Any key can also be read from a file: ``KEY_file`` in the config file or
``CHATD_SECTION__KEY_FILE`` in the environment names a file whose content (without its trailing
newline) is the value, as Docker and systemd hand secrets over (``/run/secrets/...``,
``$CREDENTIALS_DIRECTORY/...``). Passwords have their own keys (``store.password``,
``broker.password``), put into the URL only when connecting, so none needs to be in argv.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from chatd.core.ledger import parse_limits
from chatd.core.push import DEFAULT_PUSH_SERVICES, loopback_origin
from chatd.errors import ChatdError


class ConfigError(ChatdError):
    """The configuration is invalid; the message says which key and why."""


def _networks(key: str, values: tuple[str, ...]) -> tuple[IPv4Network | IPv6Network, ...]:
    """``values`` as networks (an address alone is a /32 or /128); ``ConfigError`` otherwise."""
    try:
        return tuple(ip_network(v, strict=False) for v in values)
    except ValueError as exc:
        raise ConfigError(f"{key}: {exc}") from None


def networks(values: tuple[str, ...]) -> tuple[IPv4Network | IPv6Network, ...]:
    """The networks of a checked setting (``server.trusted_proxies``, ``limits.exempt_*``)."""
    return _networks("", values)


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8765
    name: str = "chatd.local"
    """The server's identity, bound into every login signature."""
    node_id: str = "node-1"
    """Names this process in every log line, ``/status`` and ``chatd_node_info``."""
    origins: tuple[str, ...] = ()
    """Browser Origins allowed to connect; connections without Origin are always allowed."""
    drain_grace: float = 0.0
    """On SIGTERM: seconds ``/readyz`` answers 503 while the node still accepts and serves,
    before the listener closes, so a load balancer's health checks see it leave (set it above
    the balancer's check interval x failures to mark down; 0: close at once, one node alone).
    A second SIGTERM ends it early."""
    drain_seconds: float = 10.0
    """Then: how long clients get to close (they were sent 1001) before the process exits."""
    trusted_proxies: tuple[str, ...] = ()
    """Addresses or networks (CIDR) of the reverse proxies in front of this node. A connection
    from one of them is counted against the limits per address (``[limits]``) as the client
    its ``X-Forwarded-For`` names: the right-most address that is not itself a trusted proxy.
    From anyone else ``X-Forwarded-For`` is ignored (it can be forged). Behind a proxy, list
    it here: otherwise every client counts as the proxy's one address."""

    operator_host: str = ""
    """Where ``/metrics`` and ``/status`` are served: empty, on the client port (``host:port``,
    next to ``/ws``); else on their own listener, ``operator_host:operator_port`` (e.g. a
    private interface or 127.0.0.1), and the client port answers them 404. ``/healthz`` and
    ``/readyz`` are on both (load balancers check the client port)."""
    operator_port: int = 8766
    operator_token: str = ""
    """When set, ``/metrics`` and ``/status`` answer only requests carrying ``Authorization:
    Bearer <token>`` (401 otherwise), wherever they are served. Also from ``operator_token_file``
    / ``CHATD_SERVER__OPERATOR_TOKEN``; shown as ``***``."""

    def __post_init__(self) -> None:
        _networks("server.trusted_proxies", self.trusted_proxies)


@dataclass(frozen=True, slots=True)
class StoreSettings:
    db: str = "chatd.db"
    synchronous: str = "FULL"
    """SQLite ``synchronous`` in WAL mode: FULL survives power loss, NORMAL only process crashes."""
    password: str = ""
    """The PostgreSQL password when ``db`` carries none: set it as ``CHATD_STORE__PASSWORD``, or
    read it from a file (``password_file`` / ``CHATD_STORE__PASSWORD_FILE``), so it never
    has to be in argv, the URL or the config file. Shown as ``***``."""
    max_batch: int = 1024
    commit_interval: float = 0.004
    """At most one group commit starts per this many seconds (0: no bound): up to this much
    latency for fewer, larger transactions and fsyncs. An idle writer commits at once; under load
    the writes that arrive meanwhile (and while a commit is in flight) form the next batch. On
    PostgreSQL the writer waits it only while writes keep arriving (``postgres.GATHER_WORTH``).
    4 ms, not 2: a commit costs about as much CPU as half a message (its fsync, file locks and
    wake-ups: ~126 µs and ~19 system calls here), so at 2,000 msgs/s half as many commits are
    the largest saving there is, for ~1 ms more median latency (README, "The fast path")."""


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    url: str = ""
    """Empty: in-process fan-out (one node). ``redis://[user:pass@]host:port/db`` or
    ``rediss://...`` (TLS): Redis pub/sub between nodes."""
    password: str = ""
    """The Redis password (``requirepass``, or the ACL user's in ``url``) when ``url`` carries
    none; like ``store.password``, also from ``password_file``. Shown as ``***``."""
    max_pending: int = 100_000
    """Envelopes buffered for Redis (e.g. during an outage); beyond it the oldest are dropped."""
    heartbeat_interval: float = 1.0
    """Seconds between the heartbeats a node publishes to itself through Redis to measure the
    pub/sub lag (``chatd_broker_lag_seconds``, ``/status``)."""


@dataclass(frozen=True, slots=True)
class LimitSettings:
    max_frame_bytes: int = 256 * 1024
    auth_timeout: float = 10.0
    max_auth_failures: int = 3
    frames_per_second: float = 50.0
    frame_burst: float = 100.0
    bot_frames_per_second: float = 500.0
    """A bot account's connections answer many users each: their own, larger budget."""
    bot_frame_burst: float = 1000.0
    account_connections: float = 3.0
    """An account's frames on ALL its connections, on every node, share one budget: this many
    connections' worth (``frames_per_second`` and ``frame_burst`` times this; for a bot, the
    bot's). With ``broker.url`` set the budget is kept in Redis, else in memory. 0: no budget
    per account (each connection keeps its own)."""
    prelogin_per_ip_per_second: float = 10.0
    """``register`` / ``login`` / ``link_device`` frames per client address (an IPv6 client:
    per /64), on every node together; over it they are answered ``RATE_LIMITED`` unread."""
    prelogin_per_ip_burst: float = 100.0
    registrations_per_ip_per_hour: float = 60.0
    """``register`` attempts per client address (IPv6: per /64), on every node together."""
    registration_burst_per_ip: float = 20.0
    link_lookups_per_hour: float = 60.0
    """``preview_link`` / ``join_link`` frames per account, on every node together (SPEC.md
    19.3): a stranger guessing tokens is answered ``RATE_LIMITED`` past it. 0: no limit."""
    link_lookup_burst: float = 30.0
    link_lookups_per_ip_per_hour: float = 600.0
    """The same frames per client address (IPv6: per /64), all accounts together: larger, as
    many people may share one address (a campus behind one NAT joining an event's group)."""
    link_lookup_burst_per_ip: float = 200.0
    searches_per_minute: float = 30.0
    """Directory searches (``search_channels``, SPEC.md 20.2) per account, on every node
    together; 0 turns the limit off."""
    search_burst: float = 20.0
    moments_per_hour: float = 60.0
    """Moments (``post_moment``, SPEC.md 22.4) per account, on every node together; 0 turns
    the limit off."""
    moment_burst: float = 20.0
    exempt_addresses: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    """Client addresses (CIDR) the limits per address do not apply to: by default loopback,
    the operator's own machine (benchmarks, load tests, health checks). A proxy on the same
    machine must be in ``server.trusted_proxies``, so that its clients are counted by their own
    address (a node logs a warning when an untrusted peer sends ``X-Forwarded-For``)."""
    typing_per_second: float = 2.0
    max_outbound_bytes: int = 4 * 1024 * 1024
    """Unsent bytes a connection may hold for ``slow_consumer_grace`` seconds (4x: at once)."""
    slow_consumer_grace: float = 2.0
    max_inflight_sends: int = 256
    ping_interval: float = 20.0
    ping_timeout: float = 20.0

    def __post_init__(self) -> None:
        _networks("limits.exempt_addresses", self.exempt_addresses)
        for key in (
            "account_connections",
            "prelogin_per_ip_per_second",
            "prelogin_per_ip_burst",
            "registrations_per_ip_per_hour",
            "registration_burst_per_ip",
            "link_lookups_per_hour",
            "link_lookup_burst",
            "link_lookups_per_ip_per_hour",
            "link_lookup_burst_per_ip",
            "searches_per_minute",
            "search_burst",
            "moments_per_hour",
            "moment_burst",
        ):
            if getattr(self, key) < 0:
                raise ConfigError(f"limits.{key}: must not be negative")


@dataclass(frozen=True, slots=True)
class PaymentSettings:
    """Limits of the ledger (SPEC.md 15.9). Amounts are ``CURRENCY:AMOUNT`` in major units; the
    currencies of ``max_transfer`` are the ones this server accepts."""

    max_transfer: tuple[str, ...] = (
        "USD:10000",
        "EUR:10000",
        "GBP:10000",
        "CHF:10000",
        "JPY:1500000",
        "CNY:70000",
        "KRW:13000000",
        "INR:800000",
        "BHD:3750",
        "KWD:3000",
    )
    """Largest transfer, red packet total or request, per currency."""
    max_per_day: tuple[str, ...] = (
        "USD:50000",
        "EUR:50000",
        "GBP:50000",
        "CHF:50000",
        "JPY:7500000",
        "CNY:350000",
        "KRW:65000000",
        "INR:4000000",
        "BHD:18750",
        "KWD:15000",
    )
    """Most an account may send per UTC day (transfers and red packets); unlisted: no limit."""
    red_packet_max_shares: int = 200
    red_packet_ttl: float = 86_400.0
    """Seconds a red packet can be claimed; then the rest goes back to its sender."""
    max_intent_ttl: float = 86_400.0
    """How far ahead an intent's ``expires_at`` may be."""
    max_request_ttl: float = 7 * 86_400.0
    sweep_interval: float = 5.0
    """Seconds between refunds of expired red packets (and expiries of requests), and between
    sweeps for due subscription charges."""
    subscription_grace: float = 3 * 86_400.0
    """Seconds a subscription stays past due (retried) before it lapses (SPEC.md 15.13)."""
    subscription_retry: float = 3_600.0
    """Seconds between two charge attempts of a past-due subscription."""
    subscription_min_period: int = 60
    """The shortest subscription period (seconds) a channel's price may have (tests lower it
    to make periods fall due while a real process runs)."""

    def __post_init__(self) -> None:
        for key in ("max_transfer", "max_per_day"):
            try:
                parse_limits(getattr(self, key))
            except ValueError as exc:
                raise ConfigError(f"payments.{key}: {exc}") from None


@dataclass(frozen=True, slots=True)
class MediaSettings:
    """Encrypted attachments (SPEC.md 17). Sizes are of the padded ciphertext the client uploads."""

    backend: str = "auto"
    """``fs`` (files under ``path``), ``postgres`` (the store's database: every node serves every
    blob), or ``auto``: ``postgres`` when the store is PostgreSQL, else ``fs``."""
    path: str = ""
    """The ``fs`` directory; empty: beside the database (``chatd-media/`` beside ``chatd.db``)."""
    max_file_bytes: int = 100 * 1024 * 1024
    max_bytes_per_day: int = 1024 * 1024 * 1024
    """Bytes an account may reserve for uploads in any 24 hours."""
    max_stored_bytes: int = 5 * 1024 * 1024 * 1024
    """Bytes an account's blobs may hold at once."""
    token_ttl: float = 300.0
    grace: float = 86_400.0
    """Seconds a blob no stored message references is kept (from its upload_token)."""
    sweep_interval: float = 300.0

    def __post_init__(self) -> None:
        if self.backend not in ("auto", "fs", "postgres"):
            raise ConfigError(f"media.backend: fs, postgres or auto, not {self.backend!r}")


@dataclass(frozen=True, slots=True)
class ConsentSettings:
    """Consent (SPEC.md 18): the privacy settings of accounts that never chose their own, and
    what a stranger may take of an account's keys and to-device queues."""

    add_me: str = "contacts"
    """Who may put an account into a conversation directly: everyone, contacts or nobody."""
    presence: str = "contacts"
    last_seen: str = "contacts"
    claims_per_minute: int = 120
    """``claim_keys`` per claiming account per minute (every node together: in Redis when there
    are several)."""
    stranger_prekeys_per_hour: int = 10
    """One-time prekeys of one account handed to strangers per hour (every node together); past
    it a stranger's bundle carries the signed prekeys only (the last resort)."""
    to_device_items: int = 1000
    """Items one sender may have queued for one device; ``to_device_bytes`` their bytes."""
    to_device_bytes: int = 8 * 1024 * 1024
    stranger_to_device_items: int = 32
    """The same for a sender who is a stranger to the device's account."""
    stranger_to_device_bytes: int = 1024 * 1024
    stranger_to_device_per_hour: int = 200
    """Items all strangers together may queue for one device per hour (every node together), and
    ``stranger_to_device_bytes_per_hour`` their bytes: many throwaway accounts cannot fill a
    device's queue (or its disk) either."""
    stranger_to_device_bytes_per_hour: int = 8 * 1024 * 1024

    def __post_init__(self) -> None:
        for key in ("add_me", "presence", "last_seen"):
            if getattr(self, key) not in ("everyone", "contacts", "nobody"):
                raise ConfigError(f"consent.{key}: everyone, contacts or nobody")


@dataclass(frozen=True, slots=True)
class PushSettings:
    """Web Push to devices that are offline (SPEC.md 21). Off until a VAPID key is set."""

    vapid_private_key: str = ""
    """The server's VAPID key (RFC 8292): a P-256 private key, PEM. Usually from a file,
    ``vapid_private_key_file`` (``chatd vapid-keygen FILE`` makes one); every node of a
    cluster uses the same key. Empty: push is off. Shown as ``***``."""
    subject: str = ""
    """The VAPID ``sub`` claim: how a push service reaches the operator (``mailto:`` or
    ``https:`` URL); required with a key."""
    allowed_hosts: tuple[str, ...] = DEFAULT_PUSH_SERVICES
    """Push services the server sends to: host names, ``*.suffix`` for every name under one,
    or ``*`` for any public host (still https, port 443, a name, public addresses only)."""
    insecure_endpoints: tuple[str, ...] = ()
    """FOR TESTS ONLY: ``http://<loopback address>:<port>`` origins also allowed (a test push
    service); anything else here is refused at start."""
    coalesce: float = 2.0
    """Seconds a push waits before it leaves, so a burst of messages gives one push."""
    interval: float = 60.0
    """At most one push per device per this many seconds, on all nodes together (a new
    connection of the device ends its window)."""
    max_per_hour: int = 30
    """At most this many pushes per device per clock hour, whoever writes to it."""
    ttl: int = 86_400
    """How long a push service keeps a push for a device it cannot reach (the TTL header)."""
    queue: int = 10_000
    """Committed messages waiting to be turned into pushes; past it they are dropped (counted:
    ``chatd_pushes_total{outcome="dropped"}``): pushing never slows the message path."""
    concurrency: int = 16
    """Pushes in flight at once."""
    retries: int = 4
    """Sends again after a 5xx, 429 or network error, with backoff (``Retry-After`` honoured)."""
    max_retry_after: float = 300.0
    """A ``Retry-After`` beyond this many seconds gives the push up."""
    timeout: float = 10.0
    """Seconds for one request to a push service."""

    def __post_init__(self) -> None:
        for origin in self.insecure_endpoints:
            try:
                loopback_origin(origin)
            except ValueError as exc:
                raise ConfigError(f"push.insecure_endpoints: {exc}") from None
        if self.vapid_private_key and not self.subject.startswith(("mailto:", "https://")):
            raise ConfigError("push.subject: a mailto: or https:// URL is required with a key")
        for key in ("coalesce", "interval", "max_retry_after", "timeout"):
            if getattr(self, key) < 0:
                raise ConfigError(f"push.{key}: must not be negative")
        for key in ("max_per_hour", "ttl", "queue", "concurrency", "retries"):
            if getattr(self, key) < (0 if key in ("retries", "ttl") else 1):
                raise ConfigError(f"push.{key}: too small")


@dataclass(frozen=True, slots=True)
class LogSettings:
    level: str = "INFO"
    format: str = "auto"
    """``json``, ``text``, or ``auto`` (json when stderr is not a terminal)."""


@dataclass(frozen=True, slots=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    broker: BrokerSettings = field(default_factory=BrokerSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    payments: PaymentSettings = field(default_factory=PaymentSettings)
    media: MediaSettings = field(default_factory=MediaSettings)
    consent: ConsentSettings = field(default_factory=ConsentSettings)
    push: PushSettings = field(default_factory=PushSettings)
    log: LogSettings = field(default_factory=LogSettings)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


SECRET_KEYS = frozenset({"password", "secret", "token", "private_key"})


def _coerce(section: str, key: str, current: Any, value: Any) -> Any:
    target = type(current)
    try:
        if target is tuple:
            if isinstance(value, str):
                return tuple(v.strip() for v in value.split(",") if v.strip())
            return tuple(str(v) for v in value)
        if target is bool:
            if isinstance(value, str):
                return value.lower() in ("1", "true", "yes", "on")
            return bool(value)
        if target is float and isinstance(value, int | float | str) and not isinstance(value, bool):
            return float(value)
        if target is int and isinstance(value, int | str) and not isinstance(value, bool):
            return int(value)
        if target is str and isinstance(value, str):
            return value
    except (ValueError, TypeError):
        pass
    raise ConfigError(f"{section}.{key}: expected {target.__name__}, got {value!r}")


def _apply(settings: Settings, overrides: Mapping[str, Mapping[str, Any]], source: str) -> Settings:
    for section_name, values in overrides.items():
        if section_name not in {f.name for f in fields(Settings)}:
            raise ConfigError(f"{source}: unknown section [{section_name}]")
        if not isinstance(values, Mapping):
            raise ConfigError(f"{source}: [{section_name}] must be a table of keys")
        section = getattr(settings, section_name)
        known = {f.name for f in fields(section)}
        changes = {}
        for key, value in values.items():
            if key not in known and key.endswith("_file") and key[: -len("_file")] in known:
                key, value = key[: -len("_file")], _read_secret(section_name, key, value)
                if key in values:
                    raise ConfigError(f"{source}: {section_name}.{key} given twice (and _file)")
            if key not in known:
                raise ConfigError(f"{source}: unknown key {section_name}.{key}")
            changes[key] = _coerce(section_name, key, getattr(section, key), value)
        settings = replace(settings, **{section_name: replace(section, **changes)})
    return settings


def _read_secret(section: str, key: str, path: object) -> str:
    """The content of the file a ``*_file`` key names, its trailing newline removed."""
    if not isinstance(path, str) or not path:
        raise ConfigError(f"{section}.{key}: expected a file path, got {path!r}")
    try:
        return Path(path).read_text().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{section}.{key}: cannot read {path}: {exc}") from None


def with_password(url: str, password: str, key: str = "url") -> str:
    """``url`` with ``password`` put into its user info (percent-encoded), for connecting; ``url``
    itself when ``password`` is empty. A URL that already carries another password is an error
    (two sources for one secret)."""
    if not password:
        return url
    parts = urlsplit(url)
    if not parts.scheme:
        raise ConfigError(f"{key}: a password needs a URL, not {redact_url(url)!r}")
    userinfo, _, host = parts.netloc.rpartition("@")
    user, colon, existing = userinfo.partition(":")
    if colon:
        if unquote(existing) == password:
            return url
        raise ConfigError(f"{key}: the URL carries a password and a password is also set")
    return urlunsplit(parts._replace(netloc=f"{user}:{quote(password, safe='')}@{host}"))


def env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for name, value in environ.items():
        if name.startswith("CHATD_") and "__" in name:
            section, key = name[len("CHATD_") :].lower().split("__", 1)
            out.setdefault(section, {})[key] = value
    return out


def load_settings(
    config: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, Mapping[str, Any]] | None = None,
) -> Settings:
    """Build the effective settings. Unknown sections or keys are errors, not silently ignored."""
    settings = Settings()
    if config is not None:
        try:
            data = tomllib.loads(Path(config).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{config}: {exc}") from None
        settings = _apply(settings, data, str(config))
    settings = _apply(settings, env_overrides(os.environ if environ is None else environ), "env")
    if flags:
        settings = _apply(settings, flags, "flags")
    return _with_passwords(settings)


def _with_passwords(settings: Settings) -> Settings:
    """Put ``store.password`` and ``broker.password`` into their URLs (once every source has
    been applied: the password may come from the environment and the URL from a flag)."""
    store, broker = settings.store, settings.broker
    if store.password and not store.db.startswith(("postgresql://", "postgres://")):
        raise ConfigError("store.password: only for a postgresql:// db")
    if broker.password and not broker.url:
        raise ConfigError("broker.password: set broker.url too")
    return replace(
        settings,
        store=replace(store, db=with_password(store.db, store.password, "store.db")),
        broker=replace(broker, url=with_password(broker.url, broker.password, "broker.url")),
    )


_USER_FIRST = frozenset({"postgresql", "postgres"})
"""Schemes whose bare user info (``postgresql://chatd@host/db``) is a user name, never a secret."""


def redact_url(url: str) -> str:
    """``url`` with the password of its user info replaced by ``***`` (the rest kept)."""
    try:
        parts = urlsplit(url)
        if not parts.scheme or "@" not in parts.netloc:
            return url
        userinfo, host = parts.netloc.rsplit("@", 1)
    except ValueError:
        return "***"
    if ":" in userinfo:
        userinfo = userinfo.split(":", 1)[0] + ":***"
    elif userinfo and parts.scheme not in _USER_FIRST:
        userinfo = "***"  # a bare user info may be a password alone (redis://secret@host)
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))


def redacted(settings: Settings) -> dict[str, Any]:
    """The settings as a dict with secret values (and secrets inside URLs) hidden."""
    out = settings.as_dict()
    for section in out.values():
        for key in list(section):
            if any(s in key for s in SECRET_KEYS):
                section[key] = "***" if section[key] else ""
            elif isinstance(section[key], str) and "://" in section[key]:
                section[key] = redact_url(section[key])
    return out
