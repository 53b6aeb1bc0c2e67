//! Bearer-token authentication and its cache, permissions, logout.

use super::*;
/// Token → principal lookups, cached; entries are dropped when events say
/// the session or account changed (see [`AuthCache::invalidate_for`]).
#[derive(Clone)]
pub struct AuthCache {
    cache: moka::sync::Cache<String, Arc<CachedSession>>,
}

#[derive(Debug)]
struct CachedSession {
    principal: Principal,
    valid_until: DateTime<Utc>,
    touch_after: DateTime<Utc>,
}

impl Default for AuthCache {
    fn default() -> Self {
        AuthCache {
            cache: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(StdDuration::from_secs(60))
                .support_invalidation_closures()
                .build(),
        }
    }
}

impl AuthCache {
    /// Does an event of this type end or change sessions?
    pub fn is_revoking(event_type: &str) -> bool {
        matches!(
            event_type,
            "SessionEnded"
                | "AccountFrozen"
                | "AccountDisabled"
                | "PasswordChanged"
                | "RolesAssigned"
                | "RolePermissionsChanged"
        )
    }

    /// Forget what an event makes stale. Returns true if it was relevant.
    pub fn invalidate_for(&self, event_type: &str, payload: &serde_json::Value) -> bool {
        let id = |k: &str| {
            payload
                .get(k)
                .and_then(|v| v.as_str())
                .and_then(|s| Uuid::parse_str(s).ok())
        };
        match event_type {
            "SessionEnded" => {
                if let Some(s) = id("session_id") {
                    let _ = self
                        .cache
                        .invalidate_entries_if(move |_, v| v.principal.session_id == s);
                }
                true
            }
            "AccountFrozen" | "AccountDisabled" | "PasswordChanged" | "RolesAssigned" => {
                if let Some(a) = id("account_id") {
                    let _ = self
                        .cache
                        .invalidate_entries_if(move |_, v| v.principal.account_id == a);
                }
                true
            }
            "RolePermissionsChanged" => {
                self.clear();
                true
            }
            _ => false,
        }
    }

    /// Drop everything (e.g. after the bus skipped events).
    pub fn clear(&self) {
        self.cache.invalidate_all();
    }

    pub fn len(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub(super) fn session_gone() -> Error {
    Error::rejected(
        Kind::Unauthenticated,
        "session_expired",
        "the session has ended or expired",
    )
}

/// The principal behind a bearer token. Decided from the session's and the
/// account's own streams; cached until an event invalidates it.
pub async fn authenticate(app: &App, token: &str) -> Result<Principal, Error> {
    let cache = &app.auth;
    let key = token_sha256(token);
    let now = app.clock.now();
    if let Some(hit) = cache.cache.get(&key) {
        if now < hit.valid_until && now < hit.touch_after {
            return Ok(hit.principal.clone());
        }
        cache.cache.invalidate(&key);
    }
    let Some(stream) = app.store.guard_owner(TOKEN_SCOPE, &key).await? else {
        return Err(Error::unauthenticated());
    };
    let (state, _) = app.load::<Session>(&stream).await?;
    let s = state.active_at(now).ok_or_else(session_gone)?.clone();
    let (account, _) = load_account(app, s.account_id).await?;
    if account.disabled || account.frozen_at(now).is_some() || account.session_generation != s.generation {
        return Err(session_gone());
    }
    if s.wants_touch(now) {
        let meta = Metadata {
            actor: Some(s.account_id),
            actor_role: Some(s.role),
            tenant: s.tenant,
            client: s.client,
            ..Metadata::system()
        };
        // Losing this race to a concurrent request's touch is harmless.
        match app
            .execute::<Session>(&stream, SessionCommand::Touch, &meta, vec![])
            .await
        {
            Ok(_) | Err(Error::Rejected { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let principal = Principal {
        account_id: s.account_id,
        session_id: s.session_id,
        role: account.role,
        tenant: account.tenant,
        client: s.client,
        permissions: permissions_of(app, &account).await?,
    };
    let touch_after =
        now.max(s.last_active) + chrono::Duration::minutes(medledger_domain::identity::session::TOUCH_EVERY_MINUTES);
    cache.cache.insert(
        key,
        Arc::new(CachedSession {
            principal: principal.clone(),
            valid_until: s.expires_at.min(s.idle_deadline().max(now)),
            touch_after,
        }),
    );
    Ok(principal)
}

/// The permissions an account holds: its roles', and every `admin.*` one for
/// a hospital administrator.
pub async fn permissions_of(app: &App, account: &Account) -> Result<BTreeSet<Permission>, Error> {
    let mut out = BTreeSet::new();
    if account.role == AccountRole::HospitalAdministrator {
        out.extend(Permission::ADMIN);
    }
    for role_id in &account.roles {
        let (state, _) = app.load::<Role>(&format!("role-{role_id}")).await?;
        if let Some(r) = state.role {
            if Some(r.hospital_id) == account.tenant.hospital_id {
                out.extend(r.permissions);
            }
        }
    }
    Ok(out)
}

/// End the caller's session.
pub async fn logout(app: &App, principal: &Principal, metadata: &Metadata) -> Result<u64, Error> {
    end_session(app, principal, principal.session_id, "logout", metadata).await
}

/// End one of the caller's own sessions.
pub async fn end_session(
    app: &App,
    principal: &Principal,
    session_id: Uuid,
    reason: &str,
    metadata: &Metadata,
) -> Result<u64, Error> {
    let stream = session_stream(session_id);
    let (state, _) = app.load::<Session>(&stream).await?;
    let owner = match &state {
        medledger_domain::identity::session::SessionState::Active(s)
        | medledger_domain::identity::session::SessionState::Ended(s) => Some(s.account_id),
        _ => None,
    };
    if owner != Some(principal.account_id) {
        return Err(Error::rejected(Kind::NotFound, "session_not_found", "no such session"));
    }
    let r = app
        .execute::<Session>(&stream, SessionCommand::End { reason: reason.into() }, metadata, vec![])
        .await?;
    Ok(r.position())
}
