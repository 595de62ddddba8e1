//! Reading the members and contacts of many clients: bulk `GetUsers` / `GetContacts` pages
//! (one call per [`BULK_PAGE`] users or contacts) plus one `GetUserPermissions` per (client,
//! user) link that is not the owner's, instead of `GetClientsDetails` and `GetContacts` per
//! client. A read of a few clients out of many keeps the per-client calls, which cost less
//! there than listing the whole installation.

use std::collections::HashSet;

use futures::stream::{self, StreamExt, TryStreamExt};

use super::*;

/// Items per page of every list rolecall reads (`limitnum`): WHMCS answers 25 when it is not
/// sent, and documents no upper bound.
pub const BULK_PAGE: u32 = 250;

/// `GetUserPermissions` calls in flight at once (the rate limit still spaces them out).
const PERMISSION_READS: usize = 4;

/// A read of `k` named clients out of `T` goes through the bulk lists when `k * RATIO >= T`:
/// the whole installation's users are then about as many pages as the named clients would be
/// calls (with ten users a client, 250 users a page). One client of a small installation
/// costs the same either way.
const RATIO: usize = 25;

/// One (client, user) link found in `GetUsers`, before its permissions are read.
struct Link {
    client_id: String,
    user_id: String,
    email: String,
    name: String,
    owner: bool,
}

impl WhmcsPortal {
    /// The clients the bulk lists are filtered to, or `None` when reading them client by
    /// client costs fewer calls (a few named clients out of many, or the size of the
    /// installation not known yet).
    pub(super) fn bulk_scope(&self, filter: &AccountFilter) -> Option<Option<HashSet<String>>> {
        match filter {
            AccountFilter::All => Some(None),
            AccountFilter::Only(ids) => {
                let total = self.known_clients()?.len();
                (ids.len().saturating_mul(RATIO) >= total)
                    .then(|| Some(ids.iter().cloned().collect()))
            }
        }
    }

    /// The client ids the last `GetClients` listing showed.
    pub(super) fn known_clients(&self) -> Option<Vec<String>> {
        self.clients.lock().ok().and_then(|c| c.clone())
    }

    /// The members of every client in `scope` (`None`: all), from the bulk `GetUsers` list;
    /// `None` when the answer lacks the users' client lists (then only the per-client read
    /// can tell).
    pub(super) async fn bulk_members(
        &self,
        scope: Option<&HashSet<String>>,
        order: &[String],
    ) -> PortalResult<Option<Vec<Member>>> {
        let users = self.all_pages("GetUsers", &[], "users", "user").await?;
        let mut links = Vec::new();
        for user in &users {
            if user.get("clients").is_none() {
                return Ok(None);
            }
            let (Some(user_id), email) = (wire::id(user.get("id")), wire::text(user, "email"))
            else {
                continue;
            };
            if email.is_empty() {
                continue;
            }
            for client in wire::list(user.get("clients"), "client") {
                let Some(client_id) = wire::id(client.get("id")) else {
                    continue;
                };
                if scope.is_some_and(|s| !s.contains(&client_id)) {
                    continue;
                }
                links.push(Link {
                    client_id,
                    user_id: user_id.clone(),
                    email: email.to_owned(),
                    name: wire::person_name(user),
                    owner: wire::is_owner(client),
                });
            }
        }
        let all = self.permission_names().await?.clone();
        let linked: Vec<Member> = stream::iter(links)
            .map(|link| self.link_member(link, &all))
            .buffered(PERMISSION_READS)
            .try_collect()
            .await?;
        let mut by_client: HashMap<String, Vec<Member>> = HashMap::new();
        for m in linked {
            let cn = m.customer_number.clone().unwrap_or_default();
            by_client.entry(cn).or_default().push(m);
        }
        let mut members = Vec::new();
        for client_id in order {
            let mut of_client = by_client.remove(client_id).unwrap_or_default();
            self.add_invitations(client_id, &mut of_client)?;
            members.extend(of_client);
        }
        Ok(Some(members))
    }

    async fn link_member(&self, link: Link, all: &[String]) -> PortalResult<Member> {
        let roles = if link.owner {
            owner_roles(all)
        } else {
            self.user_permissions(&link.user_id, &link.client_id)
                .await?
        };
        Ok(linked_member(
            &link.client_id,
            link.email,
            &link.name,
            &roles,
        ))
    }

    async fn user_permissions(&self, user_id: &str, client_id: &str) -> PortalResult<Vec<String>> {
        let p = self
            .call(
                "GetUserPermissions",
                &[
                    ("user_id", user_id.to_owned()),
                    ("client_id", client_id.to_owned()),
                ],
            )
            .await?;
        Ok(wire::permissions(p.get("permissions")))
    }

    /// The contacts of every client in `scope` (`None`: all), in `order`, from the bulk
    /// `GetContacts` list; `None` when a contact comes without its client id.
    pub(super) async fn bulk_contacts(
        &self,
        scope: Option<&HashSet<String>>,
        order: &[String],
    ) -> PortalResult<Option<Vec<Contact>>> {
        let items = self
            .all_pages("GetContacts", &[], "contacts", "contact")
            .await?;
        let mut by_client: HashMap<String, Vec<Contact>> = HashMap::new();
        for c in &items {
            let Some(client_id) = wire::id(c.get("userid")) else {
                return Ok(None);
            };
            if scope.is_none_or(|s| s.contains(&client_id)) {
                let contact = contact_of(&client_id, c);
                by_client.entry(client_id).or_default().push(contact);
            }
        }
        Ok(Some(
            order
                .iter()
                .flat_map(|id| by_client.remove(id).unwrap_or_default())
                .collect(),
        ))
    }

    /// The contacts of one client.
    pub(super) async fn client_contacts(&self, client_id: &str) -> PortalResult<Vec<Contact>> {
        let items = self
            .all_pages(
                "GetContacts",
                &[("userid", client_id.to_owned())],
                "contacts",
                "contact",
            )
            .await?;
        Ok(items.iter().map(|c| contact_of(client_id, c)).collect())
    }

    /// The members of one client: its users, then the invitations still outstanding.
    pub(super) async fn client_members(&self, client_id: &str) -> PortalResult<Vec<Member>> {
        let answer = self
            .call("GetClientsDetails", &[("clientid", client_id.to_owned())])
            .await?;
        let client = answer.get("client").unwrap_or(&answer);
        let owner_id = wire::id(client.get("owner_user_id"));
        let all = self.permission_names().await?.clone();
        let mut members = Vec::new();
        for user in wire::list(client.get("users"), "user") {
            let email = wire::text(user, "email").to_owned();
            let Some(id) = wire::id(user.get("id")) else {
                continue;
            };
            if email.is_empty() {
                continue;
            }
            let owner = wire::is_owner(user) || owner_id.as_deref() == Some(id.as_str());
            let roles = if owner {
                owner_roles(&all)
            } else {
                self.user_permissions(&id, client_id).await?
            };
            members.push(linked_member(
                client_id,
                email,
                &wire::person_name(user),
                &roles,
            ));
        }
        self.add_invitations(client_id, &mut members)?;
        Ok(members)
    }

    /// Adds the client's recorded invitations that are still outstanding; a user now
    /// associated ends the record of their invitation.
    fn add_invitations(&self, client_id: &str, members: &mut Vec<Member>) -> PortalResult<()> {
        let records = self
            .invitations
            .list(client_id)
            .map_err(Self::store_error)?;
        for record in records {
            let joined = members.iter().any(|m| same_email(&m.email, &record.email));
            if joined {
                self.invitations
                    .remove(client_id, &record.email)
                    .map_err(Self::store_error)?;
            } else {
                members.push(self.pending_member(client_id, &record));
            }
        }
        Ok(())
    }
}

/// The owner holds everything; WHMCS does not keep permissions for it.
fn owner_roles(all: &[String]) -> Vec<String> {
    let mut r = all.to_vec();
    r.push(OWNER_ROLE.to_owned());
    r
}

fn linked_member(client_id: &str, email: String, name: &str, roles: &[String]) -> Member {
    let mut roles = roles.to_vec();
    roles.sort();
    Member {
        customer_number: Some(client_id.to_owned()),
        email,
        name: (!name.is_empty()).then(|| name.to_owned()),
        user_linked: true,
        roles: grants(&roles),
        services: Services::All,
        notifications: Vec::new(),
        invitation: None,
        etag: NO_ETAG.into(),
    }
}
