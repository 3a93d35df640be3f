//! Feeds arbitrary bytes to the batch decoder; any panic is a bug.
//! Run: `cd shared/fuzz && cargo +nightly fuzz run decode_batch`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(batch) = dcmms_shared::wire::decode(data) {
        // Whatever decodes must re-encode and decode to the same batch.
        let again = dcmms_shared::wire::encode(&batch, dcmms_shared::wire::Compression::None)
            .expect("a decoded batch re-encodes");
        let back = dcmms_shared::wire::decode(&again).expect("re-encoded batch decodes");
        assert_eq!(back.sequence, batch.sequence);
        assert_eq!(back.sample_count(), batch.sample_count());
    }
});
