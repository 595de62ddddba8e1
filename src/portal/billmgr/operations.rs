//! The [`Portal`] operations carried out through BILLmanager.

use super::*;

impl Portal for BillmgrPortal {
    fn bind_accounts(&self, customer_numbers: &[String]) {
        if let Ok(mut bound) = self.bound.lock() {
            let mut cns = customer_numbers.to_vec();
            cns.sort();
            cns.dedup();
            *bound = cns;
        }
    }

    async fn whoami(&self) -> PortalResult<Whoami> {
        let users = self.users().await?;
        Ok(Whoami {
            email: users.iter().find(|u| u.is_self).map(|u| u.email.clone()),
            kind: PrincipalKind::User,
        })
    }

    async fn catalog(&self) -> PortalResult<Catalog> {
        let mut roles: Vec<CatalogRole> = self
            .functions()
            .await?
            .iter()
            .map(|f| CatalogRole {
                name: f.clone(),
                description: format!(
                    "The BILLmanager function {f} and what its rights tree holds under it."
                ),
                grants_login: true,
                requires: Vec::new(),
                read_only: false,
            })
            .collect();
        roles.push(CatalogRole {
            name: FULL_ACCESS.into(),
            description: "Full access to the client account (default_access_allow).".into(),
            grants_login: true,
            requires: Vec::new(),
            read_only: false,
        });
        roles.push(CatalogRole {
            name: CONTACT_ROLE.into(),
            description:
                "A user with no right and no full access: BILLmanager sends it no password e-mail."
                    .into(),
            grants_login: false,
            requires: Vec::new(),
            read_only: false,
        });
        roles.push(CatalogRole {
            name: OWNER_ROLE.into(),
            description:
                "The account's main user: BILLmanager's own; rolecall never changes or removes it."
                    .into(),
            grants_login: true,
            requires: Vec::new(),
            read_only: true,
        });
        Ok(Catalog {
            roles,
            notification_kinds: Vec::new(),
            capabilities: Capabilities {
                scheduled_revocation: false,
                service_scopes: false,
                create_accounts: false,
                etags: false,
                contacts: false,
                member_notifications: false,
                refuse_services: true,
            },
            invitation_ttl_days: INVITATION_TTL_DAYS,
        })
    }

    async fn list_accounts(&self) -> PortalResult<Vec<Account>> {
        let label = self.label()?;
        Ok(vec![self.get_account(&label).await?])
    }

    async fn get_account(&self, customer_number: &str) -> PortalResult<Account> {
        self.check_account(customer_number)?;
        // Logging in proves the credentials and that the account is there.
        self.session().await?;
        Ok(Account {
            customer_number: customer_number.to_owned(),
            // BILLmanager's client account details are not read: none is reported, and a
            // declared displayName is refused by update_account.
            display_name: String::new(),
            time_zone: String::new(),
            etag: NO_ETAG.into(),
        })
    }

    async fn create_account(&self, account: &NewAccount, _: &str) -> PortalResult<Account> {
        Err(PortalError::problem(
            403,
            ErrorCode::Forbidden,
            format!(
                "rolecall does not create BILLmanager client accounts; customer account {} is the one the credentials log in to",
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
                "rolecall does not change BILLmanager client account details; remove displayName from customer account {customer_number}"
            ),
        ))
    }

    async fn list_members(&self, accounts: &AccountFilter) -> PortalResult<Vec<Member>> {
        let label = self.label()?;
        if let AccountFilter::Only(cns) = accounts
            && !cns.contains(&label)
        {
            return Ok(Vec::new());
        }
        let mut members = Vec::new();
        for user in self.users().await? {
            let roles = self.roles_of(&user).await?;
            members.push(self.member(&label, &user, roles));
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
        self.check_account(customer_number)?;
        if member.notifications.as_ref().is_some_and(|n| !n.is_empty()) {
            return Err(Self::not_offered("setting another user's notifications"));
        }
        if member
            .services
            .as_ref()
            .is_some_and(|s| *s != Services::All)
        {
            return Err(Self::not_offered("setting a user's service access"));
        }
        let want = self.access(email, &member.roles).await?;
        // Read before every write: a user created by an earlier attempt whose answer was lost
        // is found here, not created again.
        let user = match self.user(email).await? {
            Some(user) => user,
            None => {
                self.create(email, member.name.as_deref()).await?;
                self.user(email).await?.ok_or_else(|| {
                    PortalError::Protocol(format!(
                        "BILLmanager accepted user.edit for {email} but does not list the user"
                    ))
                })?
            }
        };
        if self.is_main(&user).await? {
            return Err(PortalError::problem(
                403,
                ErrorCode::Forbidden,
                format!(
                    "{} is the main user of the BILLmanager account; rolecall never changes it",
                    user.email
                ),
            ));
        }
        if !user.enabled {
            self.call(
                "user.resume",
                &[("elid", wire::elids(&[&user.id])), ("sok", "ok".to_owned())],
            )
            .await?;
        }
        if let Some(name) = member.name.as_deref().map(str::trim)
            && !name.is_empty()
            && name != user.name
        {
            // NB: a partial user.edit with `elid` keeps the fields it does not name (the
            // sources send only default_access_allow this way); not checked for realname.
            self.call(
                "user.edit",
                &[
                    ("elid", user.id.clone()),
                    ("realname", name.to_owned()),
                    ("sok", "ok".to_owned()),
                ],
            )
            .await?;
        }
        self.set_access(&user, &want).await?;
        let mut roles: Vec<String> = want.rights.iter().cloned().collect();
        if want.full {
            roles.push(FULL_ACCESS.to_owned());
        }
        if roles.is_empty() {
            roles.push(CONTACT_ROLE.to_owned());
        }
        roles.sort();
        let mut after = user.clone();
        if let Some(name) = member
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            after.name = name.to_owned();
        }
        Ok(self.member(customer_number, &after, roles))
    }

    async fn delete_member(
        &self,
        customer_number: &str,
        email: &str,
        _: Option<&str>,
    ) -> PortalResult<()> {
        self.check_account(customer_number)?;
        let Some(user) = self.user(email).await? else {
            // Gone already (a retry whose first attempt went through).
            return Ok(());
        };
        if self.is_main(&user).await? {
            return Err(PortalError::problem(
                422,
                ErrorCode::LastAdmin,
                format!(
                    "{} is the main user of the BILLmanager account; rolecall never removes it",
                    user.email
                ),
            ));
        }
        match self
            .call(
                "user.delete",
                &[("elid", wire::elids(&[&user.id])), ("sok", "ok".to_owned())],
            )
            .await
        {
            Err(e) if e.code() == Some(ErrorCode::NotFound) => Ok(()),
            other => other.map(|_| ()),
        }
    }

    async fn invite(
        &self,
        customer_number: &str,
        email: &str,
        _resend: bool,
        _: &str,
    ) -> PortalResult<Invitation> {
        self.check_account(customer_number)?;
        // Creating the user was the invitation: BILLmanager e-mailed the password when the
        // user got access. Nothing is sent here, so nothing can be sent twice.
        let Some(user) = self.user(email).await? else {
            return Err(PortalError::problem(
                422,
                ErrorCode::Invalid,
                format!(
                    "{email}: BILLmanager has no such user; its creation is the invitation, so plan again"
                ),
            ));
        };
        let now = self.now();
        Ok(Invitation {
            id: format!("billmgr-user-{}", user.id),
            status: InvitationStatus::Pending,
            sent_at: now.to_string(),
            expires_at: (now + SignedDuration::from_hours(24 * i64::from(INVITATION_TTL_DAYS)))
                .to_string(),
        })
    }

    async fn cancel_invitation(&self, customer_number: &str, _: &str) -> PortalResult<()> {
        // No invitation is ever pending on BILLmanager (a created user is a user).
        self.check_account(customer_number)
    }

    async fn list_contacts(&self, _: &AccountFilter) -> PortalResult<Vec<Contact>> {
        Ok(Vec::new())
    }

    async fn put_contact(
        &self,
        _: &str,
        _: &str,
        _: &ContactPut,
        _: Option<&str>,
    ) -> PortalResult<Contact> {
        Err(Self::not_offered("e-mail-only contacts"))
    }

    async fn delete_contact(&self, _: &str, _: &str, _: Option<&str>) -> PortalResult<()> {
        Err(Self::not_offered("e-mail-only contacts"))
    }

    async fn audit(&self, customer_number: &str) -> PortalResult<Vec<AuditEntry>> {
        Err(PortalError::problem(
            404,
            ErrorCode::NotFound,
            format!(
                "rolecall reads no audit log from BILLmanager (customer account {customer_number}); see BILLmanager's own logs"
            ),
        ))
    }
}
