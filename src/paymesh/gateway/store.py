"""The gateway's state in its database: tenants, API clients, signing keys,
idempotency records, the append-only audit log (tables in tables.py).

SQLAlchemy Core on :class:`paymesh.platform.db.Database`; the same SQL runs
on SQLite and PostgreSQL. Claiming an Idempotency-Key is one INSERT: the
primary key (tenant_id, key) makes a second claimant fail.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from paymesh.gateway.console.users import ConsoleSession, ConsoleUser
from paymesh.gateway.domain import ApiClient, AuditEntry, IdempotencyRecord, SigningKey, Tenant
from paymesh.gateway.tables import (
    Row,
    api_clients,
    audit_log,
    audit_row,
    client_row,
    console_role_policies,
    console_sessions,
    console_users,
    idempotency_keys,
    signing_keys,
    tenants,
    to_audit,
    to_client,
    to_console_session,
    to_console_user,
    to_key,
    to_record,
    to_tenant,
)
from paymesh.platform import statements
from paymesh.platform.db import Database

__all__ = ["SqlGatewayStore"]

_T = TypeVar("_T")


def _held(record: IdempotencyRecord) -> sa.ColumnElement[bool]:
    """The row of `record`'s key, while `record`'s owner still holds it."""
    i = idempotency_keys.c
    return sa.and_(i.tenant_id == record.tenant_id, i.key == record.key, i.owner == record.owner)


class SqlGatewayStore:
    """Persistence of the gateway's state."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def _one(self, query: sa.Select[Any], to: Callable[[Row], _T]) -> _T | None:
        """The one row `query` selects, as `to` makes it (None: no row)."""
        async with self.db.read() as conn:
            row = (await conn.execute(query)).first()
        return to(row) if row else None

    async def _insert(self, table: sa.Table, values: dict[str, Any]) -> bool:
        """Insert one row; False when a unique key refuses it."""
        try:
            async with self.db.transaction() as conn:
                await conn.execute(statements.insert(table), values)
        except IntegrityError:
            return False
        return True

    # --- tenants and clients --------------------------------------------

    async def add_tenant(self, tenant: Tenant) -> bool:
        """Insert `tenant`; False when a tenant of that name exists."""
        return await self._insert(tenants, asdict(tenant))

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        """The tenant with this id."""
        return await self._one(tenants.select().where(tenants.c.id == tenant_id), to_tenant)

    async def tenant_by_name(self, name: str) -> Tenant | None:
        """The tenant with this name."""
        return await self._one(tenants.select().where(tenants.c.name == name), to_tenant)

    async def list_tenants(self) -> list[Tenant]:
        """Every tenant, by name."""
        async with self.db.read() as conn:
            rows = (await conn.execute(tenants.select().order_by(tenants.c.name))).all()
        return [to_tenant(r) for r in rows]

    async def add_client(self, client: ApiClient) -> None:
        """Insert an API client."""
        async with self.db.transaction() as conn:
            await conn.execute(api_clients.insert().values(**client_row(client)))

    async def list_clients(self, tenant_id: str) -> list[ApiClient]:
        """A tenant's API clients (revoked ones too), oldest first."""
        c = api_clients.c
        query = api_clients.select().where(c.tenant_id == tenant_id)
        async with self.db.read() as conn:
            rows = (await conn.execute(query.order_by(c.created_at_us, c.client_id))).all()
        return [to_client(r) for r in rows]

    async def get_client(self, client_id: str) -> ApiClient | None:
        """The API client with this id (revoked ones too)."""
        query = api_clients.select().where(api_clients.c.client_id == client_id)
        return await self._one(query, to_client)

    async def revoke_client(self, tenant_id: str, client_id: str, now_us: int) -> bool:
        """Revoke a tenant's client (idempotent); False when it has no such client."""
        c = api_clients.c
        async with self.db.transaction() as conn:
            found = (
                await conn.execute(
                    sa.select(c.revoked_at_us).where(
                        c.client_id == client_id, c.tenant_id == tenant_id
                    )
                )
            ).first()
            if found is None:
                return False
            if found.revoked_at_us is None:
                await conn.execute(
                    api_clients.update()
                    .where(c.client_id == client_id)
                    .values(revoked_at_us=now_us)
                )
        return True

    # --- signing keys ---------------------------------------------------

    async def add_signing_key(self, key: SigningKey) -> None:
        """Insert a signing key."""
        async with self.db.transaction() as conn:
            await conn.execute(signing_keys.insert().values(**asdict(key)))

    async def signing_keys(self) -> list[SigningKey]:
        """Every signing key, newest first."""
        k = signing_keys.c
        async with self.db.read() as conn:
            rows = (
                await conn.execute(signing_keys.select().order_by(k.created_at_us.desc(), k.kid))
            ).all()
        return [to_key(r) for r in rows]

    async def rotate_signing_key(self, key: SigningKey) -> list[str]:
        """Retire the active key(s) at `key.created_at_us` and make `key` the active one;
        return the kids retired (one transaction)."""
        k = signing_keys.c
        async with self.db.transaction() as conn:
            active = (
                await conn.execute(sa.select(k.kid).where(k.retired_at_us.is_(None)))
            ).scalars()
            retired = sorted(str(kid) for kid in active)
            await conn.execute(
                signing_keys.update()
                .where(k.retired_at_us.is_(None))
                .values(retired_at_us=key.created_at_us)
            )
            await conn.execute(signing_keys.insert().values({**asdict(key), "retired_at_us": None}))
        return retired

    async def signing_key(self, kid: str) -> SigningKey | None:
        """The signing key with this kid."""
        return await self._one(signing_keys.select().where(signing_keys.c.kid == kid), to_key)

    # --- audit log ------------------------------------------------------

    async def append_audit(self, entry: AuditEntry) -> None:
        """Append an audit entry (entries are never changed or deleted)."""
        async with self.db.transaction() as conn:
            await conn.execute(audit_log.insert().values(**audit_row(entry)))

    async def recent_audit(self, limit: int = 20) -> list[AuditEntry]:
        """The newest `limit` audit entries, newest first."""
        a = audit_log.c
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    audit_log.select().order_by(a.at_us.desc(), a.id.desc()).limit(limit)
                )
            ).all()
        return [to_audit(r) for r in rows]

    async def audit_page(
        self,
        *,
        limit: int,
        before: tuple[int, str] | None = None,
        actor: str | None = None,
        action: str | None = None,
        tenant_id: str | None = None,
        since_us: int | None = None,
        until_us: int | None = None,
    ) -> list[AuditEntry]:
        """Up to `limit` audit entries, newest first, older than `before` (at_us, id), of
        `actor`, `action` and `tenant_id` when given, at or after `since_us` and before
        `until_us`."""
        a = audit_log.c
        query = audit_log.select()
        if before is not None:
            query = query.where(sa.tuple_(a.at_us, a.id) < sa.tuple_(*before))
        for column, value in ((a.actor, actor), (a.action, action), (a.tenant_id, tenant_id)):
            if value:
                query = query.where(column == value)
        if since_us is not None:
            query = query.where(a.at_us >= since_us)
        if until_us is not None:
            query = query.where(a.at_us < until_us)
        query = query.order_by(a.at_us.desc(), a.id.desc()).limit(limit)
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [to_audit(r) for r in rows]

    # --- console users and sessions -------------------------------------

    async def add_console_user(self, user: ConsoleUser) -> bool:
        """Insert `user`; False when a user with that e-mail address exists."""
        return await self._insert(console_users, {**asdict(user), "role": user.role.value})

    async def console_user(self, user_id: str) -> ConsoleUser | None:
        """The console user with this id."""
        query = console_users.select().where(console_users.c.id == user_id)
        return await self._one(query, to_console_user)

    async def console_user_by_email(self, email: str) -> ConsoleUser | None:
        """The console user with this (normalised) e-mail address."""
        query = console_users.select().where(console_users.c.email == email)
        return await self._one(query, to_console_user)

    async def list_console_users(self) -> list[ConsoleUser]:
        """Every console user, by e-mail address."""
        async with self.db.read() as conn:
            rows = (
                await conn.execute(console_users.select().order_by(console_users.c.email))
            ).all()
        return [to_console_user(r) for r in rows]

    async def update_console_user(
        self,
        user_id: str,
        *,
        expect: dict[str, object] | None = None,
        end_sessions: bool = False,
        **values: object,
    ) -> bool:
        """Set `values` on the user, only while its columns still hold `expect` (one
        statement: a change made meanwhile is never overwritten); `end_sessions`: sign its
        browsers out too. False when the user is gone or no longer as expected."""
        u = console_users.c
        conditions = [u.id == user_id, *(u[k] == v for k, v in (expect or {}).items())]
        async with self.db.transaction() as conn:
            done = await conn.execute(console_users.update().where(*conditions).values(**values))
            if done.rowcount != 1:
                return False
            if end_sessions:
                await conn.execute(
                    console_sessions.delete().where(console_sessions.c.user_id == user_id)
                )
        return True

    async def count_wrong_password(
        self, user_id: str, *, attempts: int, lock_until_us: int
    ) -> bool:
        """Count a wrong password against the user, in one statement (concurrent ones all
        count); the `attempts`-th in a row locks sign-in until `lock_until_us`, and ends the
        user's sessions. Whether this one locked it."""
        u = console_users.c
        locks = u.failed_attempts + 1 >= attempts
        async with self.db.transaction() as conn:
            after = (
                await conn.execute(
                    console_users.update()
                    .where(u.id == user_id)
                    .values(
                        failed_attempts=sa.case((locks, 0), else_=u.failed_attempts + 1),
                        locked_until_us=sa.case((locks, lock_until_us), else_=u.locked_until_us),
                    )
                    .returning(u.failed_attempts, u.locked_until_us)
                )
            ).first()
            locked = (
                after is not None
                and after.failed_attempts == 0
                and after.locked_until_us == lock_until_us
            )
            if locked:
                await conn.execute(
                    console_sessions.delete().where(console_sessions.c.user_id == user_id)
                )
        return bool(locked)

    async def record_sign_in(
        self, user_id: str, password_hash: str, now_us: int
    ) -> ConsoleUser | None:
        """The user after a right password, its count of wrong ones reset: None when,
        since the password was checked, it was disabled, locked or given another password."""
        u = console_users.c
        async with self.db.transaction() as conn:
            done = await conn.execute(
                console_users.update()
                .where(
                    u.id == user_id,
                    u.password_hash == password_hash,
                    u.disabled.is_(False),
                    sa.or_(u.locked_until_us.is_(None), u.locked_until_us <= now_us),
                )
                .values(failed_attempts=0, locked_until_us=None)
            )
            if done.rowcount != 1:
                return None
            row = (await conn.execute(console_users.select().where(u.id == user_id))).first()
        return to_console_user(row) if row else None

    async def accept_totp_step(self, user_id: str, step: int) -> bool:
        """Record `step` as the user's last accepted TOTP time step; False when it is not
        later than the last one (a code replayed, or an older one)."""
        u = console_users.c
        async with self.db.transaction() as conn:
            done = await conn.execute(
                console_users.update()
                .where(
                    u.id == user_id,
                    u.totp_secret.is_not(None),
                    sa.or_(u.totp_last_step.is_(None), u.totp_last_step < step),
                )
                .values(totp_last_step=step)
            )
        return bool(done.rowcount == 1)

    async def totp_required_roles(self) -> frozenset[str]:
        """The roles whose users must sign in with a second factor."""
        p = console_role_policies.c
        async with self.db.read() as conn:
            rows = (await conn.execute(sa.select(p.role).where(p.totp_required))).scalars()
            return frozenset(str(r) for r in rows)

    async def set_totp_required(self, role: str, required: bool) -> None:
        """Whether `role` must sign in with a second factor."""
        p = console_role_policies.c
        async with self.db.transaction() as conn:
            await conn.execute(console_role_policies.delete().where(p.role == role))
            await conn.execute(
                console_role_policies.insert().values(role=role, totp_required=required)
            )

    async def add_console_session(self, session: ConsoleSession) -> None:
        """Insert a session."""
        async with self.db.transaction() as conn:
            await conn.execute(statements.insert(console_sessions), asdict(session))

    async def console_session(self, session_id: str) -> ConsoleSession | None:
        """The session with this id (the SHA-256 of its token)."""
        query = console_sessions.select().where(console_sessions.c.id == session_id)
        return await self._one(query, to_console_session)

    async def update_console_session(self, session_id: str, **values: Any) -> None:
        """Change a session's `last_seen_at_us` or `tenant_id`."""
        async with self.db.transaction() as conn:
            await conn.execute(
                console_sessions.update()
                .where(console_sessions.c.id == session_id)
                .values(**values)
            )

    async def delete_console_session(self, session_id: str) -> None:
        """End a session (idempotent)."""
        async with self.db.transaction() as conn:
            await conn.execute(console_sessions.delete().where(console_sessions.c.id == session_id))

    # --- idempotency ----------------------------------------------------

    async def get_idempotency(self, tenant_id: str, key: str) -> IdempotencyRecord | None:
        """The record stored under (tenant, key)."""
        i = idempotency_keys.c
        query = idempotency_keys.select().where(i.tenant_id == tenant_id, i.key == key)
        return await self._one(query, to_record)

    async def claim_idempotency(self, record: IdempotencyRecord) -> bool:
        """Insert an in-progress record; False when someone already holds the key."""
        claim = {
            "tenant_id": record.tenant_id,
            "key": record.key,
            "fingerprint": record.fingerprint,
            "state": "in_progress",
            "owner": record.owner,
            "created_at_us": record.created_at_us,
            "expires_at_us": record.expires_at_us,
        }
        return await self._insert(idempotency_keys, claim)

    async def take_over_idempotency(
        self, previous: IdempotencyRecord, record: IdempotencyRecord
    ) -> bool:
        """Replace a stale or expired record by a new claim, if nobody changed it meanwhile."""
        return await self._update_held(
            previous,
            fingerprint=record.fingerprint,
            state="in_progress",
            owner=record.owner,
            response_status=None,
            response_headers=None,
            response_body=None,
            created_at_us=record.created_at_us,
            expires_at_us=record.expires_at_us,
        )

    async def complete_idempotency(
        self,
        record: IdempotencyRecord,
        *,
        status: int,
        headers: dict[str, str],
        body: bytes,
    ) -> bool:
        """Store the response of a claimed request; False if the claim was lost."""
        return await self._update_held(
            record,
            state="completed",
            response_status=status,
            response_headers=json.dumps(headers, sort_keys=True),
            response_body=body,
        )

    async def _update_held(self, record: IdempotencyRecord, **values: Any) -> bool:
        """Set `values` on `record`'s row while its owner still holds it; False if the
        claim was lost (nothing changed)."""
        held = statements.update_where(idempotency_keys, "tenant_id", "key", "owner")
        where = {"w_tenant_id": record.tenant_id, "w_key": record.key, "w_owner": record.owner}
        async with self.db.transaction() as conn:
            result = await conn.execute(held, {**values, **where})
        return bool(result.rowcount)

    async def release_idempotency(self, record: IdempotencyRecord) -> None:
        """Delete a claim whose request failed, so the client may retry."""
        async with self.db.transaction() as conn:
            await conn.execute(idempotency_keys.delete().where(_held(record)))

    async def purge_expired_idempotency(self, now_us: int) -> int:
        """Delete expired records; return how many."""
        async with self.db.transaction(long=True) as conn:  # may delete many rows
            result = await conn.execute(
                idempotency_keys.delete().where(idempotency_keys.c.expires_at_us <= now_us)
            )
        return int(result.rowcount)
