//! vigilctl: the command-line client of Vigil.
//!
//! Owns: the reference client of the gRPC API (pairing, credentials on
//! disk, TLS to the hub, and one command per call of the API), and the
//! local views on the hub machine: `status --local` maps the shared sensor
//! table directly, and `pair` asks the hub for a pairing code over the
//! bootstrap socket (both need the hub's user or root). Its exit codes
//! (0 ok, 1 failed, 2 bad flags, 3 hub unreachable, 4 not paired, 5 wrong
//! PIN or role, 6 locked out, 7 refused by the alarm's rules, 78 bad
//! config) and its `--json` field names are interfaces scripts rely on.
//!
//! Must never: write the table, hold a session longer than one command,
//! keep a PIN anywhere, or let its private key leave the credentials
//! directory.
//!
//! Code map:
//! - [`cli`]: the global flags (`--json`, `--hub`, `--credentials`,
//!   `--config`/`--demo`) and [`cli::run`], which `main.rs` calls.
//! - [`commands`]: one module per group of commands, each with its flags
//!   and handler; the list of commands is in `commands/mod.rs`.
//! - `hub`: the one connection to the hub for a command (stored
//!   credentials, a gRPC status becomes an [`Error`]).
//! - `output`: the one renderer, text or `--json`, and the words for the
//!   API's enums.
//! - [`error`]: every failure, typed, with its exit code; gRPC codes map
//!   to exit codes there.
//! - [`remote`]: credentials on disk, TLS channels, renewal, and pairing
//!   itself (a key made here, a CA pinned by the token).
//! - [`token`]: the pairing token's grammar (docs/pairing.md) and its QR
//!   code; it depends on no other module here (`error` wraps its errors).
//! - [`local`]: the sensor table and the bootstrap socket on the hub
//!   machine.

#![forbid(unsafe_code)]

pub mod cli;
pub mod commands;
pub mod error;
pub mod hub;
pub mod local;
pub mod output;
pub mod remote;
pub mod token;

pub use error::Error;
pub use local::{
    LocalError, LocalStatus, SensorStatus, local_status, read_table, request_pairing_code,
};
