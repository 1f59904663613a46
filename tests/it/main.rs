//! The one integration-test binary. Everything is network-free: Stripe is the built-in
//! simulator or a stub on loopback that the tests start themselves.

mod catalog;
mod cli;
mod dataprep;
mod decode;
mod defaults;
mod errors;
mod flows;
mod mapping;
mod pipeline;
mod replay;
mod schedule;
mod sim;
mod source;
mod source_retry;
mod support;
mod upload;
mod upload_faults;
mod xdm;
mod xdm_rules;
