//! The [`Portal`] operations carried out through the WHMCS API.

use super::*;

impl Portal for WhmcsPortal {
    async fn whoami(&self) -> PortalResult<Whoami> {
        // The API credentials are an administrator's: they reach every client. Reading the
        // permission list checks that they work.
        self.permission_names().await?;
        Ok(Whoami {
            email: None,
            kind: PrincipalKind::Operator,
        })
    }

    async fn catalog(&self) -> PortalResult<Catalog> {
        let mut roles: Vec<CatalogRole> = self
            .permission_names()
            .await?
            .iter()
            .map(|p| CatalogRole {
                name: p.clone(),
                description: format!("The WHMCS permission {p}; every WHMCS user may log in."),
                grants_login: true,
                requires: Vec::new(),
                read_only: false,
            })
            .collect();
        roles.push(CatalogRole {
            name: OWNER_ROLE.into(),
            description: "The client's owner user: holds every permission; WHMCS sets it, rolecall never changes or removes it.".into(),
            grants_login: true,
            requires: Vec::new(),
            read_only: true,
        });
        Ok(Catalog {
            roles,
            notification_kinds: NOTIFICATION_PREFERENCES
                .iter()
                .map(|(k, _)| k.to_string())
                .collect(),
            capabilities: Capabilities {
                scheduled_revocation: false,
                service_scopes: false,
                create_accounts: false,
                etags: false,
                ..Capabilities::default()
            },
            invitation_ttl_days: INVITATION_TTL_DAYS,
        })
    }

    async fn list_accounts(&self) -> PortalResult<Vec<Account>> {
        let clients = self
            .all_pages("GetClients", &[], "clients", "client")
            .await?;
        let accounts: Vec<Account> = clients.iter().filter_map(account_of).collect();
        if let Ok(mut known) = self.clients.lock() {
            *known = Some(accounts.iter().map(|a| a.customer_number.clone()).collect());
        }
        Ok(accounts)
    }

    async fn get_account(&self, customer_number: &str) -> PortalResult<Account> {
        let answer = self
            .call(
                "GetClientsDetails",
                &[("clientid", customer_number.to_owned())],
            )
            .await?;
        account_of(answer.get("client").unwrap_or(&answer)).ok_or_else(|| {
            PortalError::Protocol(format!(
                "WHMCS GetClientsDetails answered no client id for client {customer_number}"
            ))
        })
    }

    async fn create_account(&self, account: &NewAccount, _: &str) -> PortalResult<Account> {
        Err(PortalError::problem(
            403,
            ErrorCode::Forbidden,
            format!(
                "rolecall does not create WHMCS clients; create client {} in WHMCS first",
                account.customer_number
            ),
        ))
    }

    async fn update_account(
        &self,
        customer_number: &str,
        _: &AccountPatch,
        _: Option<&str>,
    ) -> PortalResult<Account> {
        Err(PortalError::problem(
            422,
            ErrorCode::Invalid,
            format!(
                "rolecall does not change WHMCS client details; remove displayName from customer account {customer_number} or make it match the client's company name in WHMCS"
            ),
        ))
    }

    async fn list_members(&self, accounts: &AccountFilter) -> PortalResult<Vec<Member>> {
        let ids = self.client_ids(accounts).await?;
        if let Some(scope) = self.bulk_scope(accounts)
            && let Some(members) = self.bulk_members(scope.as_ref(), &ids).await?
        {
            return Ok(members);
        }
        let mut members = Vec::new();
        for client_id in ids {
            members.extend(self.client_members(&client_id).await?);
        }
        Ok(members)
    }

    async fn put_member(
        &self,
        customer_number: &str,
        email: &str,
        member: &MemberPut,
        _: Option<&str>,
    ) -> PortalResult<Member> {
        if member.notifications.as_ref().is_some_and(|n| !n.is_empty()) {
            return Err(PortalError::problem(
                422,
                ErrorCode::Invalid,
                format!(
                    "{email}: WHMCS users have no notification subscriptions; declare the address as a contact instead"
                ),
            ));
        }
        let permissions = self.permissions_to_set(email, &member.roles).await?;
        let answer = |linked: bool, invitation: Option<Invitation>, name: Option<String>| Member {
            customer_number: Some(customer_number.to_owned()),
            email: email.to_owned(),
            name,
            user_linked: linked,
            roles: grants(&permissions),
            services: Services::All,
            notifications: Vec::new(),
            invitation,
            etag: NO_ETAG.into(),
        };
        match self.user(customer_number, email).await? {
            Some(user) if user.associated && user.owner => Err(PortalError::problem(
                403,
                ErrorCode::Forbidden,
                format!(
                    "{} is the owner of client {customer_number}; WHMCS does not let its permissions change",
                    user.email
                ),
            )),
            Some(user) if user.associated => {
                if let Some(name) = member.name.as_deref().map(str::trim)
                    && !name.is_empty()
                    && name != user.name
                {
                    // The name belongs to the user, which may reach other clients too: it
                    // changes everywhere (documented).
                    let (first, last) = wire::split_name(name);
                    self.call(
                        "UpdateUser",
                        &[
                            ("user_id", user.id.clone()),
                            ("firstname", first),
                            ("lastname", last),
                        ],
                    )
                    .await?;
                }
                self.call(
                    "UpdateUserPermissions",
                    &[
                        ("user_id", user.id),
                        ("client_id", customer_number.to_owned()),
                        ("permissions", permissions.join(",")),
                    ],
                )
                .await?;
                Ok(answer(true, None, member.name.clone()))
            }
            _ => {
                // Not linked yet: the permissions go with the invitation. An invitation already
                // sent cannot change in WHMCS; the record keeps the new set, which rolecall
                // sets once the person has joined.
                if let Some(mut record) = self.record(customer_number, email)? {
                    record.permissions = permissions.clone();
                    if member.name.is_some() {
                        record.name = member.name.clone();
                    }
                    let invitation = self.invitation_of(&record);
                    self.invitations.put(record).map_err(Self::store_error)?;
                    return Ok(answer(false, Some(invitation), member.name.clone()));
                }
                if let Ok(mut planned) = self.planned.lock() {
                    planned.insert(
                        Self::planned_key(customer_number, email),
                        (member.name.clone(), permissions.clone()),
                    );
                }
                Ok(answer(false, None, member.name.clone()))
            }
        }
    }

    async fn delete_member(
        &self,
        customer_number: &str,
        email: &str,
        _: Option<&str>,
    ) -> PortalResult<()> {
        if let Ok(mut planned) = self.planned.lock() {
            planned.remove(&Self::planned_key(customer_number, email));
        }
        match self.user(customer_number, email).await? {
            Some(user) if user.associated && user.owner => Err(PortalError::problem(
                422,
                ErrorCode::LastAdmin,
                format!(
                    "{} is the owner of client {customer_number}; rolecall never removes it",
                    user.email
                ),
            )),
            Some(user) if user.associated => {
                let deleted = self
                    .call(
                        "DeleteUserClient",
                        &[
                            ("user_id", user.id),
                            ("client_id", customer_number.to_owned()),
                        ],
                    )
                    .await;
                match deleted {
                    // A retry whose first attempt went through: the link is gone.
                    Err(e) if e.code() == Some(ErrorCode::NotFound) => {}
                    other => {
                        other?;
                    }
                }
                self.invitations
                    .remove(customer_number, email)
                    .map_err(Self::store_error)
            }
            _ => self.cancel_invitation(customer_number, email).await,
        }
    }

    async fn invite(
        &self,
        customer_number: &str,
        email: &str,
        resend: bool,
        _: &str,
    ) -> PortalResult<Invitation> {
        let now = self.now();
        let existing = self.record(customer_number, email)?;
        if let Some(record) = &existing
            && !resend
            && !record.expired(now)
        {
            // Sent already: WHMCS would send a second e-mail.
            return Ok(self.invitation_of(record));
        }
        let planned = self
            .planned
            .lock()
            .ok()
            .and_then(|p| p.get(&Self::planned_key(customer_number, email)).cloned());
        let (name, permissions) = match (planned, &existing) {
            (Some(p), _) => p,
            (None, Some(r)) => (r.name.clone(), r.permissions.clone()),
            (None, None) => {
                return Err(PortalError::problem(
                    422,
                    ErrorCode::Invalid,
                    format!(
                        "{email}: WHMCS invitations carry the permissions they grant, and none were written for this member; plan again"
                    ),
                ));
            }
        };
        if permissions.is_empty() {
            return Err(PortalError::problem(
                422,
                ErrorCode::Invalid,
                format!("{email}: WHMCS invites only with at least one permission"),
            ));
        }
        let record = InvitationRecord {
            client_id: customer_number.to_owned(),
            email: email.to_owned(),
            name,
            permissions: permissions.clone(),
            sent_at: now,
            expires_at: now + SignedDuration::from_hours(24 * i64::from(INVITATION_TTL_DAYS)),
        };
        // Recorded before it is sent: if rolecall dies between the two, the worst case is an
        // invitation recorded but not sent (sent again when the record expires), never two.
        self.invitations
            .put(record.clone())
            .map_err(Self::store_error)?;
        let sent = self
            .call_once(
                "CreateClientInvite",
                &[
                    ("client_id", customer_number.to_owned()),
                    ("email", email.to_owned()),
                    ("permissions", permissions.join(",")),
                ],
            )
            .await;
        match sent {
            Ok(_) => {
                if let Ok(mut planned) = self.planned.lock() {
                    planned.remove(&Self::planned_key(customer_number, email));
                }
                Ok(self.invitation_of(&record))
            }
            // WHMCS said no: nothing was sent, so nothing is recorded (or the record of the
            // earlier invitation stays). A network failure or a 5xx leaves the record: the
            // invitation may have gone out.
            Err(e @ PortalError::Problem { .. }) if e.code() != Some(ErrorCode::Unavailable) => {
                match existing {
                    Some(old) if e.code() != Some(ErrorCode::AlreadyLinked) => {
                        self.invitations.put(old).map_err(Self::store_error)?
                    }
                    _ => self
                        .invitations
                        .remove(customer_number, email)
                        .map_err(Self::store_error)?,
                }
                if e.code() == Some(ErrorCode::AlreadyLinked) {
                    return Err(PortalError::problem(
                        409,
                        ErrorCode::AlreadyLinked,
                        format!(
                            "{email} has joined client {customer_number} since the plan was made (WHMCS: User already associated with client); the next plan sets their permissions"
                        ),
                    ));
                }
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    async fn cancel_invitation(&self, customer_number: &str, email: &str) -> PortalResult<()> {
        // WHMCS cannot cancel an invitation: the link in the e-mail stays valid until it
        // expires. Ending the record stops rolecall from treating the person as invited; if
        // they accept anyway, the next plan removes them (with prune).
        tracing::info!(
            customer_number,
            "WHMCS cannot cancel a sent invitation; rolecall forgets it"
        );
        self.invitations
            .remove(customer_number, email)
            .map_err(Self::store_error)
    }

    async fn list_contacts(&self, accounts: &AccountFilter) -> PortalResult<Vec<Contact>> {
        let ids = self.client_ids(accounts).await?;
        if let Some(scope) = self.bulk_scope(accounts)
            && let Some(contacts) = self.bulk_contacts(scope.as_ref(), &ids).await?
        {
            return Ok(contacts);
        }
        let mut contacts = Vec::new();
        for client_id in ids {
            contacts.extend(self.client_contacts(&client_id).await?);
        }
        Ok(contacts)
    }

    async fn put_contact(
        &self,
        customer_number: &str,
        email: &str,
        contact: &ContactPut,
        _: Option<&str>,
    ) -> PortalResult<Contact> {
        let mut params: Vec<(&str, String)> = preferences(&contact.notifications)?;
        let name = |params: &mut Vec<(&str, String)>| {
            let (first, last) = wire::split_name(&contact.name);
            params.push(("firstname", first));
            params.push(("lastname", last));
        };
        match self.find_contact(customer_number, email).await? {
            Some(existing) => {
                let id = wire::id(existing.get("id")).ok_or_else(|| {
                    PortalError::Protocol(format!(
                        "WHMCS GetContacts answered a contact without an id for {email}"
                    ))
                })?;
                // The name is written only when it changes: splitting it again at the first
                // space would move a two-word first name ("Mary Ann") into the last name.
                if contact.name.trim() != wire::person_name(&existing) {
                    name(&mut params);
                }
                params.push(("contactid", id));
                self.call("UpdateContact", &params)
                    .await
                    .map_err(|e| domain_rule(customer_number, e))?;
            }
            None => {
                name(&mut params);
                params.push(("clientid", customer_number.to_owned()));
                params.push(("email", email.to_owned()));
                self.call_once("AddContact", &params)
                    .await
                    .map_err(|e| domain_rule(customer_number, e))?;
            }
        }
        Ok(Contact {
            customer_number: Some(customer_number.to_owned()),
            email: email.to_owned(),
            name: contact.name.trim().to_owned(),
            notifications: contact.notifications.clone(),
            etag: NO_ETAG.into(),
        })
    }

    async fn delete_contact(
        &self,
        customer_number: &str,
        email: &str,
        _: Option<&str>,
    ) -> PortalResult<()> {
        let Some(existing) = self.find_contact(customer_number, email).await? else {
            return Ok(());
        };
        let Some(id) = wire::id(existing.get("id")) else {
            return Err(PortalError::Protocol(format!(
                "WHMCS GetContacts answered a contact without an id for {email}"
            )));
        };
        match self.call("DeleteContact", &[("contactid", id)]).await {
            // A retry whose first attempt went through finds nothing: that is success.
            Err(e) if e.code() == Some(ErrorCode::NotFound) => Ok(()),
            other => other
                .map(|_| ())
                .map_err(|e| domain_rule(customer_number, e)),
        }
    }

    async fn audit(&self, customer_number: &str) -> PortalResult<Vec<AuditEntry>> {
        Err(PortalError::problem(
            404,
            ErrorCode::NotFound,
            format!(
                "WHMCS has no per-client audit log rolecall can read (client {customer_number}); see the WHMCS activity log"
            ),
        ))
    }
}
