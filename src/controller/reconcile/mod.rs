//! One reconcile of a CustomerAccount (observe → plan → apply, or only report) and of a Portal
//! (`whoami` → `Ready`).

mod account;
mod apply;
mod cleanup;
mod connect;
mod events;
mod portal;
mod statuses;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::controller::Action as Requeue;
use kube::runtime::events::{Event, EventType};
use kube::runtime::finalizer::{Event as Finalized, finalizer};
use kube::{Resource, ResourceExt};

use super::billmgr;
use super::connections::{Connected, ConnectionKey};
use super::desired::{self, source_name};
use super::metrics::Outcome;
use super::status::{apply_status, condition, object_ready};
use super::whmcs;
use super::{Context, Error, FINALIZER, key_of};
use crate::domain::{DesiredAccount, Mode, email_key};
use crate::model::{
    AccountMember, CustomerAccount, CustomerAccountStatus, NotificationContact, PlanSummary,
    Portal, PortalStatus, SecretKeyRef, WhmcsInvitation,
};
use crate::plan::{AccountPlan, Action, Context as PlanContext, ObservedAccount, plan_account};
use crate::portal::Portal as _;
use crate::portal::http::{AnswerHook, HttpOptions, Token};
use crate::portal::whmcs::{InvitationStore, MemoryInvitations, WhmcsOptions};
use crate::reconcile::connect::{AnyPortal, connect_token, connect_whmcs};
use crate::reconcile::{FailureCause, apply_account, observe_account};

use account::*;
pub(super) use account::{account, account_error};
use apply::*;
use cleanup::*;
use connect::*;
use events::*;

pub(super) use portal::{portal, portal_retry};
use statuses::*;
