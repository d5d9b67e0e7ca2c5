//! `vigil-camd`: not built yet; says what it will do and exits with EX_UNAVAILABLE (69).

#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "vigil-camd: not part of this release yet. It will: {}",
        vigil_camd::PLANNED
    );
    ExitCode::from(69)
}
