//! rolecall: declarative access management for hosting-provider customer portals.
//!
//! Platform teams declare customer accounts, their members, the roles each member holds (with
//! optional `from`/`until` dates) and the account's notification contacts as YAML. rolecall
//! diffs that desired state against a portal's HTTP API and applies the grants, revocations and
//! invitations that make the portal match — from the command line (`rolecall plan`,
//! `rolecall apply`) or from a Kubernetes controller. The binary is a thin layer over this
//! library; the user guide is in the repository's `docs/`.
//!
//! The pieces, in the order data flows through them:
//!
//! - [`manifest`] reads YAML files into documents with positions and checks them, reporting
//!   every problem as a located [`manifest::Diagnostic`]; [`model`] holds the manifest kinds.
//! - [`domain`] is the desired state those checks produce ([`domain::DesiredAccount`]).
//! - [`plan`] diffs desired against observed state as a **pure function** — no I/O, no clock
//!   reads — into [`plan::AccountPlan`]s of changes and the portal operations that carry them
//!   out, refusing accounts a safety rule protects. [`plan::PlanDocument`] is the saved plan.
//! - [`render`] shows plans as text, Markdown or JSON.
//! - [`portal`] is the portal interface and its clients (HTTP, WHMCS, BILLmanager);
//!   [`reference`] is the reference portal (store, server, embedded sandbox).
//! - [`reconcile`] is the one pipeline both front ends use: load, choose each account's
//!   portal, observe, plan and apply, with the clock and the plan id passed in.
//! - [`cli`] (the command line) and [`controller`] (the Kubernetes controller) are the front
//!   ends: they parse, print and report, and go through [`reconcile`].
//!
//! # Example: plan a manifest against an empty portal
//!
//! ```
//! use std::collections::BTreeMap;
//!
//! use rolecall::manifest::{self, SourceFile};
//! use rolecall::plan::{self, Action, Context};
//! use rolecall::portal::{PrincipalKind, Whoami};
//! use rolecall::reference::store::reference_catalog;
//!
//! let yaml = r#"
//! apiVersion: rolecall.dev/v1alpha1
//! kind: CustomerAccount
//! metadata: {name: acme}
//! spec:
//!   customerNumber: "10042"
//!   timeZone: Europe/Zurich
//!   members:
//!     - email: alice@acme.example
//!       roles: [cockpit-access, customer-admin]
//! "#;
//! let now: jiff::Timestamp = "2026-11-26T09:00:00Z".parse()?;
//! let files = [SourceFile { name: "acme.yaml".into(), text: yaml.into() }];
//! let checked = manifest::check_files(&files, now);
//! assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
//!
//! // The portal has nothing yet: every declared thing is an addition.
//! let observed = BTreeMap::new();
//! let catalog = reference_catalog();
//! let principal = Whoami { email: None, kind: PrincipalKind::Operator };
//! let ctx = Context { catalog: &catalog, principal: &principal, now, plan_id: "example" };
//! let plans = plan::plan(&checked.desired.accounts, &observed, &ctx);
//!
//! let actions: Vec<Action> = plans[0].changes.iter().map(|c| c.action).collect();
//! assert_eq!(actions[0], Action::CreateAccount);
//! assert!(actions.contains(&Action::AddMember));
//! assert!(actions.contains(&Action::Invite));
//! assert!(plans[0].refused.is_none());
//! print!("{}", rolecall::render::text(&plans, rolecall::render::Style::Plain));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

pub mod cli;
pub mod controller;
pub mod domain;
#[doc(hidden)]
pub mod fuzzing;
pub mod manifest;
pub mod model;
pub mod plan;
pub mod portal;
pub mod reconcile;
pub mod reference;
pub mod render;
pub mod review;
pub mod workers;
