//! Integration tests: real SQLite, PostgreSQL and MariaDB (see helpers.rs).
//! Each test is named for the behaviour it proves.

mod faults;
mod files;
mod helpers;
mod pull;
mod types;
