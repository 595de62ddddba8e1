//! The bulk reads of members and contacts, filed under their accounts page by page as the
//! portal answers. Only each page is ever held in the portal's wire form: on a fleet of a
//! million members, one list of the whole fleet's members (grown by doubling, then converted
//! into the domain's types beside itself) was the largest thing a plan held, and converting it
//! after the last page was on the plan's critical path.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use tokio::sync::mpsc::UnboundedSender;

use crate::domain::{ObservedContact, ObservedMember};
use crate::portal::{AccountFilter, Contact, Member, Portal, PortalResult};

/// One page of a bulk read, filed: a run for each stretch of one account, in the page's order.
pub(crate) type FiledPage<T> = Vec<(String, Vec<T>)>;

/// What a bulk read sent in a task of its own hands over, as the portal answers.
#[derive(Debug)]
pub(crate) enum Arrival {
    Members(FiledPage<ObservedMember>),
    Contacts(FiledPage<ObservedContact>),
    /// The last member page has been sent.
    MembersDone,
    /// The last contact page has been sent.
    ContactsDone,
}

/// Every read account's members and contacts, in the domain's types.
#[derive(Debug, Default)]
pub(crate) struct Bulk {
    members: Runs<ObservedMember>,
    contacts: Runs<ObservedContact>,
}

impl Bulk {
    /// Reads the members and contacts of `filter`, both at once (the portal answers one while
    /// rolecall files the other).
    pub(crate) async fn read<P: Portal>(portal: &P, filter: &AccountFilter) -> PortalResult<Bulk> {
        let mut members = Runs::default();
        let mut contacts = Runs::default();
        tokio::try_join!(
            portal.list_members_by_page(filter, |page| members.file(page)),
            portal.list_contacts_by_page(filter, |page| contacts.file(page)),
        )?;
        Ok(Bulk { members, contacts })
    }

    /// Reads as [`Bulk::read`] does, and sends each page filed, as it arrives, to `to`, then
    /// the end of each list. A failed read ends without its end: the receiver sees the channel
    /// close early.
    pub(crate) async fn send<P: Portal>(
        portal: &P,
        filter: &AccountFilter,
        to: UnboundedSender<Arrival>,
    ) -> PortalResult<()> {
        // A receiver that went away wants nothing more; the read is cancelled with it.
        let members = async {
            portal
                .list_members_by_page(filter, |page| {
                    let _ = to.send(Arrival::Members(filed(page)));
                })
                .await?;
            let _ = to.send(Arrival::MembersDone);
            PortalResult::Ok(())
        };
        let contacts = async {
            portal
                .list_contacts_by_page(filter, |page| {
                    let _ = to.send(Arrival::Contacts(filed(page)));
                })
                .await?;
            let _ = to.send(Arrival::ContactsDone);
            PortalResult::Ok(())
        };
        tokio::try_join!(members, contacts)?;
        Ok(())
    }

    /// Files what a [`Bulk::send`] sent.
    pub(crate) fn take(&mut self, arrival: Arrival) {
        match arrival {
            Arrival::Members(page) => self.members.append(page),
            Arrival::Contacts(page) => self.contacts.append(page),
            Arrival::MembersDone | Arrival::ContactsDone => {}
        }
    }

    /// Files members and contacts read some other way (one account at a time).
    pub(crate) fn add(&mut self, members: Vec<Member>, contacts: Vec<Contact>) {
        self.members.file(members);
        self.contacts.file(contacts);
    }

    /// Each account's members and contacts, by customer number.
    pub(crate) fn into_accounts(
        self,
    ) -> HashMap<String, (Vec<ObservedMember>, Vec<ObservedContact>)> {
        let mut accounts: HashMap<String, (Vec<ObservedMember>, Vec<ObservedContact>)> =
            HashMap::new();
        for (cn, members) in self.members.into_lists() {
            accounts.entry(cn).or_default().0 = members;
        }
        for (cn, contacts) in self.contacts.into_lists() {
            accounts.entry(cn).or_default().1 = contacts;
        }
        accounts
    }
}

/// What a bulk read's item carries besides what is observed of it: its account.
pub(crate) trait Filed {
    fn take_customer_number(&mut self) -> Option<String>;
}

impl Filed for Member {
    fn take_customer_number(&mut self) -> Option<String> {
        self.customer_number.take()
    }
}

impl Filed for Contact {
    fn take_customer_number(&mut self) -> Option<String> {
        self.customer_number.take()
    }
}

/// A page as runs of its accounts, each run's items converted into the domain's types and its
/// list sized once. An item without its account (a portal's answer missing `customerNumber`)
/// belongs to none and is left out, as the bulk read always did.
pub(crate) fn filed<I: Filed, T: From<I>>(page: Vec<I>) -> FiledPage<T> {
    let keyed: Vec<(String, I)> = page
        .into_iter()
        .filter_map(|mut item| item.take_customer_number().map(|cn| (cn, item)))
        .collect();
    let lengths: Vec<usize> = keyed.chunk_by(|a, b| a.0 == b.0).map(<[_]>::len).collect();
    let mut items = keyed.into_iter();
    let mut runs = Vec::with_capacity(lengths.len());
    for length in lengths {
        let mut run = items.by_ref().take(length).peekable();
        let Some((cn, _)) = run.peek() else {
            continue;
        };
        let cn = cn.clone();
        let mut list = Vec::with_capacity(length);
        list.extend(run.map(|(_, item)| T::from(item)));
        runs.push((cn, list));
    }
    runs
}

/// Items by account, in the order the pages gave them: a run for each stretch of one
/// account. The reference portal orders its bulk pages by account, so each account is one run
/// and its list is sized once; SPEC does not promise that order, so an account met again is
/// joined to its first run at the end.
#[derive(Debug)]
struct Runs<T> {
    runs: Vec<(String, Vec<T>)>,
}

impl<T> Default for Runs<T> {
    fn default() -> Self {
        Runs { runs: Vec::new() }
    }
}

impl<T> Runs<T> {
    /// Files one page. An item without its account (a portal's answer missing
    /// `customerNumber`) belongs to none and is left out, as the bulk read always did.
    fn file<I: Filed>(&mut self, page: Vec<I>)
    where
        T: From<I>,
    {
        self.append(filed(page));
    }

    /// Files a page filed already: a run that continues the last one joins it.
    fn append(&mut self, page: FiledPage<T>) {
        for (cn, mut list) in page {
            match self.runs.last_mut() {
                Some((last, run)) if *last == cn => {
                    run.reserve_exact(list.len());
                    run.append(&mut list);
                }
                _ => self.runs.push((cn, list)),
            }
        }
    }

    /// One list per account.
    fn into_lists(self) -> HashMap<String, Vec<T>> {
        let mut lists: HashMap<String, Vec<T>> = HashMap::with_capacity(self.runs.len());
        for (cn, mut list) in self.runs {
            match lists.entry(cn) {
                Entry::Vacant(v) => {
                    v.insert(list);
                }
                Entry::Occupied(mut o) => o.get_mut().append(&mut list),
            }
        }
        lists
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::portal::Services;

    fn member(cn: &str, email: &str) -> Member {
        Member {
            customer_number: Some(cn.into()),
            email: email.into(),
            name: None,
            user_linked: false,
            roles: Vec::new(),
            services: Services::default(),
            notifications: Vec::new(),
            invitation: None,
            etag: "\"1\"".into(),
        }
    }

    fn emails(lists: &HashMap<String, Vec<ObservedMember>>, cn: &str) -> Vec<String> {
        lists[cn].iter().map(|m| m.email.clone()).collect()
    }

    #[test]
    fn an_account_across_two_pages_is_one_list_sized_exactly() {
        let mut runs = Runs::default();
        runs.file(vec![
            member("1", "a@x"),
            member("2", "b@x"),
            member("2", "c@x"),
        ]);
        runs.file(vec![member("2", "d@x"), member("3", "e@x")]);
        assert_eq!(runs.runs.len(), 3);
        assert_eq!(runs.runs[1].1.capacity(), 3);
        let lists = runs.into_lists();
        assert_eq!(emails(&lists, "1"), ["a@x"]);
        assert_eq!(emails(&lists, "2"), ["b@x", "c@x", "d@x"]);
        assert_eq!(emails(&lists, "3"), ["e@x"]);
    }

    #[test]
    fn an_account_met_again_out_of_order_keeps_every_member_in_the_order_read() {
        let mut runs = Runs::default();
        runs.file(vec![member("2", "a@x"), member("1", "b@x")]);
        runs.file(vec![
            member("2", "c@x"),
            member("1", "d@x"),
            member("2", "e@x"),
        ]);
        let lists = runs.into_lists();
        assert_eq!(lists.len(), 2);
        assert_eq!(emails(&lists, "1"), ["b@x", "d@x"]);
        assert_eq!(emails(&lists, "2"), ["a@x", "c@x", "e@x"]);
    }

    #[test]
    fn a_member_without_its_account_is_left_out() {
        let mut runs = Runs::default();
        let mut stray = member("1", "stray@x");
        stray.customer_number = None;
        runs.file(vec![stray, member("1", "a@x")]);
        let lists = runs.into_lists();
        assert_eq!(emails(&lists, "1"), ["a@x"]);
    }
}
