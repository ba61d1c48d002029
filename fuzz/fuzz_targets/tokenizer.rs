#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| welt_fuzz::tokenizer(data));
