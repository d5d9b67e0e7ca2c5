//! `vigil-reportd`: not built yet; says what it will do and exits with EX_UNAVAILABLE (69).

#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "vigil-reportd: not part of this release yet. It will: {}",
        vigil_reportd::PLANNED
    );
    ExitCode::from(69)
}
