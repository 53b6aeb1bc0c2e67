//! QR-scan login: a PC shows a ticket, a logged-in phone confirms it, the PC
//! redeems it once for its own session.

use super::*;
#[derive(Clone, Debug)]
pub struct IssuedTicket {
    pub ticket_id: Uuid,
    pub secret: String,
    pub expires_at: DateTime<Utc>,
    pub position: u64,
}

impl IssuedTicket {
    /// What the QR code encodes.
    pub fn qr_payload(&self) -> String {
        format!("medledger-login:{}:{}", self.ticket_id, self.secret)
    }
}

pub async fn issue_login_ticket(app: &App, metadata: &Metadata) -> Result<IssuedTicket, Error> {
    let ticket_id = Uuid::now_v7();
    let secret = random_secret("");
    let r = app
        .execute::<LoginTicket>(
            &ticket_stream(ticket_id),
            LoginTicketCommand::Issue {
                ticket_id,
                secret_sha256: sha256_hex(&secret),
            },
            metadata,
            vec![],
        )
        .await?;
    let expires_at = match r.events.first() {
        Some(medledger_domain::identity::login_ticket::LoginTicketEvent::LoginTicketIssued { expires_at, .. }) => {
            *expires_at
        }
        _ => return Err(Error::Internal("ticket not issued".into())),
    };
    Ok(IssuedTicket {
        ticket_id,
        secret,
        expires_at,
        position: r.position(),
    })
}

/// Load a ticket, checking its secret in constant time. A wrong secret
/// looks like a missing ticket.
pub(super) async fn load_ticket(app: &App, ticket_id: Uuid, secret: &str) -> Result<(LoginTicketState, u64), Error> {
    let stream = ticket_stream(ticket_id);
    let raw = app.store.read_stream(&stream, 0).await?;
    let stored = raw
        .first()
        .and_then(|e| e.payload.get("secret_sha256"))
        .and_then(|v| v.as_str())
        .map(str::to_string);
    let given = sha256_hex(secret);
    let ok = stored
        .map(|s| s.len() == given.len() && s.bytes().zip(given.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0)
        .unwrap_or(false);
    if !ok {
        return Err(Error::rejected(
            Kind::NotFound,
            "ticket_not_found",
            "no such login ticket",
        ));
    }
    app.load::<LoginTicket>(&stream).await
}

/// A logged-in mobile client confirms a ticket it scanned. The account must
/// have a bound phone and a password of its own choosing first.
pub async fn confirm_login_ticket(
    app: &App,
    principal: &Principal,
    ticket_id: Uuid,
    secret: &str,
    metadata: &Metadata,
) -> Result<u64, Error> {
    if principal.client != ClientKind::Mobile {
        return Err(Error::rejected(
            Kind::Forbidden,
            "mobile_client_required",
            "login tickets are confirmed from a logged-in mobile client",
        ));
    }
    load_ticket(app, ticket_id, secret).await?;
    let (account, _) = load_account(app, principal.account_id).await?;
    if account.phone.is_none() {
        return Err(Error::rejected(
            Kind::Conflict,
            "phone_binding_required",
            "bind a phone number before the first QR login",
        ));
    }
    if !account.password_chosen_by_owner {
        return Err(Error::rejected(
            Kind::Conflict,
            "initial_password_required",
            "set your own password before the first QR login",
        ));
    }
    let r = app
        .execute::<LoginTicket>(
            &ticket_stream(ticket_id),
            LoginTicketCommand::Confirm {
                account_id: principal.account_id,
                by_session: principal.session_id,
            },
            metadata,
            vec![],
        )
        .await?;
    Ok(r.position())
}

/// What the PC client learns when it polls its ticket.
#[derive(Clone, Debug)]
pub enum TicketPoll {
    Pending { expires_at: DateTime<Utc> },
    LoggedIn(LoginSuccess),
}

/// Redeem a confirmed ticket for a session (once), or say it is pending.
pub async fn redeem_login_ticket(
    app: &App,
    ticket_id: Uuid,
    secret: &str,
    client: ClientKind,
    metadata: &Metadata,
) -> Result<TicketPoll, Error> {
    let (state, version) = load_ticket(app, ticket_id, secret).await?;
    let ctx = app.ctx(metadata);
    let account_id = match &state {
        LoginTicketState::Issued { expires_at, .. } if ctx.now < *expires_at => {
            return Ok(TicketPoll::Pending {
                expires_at: *expires_at,
            })
        }
        LoginTicketState::Confirmed { account_id, .. } => *account_id,
        _ => Uuid::nil(),
    };
    // Let the decider say why (expired, used) if it cannot be redeemed.
    LoginTicket::decide(
        &state,
        LoginTicketCommand::Redeem {
            session_id: Uuid::nil(),
        },
        &ctx,
    )?;
    let app2 = app.clone();
    let meta = metadata.clone();
    let extra = move |session_id: Uuid| -> Result<Option<(String, ExpectedVersion, Vec<NewEvent>)>, Error> {
        let events = LoginTicket::decide(&state, LoginTicketCommand::Redeem { session_id }, &app2.ctx(&meta))?;
        let (event_type, payload) = crate::codec::encode(&events[0]);
        let schema = medledger_domain::DomainEvent::schema_version(&events[0]);
        let meta_json = serde_json::to_value(&meta).expect("metadata serializes");
        Ok(Some((
            ticket_stream(ticket_id),
            ExpectedVersion::from_loaded(version),
            vec![NewEvent::new(event_type, schema, payload, meta_json, app2.clock.now())],
        )))
    };
    let ok = attempt_login(app, account_id, None, client, "qr", metadata, extra).await?;
    Ok(TicketPoll::LoggedIn(ok))
}
