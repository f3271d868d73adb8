#![no_main]
// The body lives in habla_message::fuzzing so that the stable test
// crates/habla-message/tests/fuzz_replay.rs replays the corpus through it.
libfuzzer_sys::fuzz_target!(|data: &[u8]| habla_message::fuzzing::roundtrip(data));
