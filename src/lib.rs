//! rolecall: declarative access management for hosting-provider customer portals.
//!
//! The manifests (`model`, `manifest`) describe the desired state; the portal (`portal`) is
//! observed and changed through one interface; the planner diffs the two as a pure function.
#![forbid(unsafe_code)]

pub mod apply;
pub mod cli;
pub mod controller;
pub mod domain;
pub mod manifest;
pub mod model;
pub mod plan;
pub mod portal;
pub mod render;
