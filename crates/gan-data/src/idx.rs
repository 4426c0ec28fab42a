//! Reader and writer for the IDX format of MNIST and Fashion-MNIST, raw or gzip-compressed.
//!
//! An IDX file is a 4-byte magic number `00 00 <type> <rank>`, then `rank` big-endian `u32`
//! dimensions, then the payload in row-major order. Only the unsigned-byte type (`0x08`) is used
//! by these datasets and only it is accepted.
//!
//! The reader validates everything before trusting it: the magic, the rank, that the payload has
//! exactly the announced length, and that the announced length is possible at all for a file of
//! this size (a gzip stream cannot expand more than 1032:1). Memory grows only as data actually arrives, so a header claiming 2³¹ images
//! in a small file costs nothing but an error.
//!
//! ```
//! use gan_data::idx::{parse_idx, write_idx};
//! let mut bytes = Vec::new();
//! write_idx(&mut bytes, &[2, 2, 2], &[0, 1, 2, 3, 4, 5, 6, 7]).unwrap();
//! let arr = parse_idx(&bytes, "in-memory", 3).unwrap();
//! assert_eq!(arr.dims, vec![2, 2, 2]);
//! assert_eq!(arr.data[7], 7);
//! ```

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};

/// The largest expansion ratio deflate can reach (RFC 1951: 258-byte matches from 2-bit codes).
const MAX_DEFLATE_RATIO: u64 = 1032;
/// The IDX type byte for unsigned bytes.
const TYPE_U8: u8 = 0x08;

/// An IDX array of unsigned bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    /// Dimensions from the header, outermost first.
    pub dims: Vec<usize>,
    /// The payload, row-major.
    pub data: Vec<u8>,
}

/// Images from an idx3 file: `count` images of `rows × cols` bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxImages {
    /// Number of images.
    pub count: usize,
    /// Height of each image.
    pub rows: usize,
    /// Width of each image.
    pub cols: usize,
    /// `count × rows × cols` bytes, row-major.
    pub pixels: Vec<u8>,
}

/// Reads an idx3 file of images (raw or gzip).
pub fn read_idx_images(path: impl AsRef<Path>) -> Result<IdxImages> {
    let arr = read_idx(path, 3)?;
    Ok(IdxImages {
        count: arr.dims[0],
        rows: arr.dims[1],
        cols: arr.dims[2],
        pixels: arr.data,
    })
}

/// Reads an idx1 file of labels (raw or gzip).
pub fn read_idx_labels(path: impl AsRef<Path>) -> Result<Vec<u8>> {
    Ok(read_idx(path, 1)?.data)
}

/// Reads an IDX file of unsigned bytes with `rank` dimensions; gzip is detected by its magic
/// bytes, not by the file name.
pub fn read_idx(path: impl AsRef<Path>, rank: usize) -> Result<IdxArray> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    parse_idx(&bytes, path, rank)
}

/// Parses the bytes of an IDX file (raw or gzip) held in memory; `path` only names the source in
/// errors. This is the entry point of the fuzz target: no input makes it panic.
pub fn parse_idx(bytes: &[u8], path: impl AsRef<Path>, rank: usize) -> Result<IdxArray> {
    let path = path.as_ref();
    if bytes.len() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b {
        let limit = (bytes.len() as u64).saturating_mul(MAX_DEFLATE_RATIO);
        let decoder = flate2::read::GzDecoder::new(bytes);
        parse_stream(decoder, path, rank, limit, true)
    } else {
        parse_stream(bytes, path, rank, bytes.len() as u64, false)
    }
}

fn parse_stream<R: Read>(
    mut r: R,
    path: &Path,
    rank: usize,
    limit: u64,
    gzip: bool,
) -> Result<IdxArray> {
    let mut magic = [0u8; 4];
    read_header(&mut r, &mut magic, path, 4)?;
    let magic_u32 = u32::from_be_bytes(magic);
    if magic[0] != 0 || magic[1] != 0 || magic[2] != TYPE_U8 {
        return Err(DataError::BadMagic {
            path: path.into(),
            magic: magic_u32,
            expected_rank: rank,
        });
    }
    let found_rank = magic[3] as usize;
    if found_rank != rank {
        return Err(DataError::WrongRank {
            path: path.into(),
            expected: rank,
            found: found_rank,
        });
    }
    let mut dims = Vec::with_capacity(rank);
    let mut dim_bytes = [0u8; 4];
    for _ in 0..rank {
        read_header(&mut r, &mut dim_bytes, path, 4 * rank as u64)?;
        dims.push(u32::from_be_bytes(dim_bytes) as usize);
    }
    let header_len = 4 + 4 * rank as u64;
    let claimed: u128 = dims.iter().map(|&d| d as u128).product();
    let room = limit.saturating_sub(header_len) as u128;
    // A raw file announcing a little more than it holds was cut short; one announcing over twice
    // what it (or, for gzip, any stream of its size) can hold has a bad header.
    if claimed > room && (gzip || claimed > 2 * room) {
        return Err(DataError::HeaderTooLarge {
            path: path.into(),
            claimed,
            limit: limit.saturating_sub(header_len),
        });
    }
    let expected = claimed as u64;
    // Grow only as data arrives; read one byte past the end to detect trailing data (and, for
    // gzip, to reach the end of the stream so that its CRC is checked).
    let mut data = Vec::new();
    r.by_ref()
        .take(expected + 1)
        .read_to_end(&mut data)
        .map_err(|e| stream_error(path, e))?;
    let found = data.len() as u64;
    if found < expected {
        return Err(DataError::Truncated {
            path: path.into(),
            expected,
            found,
        });
    }
    if found > expected {
        let mut rest = Vec::new();
        let extra = 1 + r.take(1 << 20).read_to_end(&mut rest).unwrap_or(0) as u64;
        return Err(DataError::TrailingData {
            path: path.into(),
            expected,
            extra,
        });
    }
    Ok(IdxArray { dims, data })
}

fn read_header<R: Read>(r: &mut R, buf: &mut [u8], path: &Path, header_len: u64) -> Result<()> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => DataError::Truncated {
            path: path.into(),
            expected: header_len,
            found: 0,
        },
        _ => stream_error(path, e),
    })
}

fn stream_error(path: &Path, e: std::io::Error) -> DataError {
    match e.kind() {
        // flate2 reports a gzip stream cut short as UnexpectedEof, bad data as InvalidInput/Data.
        std::io::ErrorKind::UnexpectedEof => DataError::CorruptGzip {
            path: path.into(),
            reason: "stream ends early (truncated)".into(),
        },
        std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData => {
            DataError::CorruptGzip {
                path: path.into(),
                reason: e.to_string(),
            }
        }
        _ => DataError::io(path, e),
    }
}

/// Writes an IDX file of unsigned bytes (uncompressed) to `w`.
pub fn write_idx<W: Write>(mut w: W, dims: &[usize], data: &[u8]) -> std::io::Result<()> {
    let n: usize = dims.iter().product();
    if n != data.len() || dims.len() > 255 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("dims {dims:?} do not match {} bytes of data", data.len()),
        ));
    }
    w.write_all(&[0, 0, TYPE_U8, dims.len() as u8])?;
    for &d in dims {
        let d = u32::try_from(d).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "dimension over u32")
        })?;
        w.write_all(&d.to_be_bytes())?;
    }
    w.write_all(data)
}

/// Writes an IDX file gzip-compressed (level 9, no file name or time stamp in the gzip header,
/// so the same data always gives the same bytes) to `path`, atomically: it writes a temporary
/// file beside it and renames it into place.
pub fn write_idx_gz(path: impl AsRef<Path>, dims: &[usize], data: &[u8]) -> Result<()> {
    let path = path.as_ref();
    let tmp: PathBuf = path.with_extension("gz.partial");
    let write = || -> std::io::Result<()> {
        let file = std::fs::File::create(&tmp)?;
        let mut enc = flate2::GzBuilder::new()
            .mtime(0)
            .write(std::io::BufWriter::new(file), flate2::Compression::best());
        write_idx(&mut enc, dims, data)?;
        enc.finish()?.flush()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        DataError::io(path, e)
    })
}
