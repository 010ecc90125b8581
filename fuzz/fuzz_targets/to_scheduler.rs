//! Client → scheduler batches (what a scheduler decodes from clients).
#![no_main]

use oxidask_protocol::fuzz::{fuzz_target, Target};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fuzz_target(Target::ToScheduler, data);
});
