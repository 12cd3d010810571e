//! The local stack: the whole system on one machine, without an AWS account.

pub mod demo;
pub mod http;
pub mod senders;
pub mod stack;
