//! Data port → peer batches.
#![no_main]

use oxidask_protocol::fuzz::{fuzz_target, Target};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fuzz_target(Target::DataResponse, data);
});
