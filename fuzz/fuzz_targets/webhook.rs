//! Fuzzes the whole request path: arbitrary bodies (seeded with the updates
//! in events/), arbitrary secret headers and methods, base64 or not, into
//! the real handler. The run and its checks are in case.rs, which `cargo
//! test` also runs over the seeds on stable.
#![no_main]

mod case;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    case::check(case::world(), data);
});
