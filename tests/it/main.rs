//! The one integration-test binary. Everything is network-free: Stripe is the built-in
//! simulator or a stub on loopback that the tests start themselves.

mod alerts;
mod budgets;
mod catalog;
mod changes;
mod cli;
mod connected;
mod console;
mod console_browser;
mod crash;
mod dataprep;
mod decode;
mod defaults;
mod errors;
mod flows;
mod mapping;
mod mapping_slt;
mod mirror;
mod mirror_cli;
mod oauth;
mod pipeline;
mod registry;
mod replay;
mod resume;
mod schedule;
mod serve;
mod sim;
mod source;
mod source_retry;
mod support;
mod upload;
mod upload_faults;
mod windows;
mod workflow;
mod xdm;
mod xdm_rules;
