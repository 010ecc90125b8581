//! A task's detached spec, as a worker decodes it, then its names resolved.
#![no_main]

use oxidask_protocol::fuzz::{fuzz_target, Target};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fuzz_target(Target::Spec, data);
});
