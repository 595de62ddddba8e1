//! Observing the portal: bulk reads of many accounts (about one request per thousand objects),
//! narrowed down account by account when a user's token may not read some of them, and the
//! three reads of one account the controller makes.

use std::collections::{BTreeMap, BTreeSet};

use super::bulk::Bulk;
use crate::domain::ObservedAccount;
use crate::portal::{AccountFilter, ErrorCode, Portal, PortalError, PrincipalKind};

/// Reads what the portal holds for the given accounts, with the bulk endpoints: about one
/// request per thousand objects, whatever the number of accounts.
pub async fn observe<P: Portal>(
    portal: &P,
    customer_numbers: &[String],
) -> Result<BTreeMap<String, ObservedAccount>, PortalError> {
    observe_with(portal, customer_numbers, Reach::Everything)
        .await
        .map(|o| o.accounts)
}

/// What a plan is made from: the accounts read, and those the principal may see but not
/// manage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observation {
    pub accounts: BTreeMap<String, ObservedAccount>,
    /// Accounts whose members and contacts the portal refused to show (403): the principal
    /// may not manage them, and they are refused instead of planned.
    pub forbidden: BTreeSet<String>,
}

/// Like [`observe`], for planning: an account whose members the portal refuses to show
/// (a user principal that holds `cockpit-access` there but not `customer-admin`) is set aside
/// under `forbidden` instead of failing every account's read (SPEC §3: a failure in one
/// account never stops the others).
pub async fn observe_for_plan<P: Portal>(
    portal: &P,
    customer_numbers: &[String],
    principal: PrincipalKind,
) -> Result<Observation, PortalError> {
    observe_with(portal, customer_numbers, Reach::of(principal)).await
}

/// Whether every visible account may be read in full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// An operator's token: a 403 is an error of the whole read.
    Everything,
    /// A user's token: the portal may refuse some of the accounts it lists, and its
    /// unfiltered bulk read leaves them out silently, so accounts are always named and a 403
    /// is narrowed down to the accounts it concerns.
    SomeMayBeForbidden,
}

impl Reach {
    fn of(principal: PrincipalKind) -> Reach {
        match principal {
            PrincipalKind::Operator => Reach::Everything,
            PrincipalKind::User => Reach::SomeMayBeForbidden,
        }
    }
}

/// How many accounts are read at once when a bulk read is narrowed down account by account.
const NARROWING_CONCURRENCY: usize = 8;

async fn observe_with<P: Portal>(
    portal: &P,
    customer_numbers: &[String],
    reach: Reach,
) -> Result<Observation, PortalError> {
    observe_prefetched(portal, customer_numbers, reach, None).await
}

/// A plan reads every account's members and contacts only when it plans more than this many
/// accounts (and most of those the portal lists).
pub(crate) const BULK_FROM: usize = 200;

/// Whether the plan reads every account's members and contacts (the bulk reads without a
/// filter) rather than naming the accounts: `present` of the `visible` accounts are planned.
fn reads_everything(reach: Reach, present: usize, visible: usize) -> bool {
    // Reading everything is cheaper than naming most of the accounts one by one.
    reach == Reach::Everything && present > BULK_FROM && present * 2 > visible
}

/// [`reads_everything`] for a prefetch: whether a plan of `customer_numbers` by `principal`,
/// on a portal that lists `accounts`, reads every account's members and contacts.
pub(crate) fn plan_reads_everything(
    customer_numbers: &[String],
    principal: PrincipalKind,
    accounts: &[crate::portal::Account],
) -> bool {
    let wanted: std::collections::HashSet<&str> =
        customer_numbers.iter().map(String::as_str).collect();
    let present = accounts
        .iter()
        .filter(|a| wanted.contains(a.customer_number.as_str()))
        .count();
    reads_everything(Reach::of(principal), present, accounts.len())
}

/// Like [`observe_for_plan`], with what a prefetch already read: the account list and, when
/// the plan reads every account, the bulk reads.
pub(crate) async fn observe_for_plan_prefetched<P: Portal>(
    portal: &P,
    customer_numbers: &[String],
    principal: PrincipalKind,
    prefetched: (Vec<crate::portal::Account>, Option<Bulk>),
) -> Result<Observation, PortalError> {
    observe_prefetched(
        portal,
        customer_numbers,
        Reach::of(principal),
        Some(prefetched),
    )
    .await
}

async fn observe_prefetched<P: Portal>(
    portal: &P,
    customer_numbers: &[String],
    reach: Reach,
    prefetched: Option<(Vec<crate::portal::Account>, Option<Bulk>)>,
) -> Result<Observation, PortalError> {
    portal.bind_accounts(customer_numbers);
    let (accounts, mut bulk) = match prefetched {
        Some((accounts, bulk)) => (accounts, bulk),
        None => (portal.list_accounts().await?, None),
    };
    let visible = accounts.len();
    let wanted: std::collections::HashSet<&str> =
        customer_numbers.iter().map(String::as_str).collect();
    let mut observed: BTreeMap<String, ObservedAccount> = BTreeMap::new();
    let mut present = Vec::new();
    for a in accounts {
        if wanted.contains(a.customer_number.as_str()) {
            present.push(a.customer_number.clone());
            observed.insert(
                a.customer_number.clone(),
                ObservedAccount {
                    account: Some(a.into()),
                    ..Default::default()
                },
            );
        }
    }
    let mut forbidden = BTreeSet::new();
    if present.is_empty() {
        return Ok(Observation {
            accounts: observed,
            forbidden,
        });
    }
    let filter = if reads_everything(reach, present.len(), visible) {
        AccountFilter::All
    } else {
        bulk = None;
        AccountFilter::Only(present.clone())
    };
    let read = match bulk {
        Some(read) => Ok(read),
        None => Bulk::read(portal, &filter).await,
    };
    let read = match read {
        Ok(read) => read,
        Err(e) if reach == Reach::SomeMayBeForbidden && e.code() == Some(ErrorCode::Forbidden) => {
            read_one_by_one(portal, &present, &mut forbidden).await?
        }
        Err(e) => return Err(e),
    };
    for cn in &forbidden {
        observed.remove(cn);
    }
    for (cn, (members, contacts)) in read.into_accounts() {
        if let Some(o) = observed.get_mut(&cn) {
            o.members = members;
            o.contacts = contacts;
        }
    }
    Ok(Observation {
        accounts: observed,
        forbidden,
    })
}

/// The bulk read of several accounts was refused: reads them one at a time, and sets aside
/// each one the portal refuses (403). Any other failure is the whole read's.
async fn read_one_by_one<P: Portal>(
    portal: &P,
    present: &[String],
    forbidden: &mut BTreeSet<String>,
) -> Result<Bulk, PortalError> {
    use futures::StreamExt;
    let reads = futures::stream::iter(present.iter().map(|cn| async move {
        let filter = AccountFilter::Only(vec![cn.clone()]);
        let read = tokio::try_join!(portal.list_members(&filter), portal.list_contacts(&filter));
        (cn, read)
    }))
    .buffer_unordered(NARROWING_CONCURRENCY)
    .collect::<Vec<_>>()
    .await;
    let mut bulk = Bulk::default();
    for (cn, read) in reads {
        match read {
            Ok((m, c)) => bulk.add(m, c),
            Err(e) if e.code() == Some(ErrorCode::Forbidden) => {
                forbidden.insert(cn.clone());
            }
            Err(e) => return Err(e),
        }
    }
    Ok(bulk)
}

/// Reads one account, its members and its contacts: three requests, whatever the size of the
/// fleet (the controller reconciles accounts one at a time). An account the portal does not
/// have is observed as absent.
pub async fn observe_account<P: Portal>(
    portal: &P,
    customer_number: &str,
) -> Result<ObservedAccount, PortalError> {
    portal.bind_accounts(&[customer_number.to_string()]);
    let account = match portal.get_account(customer_number).await {
        Ok(a) => a,
        Err(e) if e.code() == Some(ErrorCode::NotFound) => return Ok(ObservedAccount::default()),
        Err(e) => return Err(e),
    };
    let filter = AccountFilter::Only(vec![customer_number.to_string()]);
    let (members, contacts) =
        tokio::try_join!(portal.list_members(&filter), portal.list_contacts(&filter))?;
    // Converted once, here: the planner and everything after it read the domain's types.
    Ok(ObservedAccount {
        account: Some(account.into()),
        members: members.into_iter().map(Into::into).collect(),
        contacts: contacts.into_iter().map(Into::into).collect(),
    })
}
