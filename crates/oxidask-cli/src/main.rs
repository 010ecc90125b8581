//! The `oxidask` binary; everything is in the library (`oxidask_cli::main_with_args`).

use std::process::ExitCode;

/// mimalloc: faster small allocations and far fewer page faults on big graphs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    oxidask_cli::tune_mimalloc();
    oxidask_cli::disable_transparent_huge_pages();
    oxidask_cli::main_with_args(std::env::args())
}
