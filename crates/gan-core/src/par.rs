//! Output buffers of parallel loops, zeroed chunk by chunk on the threads that fill them.
//!
//! `vec![0; n]` followed by a parallel loop zeroes the whole buffer on the calling thread while
//! the other threads wait; for a step's activations (megabytes each) that was several percent
//! of a DCGAN step spent with one core idle. Here each chunk is zeroed by the thread that is
//! about to write it, in parallel and while the chunk is in that core's cache.

use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Sets every element of `c` to `zero` and returns it as an initialised slice.
pub(crate) fn zeroed<T: Copy>(c: &mut [MaybeUninit<T>], zero: T) -> &mut [T] {
    for v in c.iter_mut() {
        v.write(zero);
    }
    // SAFETY: every element was initialised just above, and `MaybeUninit<T>` has the size,
    // alignment and layout of `T`.
    unsafe { &mut *(c as *mut [MaybeUninit<T>] as *mut [T]) }
}

/// A new vector of `n` elements cut into chunks of `chunk` (the last may be shorter): each chunk
/// is set to `zero` and then passed to `f(chunk_index, chunk)`, in parallel when `parallel` is
/// set. Equal to `vec![zero; n]` followed by a loop over its chunks.
pub(crate) fn par_chunks_filled<T: Copy + Send + Sync>(
    n: usize,
    chunk: usize,
    zero: T,
    parallel: bool,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) -> Vec<T> {
    let mut v = Vec::with_capacity(n);
    if n == 0 {
        return v;
    }
    let spare = &mut v.spare_capacity_mut()[..n];
    let run = |(i, c): (usize, &mut [MaybeUninit<T>])| f(i, zeroed(c, zero));
    if parallel {
        spare.par_chunks_mut(chunk.max(1)).enumerate().for_each(run);
    } else {
        spare.chunks_mut(chunk.max(1)).enumerate().for_each(run);
    }
    // SAFETY: the chunks cover the first `n` elements and `run` initialised each of them (a
    // panic in `f` propagates before this line, leaving the vector empty).
    unsafe { v.set_len(n) };
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filled_chunks_equal_a_zeroed_vector_then_a_loop() {
        for (n, chunk) in [(0, 3), (1, 1), (10, 3), (10, 10), (10, 64), (1000, 7)] {
            for parallel in [false, true] {
                let got = par_chunks_filled(n, chunk, 0.0f32, parallel, |i, c| {
                    for (j, v) in c.iter_mut().enumerate().filter(|(j, _)| j % 2 == 0) {
                        *v = (i * chunk + j) as f32;
                    }
                });
                let mut want = vec![0.0f32; n];
                for (i, c) in want.chunks_mut(chunk).enumerate() {
                    for (j, v) in c.iter_mut().enumerate().filter(|(j, _)| j % 2 == 0) {
                        *v = (i * chunk + j) as f32;
                    }
                }
                assert_eq!(got, want, "n {n} chunk {chunk} parallel {parallel}");
            }
        }
    }
}
