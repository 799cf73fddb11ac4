//! Integration tests: real SQLite, PostgreSQL and MariaDB (see helpers.rs).
//! Each test is named for the behaviour it proves.

mod consume;
mod daemon;
mod domain;
mod examples;
mod faults;
mod files;
mod helpers;
mod log;
mod protect;
mod pull;
mod push;
mod reconcile;
mod rejects;
mod report;
mod schema;
mod staged;
mod twoway;
mod types;
