//! End-to-end tests: the real `sluice` binary on real plugins built from `plugins/` (run
//! `cargo xtask plugins` first; `cargo xtask test` does). Each test gets its own cache and run
//! folders in a temp dir.

mod support;

mod bad_input;
mod big;
mod cache;
mod capabilities;
mod cargo_workspace;
mod chain;
mod ci_reports;
mod cli;
mod cluster_trust;
mod concurrency;
mod disk_full;
mod distributed;
mod distributed_rules;
mod dns;
mod external_links;
mod failures;
mod faults;
mod flaky;
mod grants;
mod graph;
mod init;
mod init_go;
mod learn;
mod nats_jetstream;
mod nats_roles;
mod phases;
mod polyglot;
mod real_content;
mod real_projects;
mod real_sites;
mod report_page;
mod scaffold;
mod seams;
mod security;
mod serve;
mod shared_cache;
mod sharing;
mod stage_alone;
mod stage_cache;
mod traces;
mod volumes;
mod workspace_packs;
