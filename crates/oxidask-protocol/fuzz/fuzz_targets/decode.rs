#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    oxidask_protocol::fuzz::fuzz_one(data);
});
