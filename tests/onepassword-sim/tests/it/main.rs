//! The simulator's one integration-test binary.

mod support;

mod binary;
mod control_api;
mod events_api;
mod faults;
mod lifecycle;
mod scim2_tester;
mod scim_groups;
mod scim_users;
mod traffic;
