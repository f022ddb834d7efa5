"""The schema's history: one list of versions, applied in order to either engine.

Each entry upgrades the schema by one version; an existing database runs the ones it lacks. The scripts are
written in the SQLite dialect using only what PostgreSQL also reads once `for_postgres` has mapped the column
types (64-bit integers, double-precision times, identity keys), so one history serves both engines.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from bridge.store.events import link_events_to_sms

if TYPE_CHECKING:
    from bridge.store.base import Tx

# Each entry upgrades the schema by one version; an existing database runs the ones it lacks.
MIGRATIONS: tuple[str, ...] = (
    # 1: what the poller and the webhook outbox need.
    """
    CREATE TABLE messages (
        id          INTEGER PRIMARY KEY,          -- upstream sms id
        direction   TEXT NOT NULL CHECK (direction IN ('in', 'out')),
        number      TEXT NOT NULL,                -- the API's sendto: sender when 'in', recipient when 'out'
        body        TEXT NOT NULL,
        device_id   INTEGER,
        sim         INTEGER,
        status      INTEGER NOT NULL,
        customer_id INTEGER,
        created     TEXT NOT NULL,                -- ISO 8601 with the upstream's offset
        created_ts  REAL NOT NULL,
        updated_ts  REAL NOT NULL,
        stuck_reported INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX messages_created ON messages (created_ts);
    CREATE INDEX messages_open ON messages (created_ts)
        WHERE direction = 'out' AND status IN (0, 1, 2, 3, 6);

    CREATE TABLE events (
        id          TEXT PRIMARY KEY,
        dedupe_key  TEXT NOT NULL UNIQUE,
        type        TEXT NOT NULL,
        payload     TEXT NOT NULL,                -- the event JSON without `rule`
        created_ts  REAL NOT NULL
    );

    CREATE TABLE outbox (
        id              INTEGER PRIMARY KEY,
        event_id        TEXT NOT NULL REFERENCES events (id),
        kind            TEXT NOT NULL,            -- 'webhook' | 'tag'
        target          TEXT NOT NULL,            -- webhook name, or tag id
        rule            TEXT,
        spec            TEXT NOT NULL DEFAULT '{}', -- JSON: template, match groups, tag name, phone
        state           TEXT NOT NULL DEFAULT 'pending', -- pending | delivered | dead
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_ts REAL NOT NULL,
        last_error      TEXT,
        last_status     INTEGER,
        created_ts      REAL NOT NULL,
        updated_ts      REAL NOT NULL
    );
    CREATE INDEX outbox_due ON outbox (next_attempt_ts) WHERE state = 'pending';
    CREATE INDEX outbox_state ON outbox (state, id);

    CREATE TABLE cursors (
        name  TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );

    CREATE TABLE devices (
        id           INTEGER PRIMARY KEY,
        title        TEXT NOT NULL,
        online       INTEGER NOT NULL,
        last_seen_ts REAL,
        numbers      TEXT NOT NULL DEFAULT '[]',  -- JSON list of the SIM numbers
        updated_ts   REAL NOT NULL
    );
    """,
    # 2: the send queue, idempotency keys, safety state and disabled webhook targets.
    """
    CREATE TABLE sends (
        id          TEXT PRIMARY KEY,             -- msg_…
        source      TEXT NOT NULL,                -- api | hook:NAME | rule:NAME
        body        TEXT NOT NULL,
        device_id   INTEGER,
        sim         INTEGER,
        send_at     TEXT,                         -- timetosend, ISO 8601
        urgent      INTEGER NOT NULL DEFAULT 0,
        customer_id INTEGER,
        event_id    TEXT,
        is_reply    INTEGER NOT NULL DEFAULT 0,
        created_ts  REAL NOT NULL
    );

    CREATE TABLE recipients (
        id              INTEGER PRIMARY KEY,
        send_id         TEXT NOT NULL REFERENCES sends (id),
        position        INTEGER NOT NULL,
        number          TEXT NOT NULL,
        state           TEXT NOT NULL,            -- queued | submitting | submitted | in_doubt | failed | refused
        sms_id          INTEGER,
        reason          TEXT,                     -- why failed or refused
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_ts REAL NOT NULL,
        submitted_ts    REAL,
        updated_ts      REAL NOT NULL
    );
    CREATE INDEX recipients_due ON recipients (next_attempt_ts)
        WHERE state IN ('queued', 'submitting', 'in_doubt');
    CREATE INDEX recipients_send ON recipients (send_id, position);
    CREATE INDEX recipients_sms ON recipients (sms_id) WHERE sms_id IS NOT NULL;

    CREATE TABLE idempotency (
        scope        TEXT NOT NULL,               -- a hash of the API key
        key          TEXT NOT NULL,
        request_hash TEXT NOT NULL,
        state        TEXT NOT NULL,               -- running | done
        status       INTEGER,
        response     TEXT,
        created_ts   REAL NOT NULL,
        PRIMARY KEY (scope, key)
    );
    CREATE INDEX idempotency_age ON idempotency (created_ts);

    CREATE TABLE opt_outs (
        number     TEXT PRIMARY KEY,
        source     TEXT NOT NULL,
        created_ts REAL NOT NULL
    );

    CREATE TABLE sent_log (                       -- recent texts per number, for the loop guard
        number    TEXT NOT NULL,
        body_hash TEXT NOT NULL,
        ts        REAL NOT NULL
    );
    CREATE INDEX sent_log_lookup ON sent_log (number, body_hash, ts);

    CREATE TABLE cooldowns (
        rule   TEXT NOT NULL,
        number TEXT NOT NULL,
        ts     REAL NOT NULL,
        PRIMARY KEY (rule, number)
    );

    CREATE TABLE disabled_targets (
        name        TEXT PRIMARY KEY,
        reason      TEXT NOT NULL,
        disabled_ts REAL NOT NULL
    );
    """,
    # 3: when a scheduled outgoing message is due (its timetosend): it is not "stuck" before, and is followed after.
    """
    ALTER TABLE messages ADD COLUMN due_ts REAL;
    CREATE INDEX messages_open_due ON messages (due_ts)
        WHERE due_ts IS NOT NULL AND direction = 'out' AND status IN (0, 1, 2, 3, 6);
    """,
    # 4: the earliest time an in-doubt recipient the upstream does not list may be sent again.
    """
    ALTER TABLE recipients ADD COLUMN resend_ts REAL;
    """,
    # 5: the customerid a recipient carries upstream when its send has none: random, so that no other
    # database (another bridge on the same account) hands out the same one; rows already sent keep their id.
    """
    ALTER TABLE recipients ADD COLUMN correlation_id INTEGER;
    UPDATE recipients SET correlation_id = id;
    """,
    # 6: what the dashboard shows: each event's SMS, what the rules did with it, every delivery attempt, and
    # the indexes its lists and searches walk (newest first). Events recorded before keep sms_id NULL.
    """
    ALTER TABLE events ADD COLUMN sms_id INTEGER;
    CREATE INDEX events_sms ON events (sms_id, created_ts) WHERE sms_id IS NOT NULL;
    CREATE INDEX events_created ON events (created_ts);

    CREATE TABLE event_actions (
        event_id    TEXT NOT NULL REFERENCES events (id),
        position    INTEGER NOT NULL,
        rule        TEXT,                         -- NULL: the safety keywords, which act without a rule
        action      TEXT NOT NULL,                -- reply | send | webhook | tag | opt_out | opt_in | failed
        target      TEXT,                         -- the number, webhook name or tag id
        outcome     TEXT NOT NULL,                -- queued | refused | done | failed
        reason      TEXT,                         -- the safety refusal, or why it could not be planned
        PRIMARY KEY (event_id, position)
    );

    CREATE TABLE delivery_attempts (
        id          INTEGER PRIMARY KEY,
        outbox_id   INTEGER NOT NULL REFERENCES outbox (id),
        ts          REAL NOT NULL,
        outcome     TEXT NOT NULL,                -- delivered | retry | dead | disabled
        status      INTEGER,                      -- the HTTP status code, when there was an answer
        latency_ms  REAL,
        error       TEXT,
        response    TEXT                          -- the first characters of the answer's body
    );
    CREATE INDEX delivery_attempts_outbox ON delivery_attempts (outbox_id, id);
    CREATE INDEX delivery_attempts_ts ON delivery_attempts (ts);

    CREATE INDEX messages_number ON messages (number, created_ts);
    CREATE INDEX messages_device ON messages (device_id, created_ts);
    CREATE INDEX messages_status ON messages (status, created_ts);
    CREATE INDEX outbox_target ON outbox (target, id);
    CREATE INDEX outbox_event ON outbox (event_id);
    CREATE INDEX sends_created ON sends (created_ts);
    CREATE INDEX sends_event ON sends (event_id) WHERE event_id IS NOT NULL;
    """,
    # 7: numbers compared as numbers. Rows only: opt-outs, cooldowns and the loop guard's log are re-keyed
    # by `bridge.numbers.number_readings`, which SQL cannot compute (see RENUMBERED_AT).
    "",
    # 8: the recipients handed upstream whose sms id is not known yet, which every poll's listing may teach.
    """
    CREATE INDEX IF NOT EXISTS recipients_unlearned ON recipients (submitted_ts)
        WHERE state = 'submitted' AND sms_id IS NULL;
    """,
    # 9: events recorded before version 6 learn their SMS from their payload, so an SMS stored earlier shows
    # its events (see EVENTS_LINKED_AT).
    "",
    # 10: a text index over message bodies, kept by the engine itself (see TEXT_INDEXED_AT).
    "",
    # 11: the device pool. A recipient's member (device_id, sim: NULL until the pool places it, and for sends
    # with their own device), the member a failover avoids, the earlier attempts, the counts limits are read
    # from (per member and local day; distinct numbers per member and month) and where sticky numbers go.
    """
    ALTER TABLE recipients ADD COLUMN device_id INTEGER;
    ALTER TABLE recipients ADD COLUMN sim INTEGER;
    ALTER TABLE recipients ADD COLUMN failovers INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE recipients ADD COLUMN avoid_device INTEGER;
    ALTER TABLE recipients ADD COLUMN avoid_sim INTEGER;

    CREATE TABLE recipient_attempts (
        id           INTEGER PRIMARY KEY,
        recipient_id INTEGER NOT NULL REFERENCES recipients (id),
        sms_id       INTEGER NOT NULL,
        device_id    INTEGER NOT NULL,
        sim          INTEGER NOT NULL,
        ts           REAL NOT NULL
    );
    CREATE INDEX recipient_attempts_recipient ON recipient_attempts (recipient_id, id);
    CREATE INDEX recipient_attempts_sms ON recipient_attempts (sms_id);

    CREATE TABLE pool_daily (
        device_id INTEGER NOT NULL,
        sim       INTEGER NOT NULL,
        day       TEXT NOT NULL,                  -- the account zone's date, 2026-11-24
        sent      INTEGER NOT NULL,               -- SMS handed upstream on that day
        PRIMARY KEY (device_id, sim, day)
    );

    CREATE TABLE pool_monthly (
        device_id INTEGER NOT NULL,
        sim       INTEGER NOT NULL,
        month     TEXT NOT NULL,                  -- the account zone's month, 2026-11
        number    TEXT NOT NULL,                  -- E.164 where the number is valid
        PRIMARY KEY (device_id, sim, month, number)
    );
    CREATE INDEX pool_monthly_number ON pool_monthly (month, number);

    CREATE TABLE pool_assignments (
        number     TEXT PRIMARY KEY,
        device_id  INTEGER NOT NULL,
        sim        INTEGER NOT NULL,
        updated_ts REAL NOT NULL
    );
    """,
    # 12: several replicas on one database: the poller's lease (and each replica's liveness, as a lease named
    # replica:NAME), and which replica claimed a recipient being submitted, an outbox row being delivered or an
    # Idempotency-Key whose request is running.
    """
    CREATE TABLE leases (
        name       TEXT PRIMARY KEY,             -- poller | replica:NAME
        holder     TEXT NOT NULL,
        token      INTEGER NOT NULL,             -- the fencing token: grows each time the lease changes hands
        expires_ts REAL NOT NULL                 -- on the database's clock
    );
    ALTER TABLE recipients ADD COLUMN claimed_by TEXT;
    ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
    ALTER TABLE idempotency ADD COLUMN claimed_by TEXT;  -- the replica running a request under the key
    """,
    # 13: what names a phone whatever id it has (IMEI, serial number) and its own pacing (delaybetweeneachsms,
    # seconds between two SMS): NULL until the next device check reports them.
    """
    ALTER TABLE devices ADD COLUMN imei TEXT;
    ALTER TABLE devices ADD COLUMN serial TEXT;
    ALTER TABLE devices ADD COLUMN sms_delay REAL;
    """,
    # 14: the id a phone is listed under since its app signed in again and the upstream gave it a new one (NULL:
    # its own), so that the pool follows a member to it (`bridge.device_identity`).
    """
    ALTER TABLE devices ADD COLUMN moved_to INTEGER;
    """,
    # 15: the recipients still to learn by the customerid a listing shows, so that each poll looks up only the
    # ones it lists, however many are in flight: the bridge's own (per recipient), and the caller's (per send).
    """
    CREATE INDEX recipients_unlearned_correlation ON recipients (correlation_id)
        WHERE state = 'submitted' AND sms_id IS NULL;
    CREATE INDEX sends_customer ON sends (customer_id) WHERE customer_id IS NOT NULL;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
# The version that adds the device pool's columns and tables.
POOLED_AT = 11
# The version that keeps a device's IMEI, serial number and own delay between SMS.
DEVICES_NAMED_AT = 13
# The version that keeps where a phone went when its app signed in again under a new id.
DEVICES_FOLLOWED_AT = 14
# The version that indexes the recipients still to learn by their customerid.
UNLEARNED_BY_CUSTOMERID_AT = 15
# The version whose upgrade also has the backend re-key stored numbers (`SafetyOps.renumber`), right after its
# statements; a schema created afresh has no rows to re-key.
RENUMBERED_AT = 7
# The version whose upgrade has the backend give events recorded before version 6 their SMS
# (`bridge.store.events.link_events_to_sms`): the payload is JSON, which the engines read each in their own way.
EVENTS_LINKED_AT = 9
# The version whose upgrade has the backend build its text index over `messages.body` and fill it from the rows
# stored (`MessageOps.index_text`): SQLite's FTS5 trigram table and its triggers, PostgreSQL's pg_trgm.
TEXT_INDEXED_AT = 10
# The version that added the replicas' leases and claims (its statements only).
REPLICAS_AT = 12


async def upgrade_rows(tx: Tx, version: int, region: str | None) -> None:
    """What the upgrade to `version` does besides its statements, through the backend's own SQL; `region` reads
    numbers stored without a country code."""
    if version == RENUMBERED_AT:
        await tx.renumber(region)
    elif version == EVENTS_LINKED_AT:
        await link_events_to_sms(tx)
    elif version == TEXT_INDEXED_AT:
        await tx.index_text()


def statements(script: str) -> list[str]:
    """Split a migration script into statements (no semicolons inside our DDL strings)."""
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


_POSTGRES_TYPES = (
    # SQLite's INTEGER PRIMARY KEY is the rowid: assigned when not given, as an identity column is.
    (re.compile(r"\bINTEGER PRIMARY KEY\b"), "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
    (re.compile(r"\bINTEGER\b"), "BIGINT"),
    (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
)


def for_postgres(statement: str) -> str:
    """A migration statement with its SQLite column types spelled as PostgreSQL's of the same range."""
    for pattern, replacement in _POSTGRES_TYPES:
        statement = pattern.sub(replacement, statement)
    return statement
