//! The `tasklight` binary: parses the command line and hands over to [`tasklight::cli`].

use std::process::ExitCode;

/// mimalloc instead of glibc's malloc: a request allocates and frees a few hundred small blocks
/// (headers, ids, log and span fields), and glibc's allocator took about 13% of the cached read's
/// time in the profile (`malloc`, `_int_malloc`, `_int_free`, `malloc_consolidate`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    tasklight::cli::main()
}
