//! Fuzz the IDX parser: any bytes, raw or gzip, for both ranks, must give a value or a typed
//! error, never a panic or a huge allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for rank in [1, 3] {
        if let Ok(arr) = gan_data::idx::parse_idx(data, "fuzz-input", rank) {
            assert_eq!(arr.dims.len(), rank);
            assert_eq!(arr.dims.iter().product::<usize>(), arr.data.len());
        }
    }
});
