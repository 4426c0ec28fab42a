//! `cargo xtask make-unpaired thin2thick|mnist2fashion` and `cargo xtask fetch-cyclegan NAME`:
//! unpaired datasets in CycleGAN's layout (`trainA`, `trainB`, `testA`, `testB` folders of
//! PNG files).
//!
//! `thin2thick` has a known answer: each split of MNIST (`datasets/mnist` if fetched, else the
//! embedded `datasets/mnist-mini`) is shuffled with a fixed seed and cut in two halves; A is the
//! first half as it is, B the second half dilated by a 3×3 square
//! ([`gan_data::morphology::dilate`]). The two sets share no image, so nothing pairs them, yet
//! the true A→B map is the dilation, against which `gan-cli eval-translation` measures a
//! trained G. Files are named by their position in the shuffled order and their index in the MNIST
//! split (`00007_00042.png`), so that the sorted order is not sorted by label and the
//! disjointness can be checked.
//!
//! `mnist2fashion`: A = MNIST digits, B = as many Fashion-MNIST items (from
//! `datasets/fashion-mnist`), a qualitative demo.
//!
//! `fetch-cyclegan NAME` downloads the standard CycleGAN datasets from the Hugging Face Hub's
//! `huggan/NAME` (parquet files with one image column per domain) through hf-hub; `--from`
//! imports a local copy instead (a folder in the standard layout, e.g. the unpacked
//! `NAME.zip` of the original authors), and without network it says so and names `--from`.
//! Everything is written to a temporary folder first and renamed into place, so an interrupted
//! task never leaves a half-written dataset.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use gan_core::rng::SeededRng;
use gan_data::idx::IdxImages;
use gan_data::morphology::{dilate, THIN2THICK_RADIUS};
use sha2::Digest;

/// The four folders of the layout.
pub const SPLITS: [&str; 4] = ["trainA", "trainB", "testA", "testB"];

/// The seed of `thin2thick`'s split into A and B (fixed: the dataset is a fixture).
const SPLIT_SEED: u64 = 6;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// A = MNIST digits, B = other MNIST digits dilated by a 3×3 square.
    Thin2thick,
    /// A = MNIST digits, B = Fashion-MNIST items.
    Mnist2fashion,
}

#[derive(clap::Args)]
pub struct MakeArgs {
    /// thin2thick or mnist2fashion.
    #[arg(value_enum)]
    kind: Kind,
    /// Output folder (default `datasets/<kind>`).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// MNIST folder (default `datasets/mnist` if complete, else `datasets/mnist-mini`).
    #[arg(long)]
    mnist: Option<PathBuf>,
    /// Fashion-MNIST folder for mnist2fashion.
    #[arg(long, default_value = "datasets/fashion-mnist")]
    fashion: PathBuf,
    /// At most this many images per folder.
    #[arg(long)]
    limit: Option<usize>,
}

#[derive(clap::Args)]
pub struct FetchArgs {
    /// horse2zebra, monet2photo, apple2orange, summer2winter_yosemite, ...
    name: String,
    /// Output folder (default `datasets/NAME`).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Import a local copy (a folder holding trainA, trainB, testA, testB, or one level above
    /// it) instead of downloading.
    #[arg(long)]
    from: Option<PathBuf>,
}

/// What was written, per folder.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// Images in trainA, trainB, testA, testB.
    pub counts: [usize; 4],
}

pub fn make(root: &Path, args: MakeArgs) -> anyhow::Result<()> {
    let name = match args.kind {
        Kind::Thin2thick => "thin2thick",
        Kind::Mnist2fashion => "mnist2fashion",
    };
    let dir = root.join(
        args.dir
            .unwrap_or_else(|| PathBuf::from("datasets").join(name)),
    );
    let mnist = match args.mnist {
        Some(p) => root.join(p),
        None => {
            let full = root.join("datasets/mnist");
            if gan_data::mnist::is_complete(&full) {
                full
            } else {
                root.join("datasets/mnist-mini")
            }
        }
    };
    let w = match args.kind {
        Kind::Thin2thick => make_thin2thick(&mnist, &dir, args.limit)?,
        Kind::Mnist2fashion => {
            make_mnist2fashion(&mnist, &root.join(&args.fashion), &dir, args.limit)?
        }
    };
    println!(
        "{name}: wrote {} / {} train and {} / {} test images (A / B) from {} into {}",
        w.counts[0],
        w.counts[1],
        w.counts[2],
        w.counts[3],
        mnist.display(),
        dir.display()
    );
    Ok(())
}

/// Reads one MNIST-layout split's images.
fn read_images(dir: &Path, stem: &str) -> anyhow::Result<IdxImages> {
    let path = gan_data::mnist::find_file(dir, stem)?;
    Ok(gan_data::idx::read_idx_images(&path)?)
}

/// A permutation of `0..n` fixed by `seed` and `stream`.
fn permutation(n: usize, seed: u64, stream: u64) -> Vec<usize> {
    let mut rng = SeededRng::with_stream(seed, stream);
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        p.swap(i, j);
    }
    p
}

/// `POS_INDEX.png`: sorted file order is the shuffled order (MNIST files are often sorted by
/// label, and a `--max-dataset-size` cap takes the first files), and the index in the source
/// split stays visible.
pub fn png_name(pos: usize, index: usize) -> String {
    format!("{pos:05}_{index:05}.png")
}

fn save_png(path: &Path, rows: usize, cols: usize, pixels: &[u8]) -> anyhow::Result<()> {
    image::GrayImage::from_raw(cols as u32, rows as u32, pixels.to_vec())
        .context("bad image buffer")?
        .save(path)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Writes into a fresh temporary sibling of `dir`, then replaces `dir` by it.
fn write_atomically(
    dir: &Path,
    fill: impl FnOnce(&Path) -> anyhow::Result<Written>,
) -> anyhow::Result<Written> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let file_name = dir
        .file_name()
        .with_context(|| format!("{}: not a folder name", dir.display()))?;
    let tmp = parent.join(format!(
        ".{}.partial-{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    for s in SPLITS {
        std::fs::create_dir_all(tmp.join(s))
            .with_context(|| format!("cannot create {}", tmp.join(s).display()))?;
    }
    let written = match fill(&tmp) {
        Ok(w) => w,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    if dir.exists() {
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("cannot replace {}", dir.display()))?;
    }
    std::fs::rename(&tmp, dir).with_context(|| format!("cannot write {}", dir.display()))?;
    Ok(written)
}

/// Builds `thin2thick` from the MNIST folder `mnist` into `dir`; see the module docs.
pub fn make_thin2thick(mnist: &Path, dir: &Path, limit: Option<usize>) -> anyhow::Result<Written> {
    let splits = [
        (gan_data::mnist::TRAIN_IMAGES, 0usize),
        (gan_data::mnist::TEST_IMAGES, 2),
    ];
    let mut loaded = Vec::new();
    for (stem, _) in splits {
        loaded.push(read_images(mnist, stem)?);
    }
    write_atomically(dir, |tmp| {
        let mut w = Written::default();
        for ((_, slot), imgs) in splits.iter().zip(&loaded) {
            let (h, wd) = (imgs.rows, imgs.cols);
            let order = permutation(imgs.count, SPLIT_SEED, *slot as u64);
            let half = imgs.count / 2;
            let cap = limit.unwrap_or(usize::MAX);
            let (a_idx, b_idx) = order.split_at(half);
            for (k, idx) in [a_idx, b_idx].into_iter().enumerate() {
                let folder = tmp.join(SPLITS[slot + k]);
                for (pos, &i) in idx.iter().take(cap).enumerate() {
                    let img = &imgs.pixels[i * h * wd..(i + 1) * h * wd];
                    let px = if k == 0 {
                        img.to_vec()
                    } else {
                        dilate(img, h, wd, THIN2THICK_RADIUS)
                    };
                    save_png(&folder.join(png_name(pos, i)), h, wd, &px)?;
                    w.counts[slot + k] += 1;
                }
            }
        }
        Ok(w)
    })
}

/// Builds `mnist2fashion` into `dir`: A from MNIST, B as many Fashion-MNIST items per split.
pub fn make_mnist2fashion(
    mnist: &Path,
    fashion: &Path,
    dir: &Path,
    limit: Option<usize>,
) -> anyhow::Result<Written> {
    let stems = [gan_data::mnist::TRAIN_IMAGES, gan_data::mnist::TEST_IMAGES];
    let mut loaded = Vec::new();
    for stem in stems {
        let fashion_dir = fashion;
        let a = read_images(mnist, stem)?;
        let b = read_images(fashion_dir, stem).with_context(|| {
            format!(
                "mnist2fashion needs Fashion-MNIST in {} (cargo xtask fetch-fashion-mnist)",
                fashion.display()
            )
        })?;
        loaded.push((a, b));
    }
    write_atomically(dir, |tmp| {
        let mut w = Written::default();
        for (s, (a, b)) in loaded.iter().enumerate() {
            let n = a.count.min(b.count).min(limit.unwrap_or(usize::MAX));
            let order_a = permutation(a.count, SPLIT_SEED, 10 + s as u64);
            let order_b = permutation(b.count, SPLIT_SEED, 20 + s as u64);
            for (k, imgs) in [a, b].into_iter().enumerate() {
                let slot = 2 * s + k;
                let folder = tmp.join(SPLITS[slot]);
                let (h, wd) = (imgs.rows, imgs.cols);
                for (pos, &i) in [&order_a, &order_b][k].iter().take(n).enumerate() {
                    let img = &imgs.pixels[i * h * wd..(i + 1) * h * wd];
                    save_png(&folder.join(png_name(pos, i)), h, wd, img)?;
                    w.counts[slot] += 1;
                }
            }
        }
        Ok(w)
    })
}

/// `cargo xtask fetch-cyclegan NAME`.
pub fn fetch(root: &Path, args: FetchArgs) -> anyhow::Result<()> {
    let name = &args.name;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        bail!("{name:?} is not a CycleGAN dataset name (letters, digits and _ only)");
    }
    let dir = root.join(
        args.dir
            .unwrap_or_else(|| PathBuf::from("datasets").join(name)),
    );
    if let Some(from) = &args.from {
        let w = import_folder(from, &dir)?;
        return report(name, &dir, &w);
    }
    if is_complete(&dir) {
        println!("{name}: already present in {}", dir.display());
        return Ok(());
    }
    match download(name, &dir) {
        Ok(w) => report(name, &dir, &w),
        Err(e) => bail!(
            "cannot download huggan/{name} from the Hugging Face Hub ({e:#}). Without network, \
             import a local copy: cargo xtask fetch-cyclegan {name} --from PATH (a folder holding \
             trainA, trainB, testA and testB, e.g. the unpacked {name}.zip of the CycleGAN authors)"
        ),
    }
}

fn report(name: &str, dir: &Path, w: &Written) -> anyhow::Result<()> {
    println!(
        "{name}: {} / {} train and {} / {} test images (A / B) in {}",
        w.counts[0],
        w.counts[1],
        w.counts[2],
        w.counts[3],
        dir.display()
    );
    Ok(())
}

/// Whether `dir` holds the four folders, each with at least one image.
pub fn is_complete(dir: &Path) -> bool {
    SPLITS
        .iter()
        .all(|s| gan_data::image_folder::list_images(&dir.join(s)).is_ok())
}

/// Copies a local dataset in the standard layout (at `from` or in its only subfolder, as a zip
/// unpacks), checking that every image decodes.
pub fn import_folder(from: &Path, dir: &Path) -> anyhow::Result<Written> {
    let src = if from.join("trainA").is_dir() {
        from.to_path_buf()
    } else {
        let subs: Vec<PathBuf> = std::fs::read_dir(from)
            .with_context(|| format!("cannot read {}", from.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("trainA").is_dir())
            .collect();
        match subs.as_slice() {
            [one] => one.clone(),
            _ => bail!(
                "{}: expected the folders trainA, trainB, testA and testB (here or in one \
                 subfolder)",
                from.display()
            ),
        }
    };
    let files: Vec<Vec<PathBuf>> = SPLITS
        .iter()
        .map(|s| gan_data::image_folder::list_images(&src.join(s)))
        .collect::<Result<_, _>>()?;
    for f in files.iter().flatten() {
        image::image_dimensions(f)
            .with_context(|| format!("{}: not a readable image", f.display()))?;
    }
    write_atomically(dir, |tmp| {
        let mut w = Written::default();
        for (k, list) in files.iter().enumerate() {
            for f in list {
                let dest = tmp
                    .join(SPLITS[k])
                    .join(f.file_name().context("file name")?);
                std::fs::copy(f, &dest).with_context(|| format!("cannot copy {}", f.display()))?;
                w.counts[k] += 1;
            }
        }
        Ok(w)
    })
}

/// Downloads `huggan/NAME`'s train and test parquet files through hf-hub and writes their
/// images.
fn download(name: &str, dir: &Path) -> anyhow::Result<Written> {
    let api = hf_hub::api::sync::ApiBuilder::new()
        .with_progress(true)
        .build()?;
    // The uploaded files on `main`, else the hub's parquet conversion branch.
    let candidates = [
        ("main", "data/{split}-00000-of-00001.parquet"),
        ("refs/convert/parquet", "default/{split}/0000.parquet"),
    ];
    let mut locals = Vec::new();
    for split in ["train", "test"] {
        let mut errors = Vec::new();
        let found = candidates.iter().find_map(|(rev, pattern)| {
            let repo = api.repo(hf_hub::Repo::with_revision(
                format!("huggan/{name}"),
                hf_hub::RepoType::Dataset,
                rev.to_string(),
            ));
            let file = pattern.replace("{split}", split);
            repo.get(&file)
                .map_err(|e| errors.push(format!("{file} at {rev}: {e}")))
                .ok()
        });
        match found {
            Some(p) => locals.push(p),
            None => bail!("no {split} split found: {}", errors.join("; ")),
        }
    }
    write_atomically(dir, |tmp| {
        let mut w = Written::default();
        for (s, local) in locals.iter().enumerate() {
            let [a, b] = parquet_images(local)?;
            for (k, imgs) in [a, b].into_iter().enumerate() {
                let folder = tmp.join(SPLITS[2 * s + k]);
                for (i, bytes) in imgs.iter().enumerate() {
                    let img = image::load_from_memory(bytes).with_context(|| {
                        format!("{}: image {i}: not decodable", local.display())
                    })?;
                    let p = folder.join(format!("{i:05}.png"));
                    img.save(&p)
                        .with_context(|| format!("cannot write {}", p.display()))?;
                    w.counts[2 * s + k] += 1;
                }
            }
        }
        Ok(w)
    })
}

/// The encoded images of the two domains in a parquet file whose columns are named `…A` and
/// `…B` (`imageA`, `imageB`), each a binary or a `{bytes, path}` group; null cells and repeats
/// of the same image (rows padded to the larger domain) are skipped.
pub fn parquet_images(path: &Path) -> anyhow::Result<[Vec<Vec<u8>>; 2]> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let reader = SerializedFileReader::new(file)
        .with_context(|| format!("{}: not a parquet file", path.display()))?;
    let mut out: [Vec<Vec<u8>>; 2] = [Vec::new(), Vec::new()];
    let mut seen: [HashSet<Vec<u8>>; 2] = [HashSet::new(), HashSet::new()];
    for (i, row) in reader.get_row_iter(None)?.enumerate() {
        let row = row.with_context(|| format!("{}: row {i}", path.display()))?;
        for (col, field) in row.get_column_iter() {
            let domain = match col.chars().last() {
                Some('A') => 0,
                Some('B') => 1,
                _ => continue,
            };
            let bytes = match field {
                Field::Bytes(b) => Some(b.data().to_vec()),
                Field::Group(g) => g.get_column_iter().find_map(|(n, f)| match f {
                    Field::Bytes(b) if n == "bytes" => Some(b.data().to_vec()),
                    _ => None,
                }),
                _ => None,
            };
            if let Some(b) = bytes {
                let digest = sha2::Sha256::digest(&b).to_vec();
                if seen[domain].insert(digest) {
                    out[domain].push(b);
                }
            }
        }
    }
    if out[0].is_empty() || out[1].is_empty() {
        bail!(
            "{}: found no images in columns named ...A and ...B",
            path.display()
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The source index encoded by [`png_name`].
    fn source_index(file_name: &str) -> usize {
        let stem = file_name.strip_suffix(".png").expect("a png");
        stem.split_once('_')
            .expect("POS_INDEX")
            .1
            .parse()
            .expect("a number")
    }

    /// A fake MNIST folder: `n_train` and `n_test` distinct random 6×5 images (plus labels).
    fn fake_mnist(dir: &Path, n_train: usize, n_test: usize) -> [Vec<u8>; 2] {
        let mut rng = SeededRng::new(9);
        let mut out = [Vec::new(), Vec::new()];
        for (k, (n, images, labels)) in [
            (
                n_train,
                gan_data::mnist::TRAIN_IMAGES,
                gan_data::mnist::TRAIN_LABELS,
            ),
            (
                n_test,
                gan_data::mnist::TEST_IMAGES,
                gan_data::mnist::TEST_LABELS,
            ),
        ]
        .into_iter()
        .enumerate()
        {
            // Sparse strokes so that dilation changes something.
            let px: Vec<u8> = (0..n * 30)
                .map(|_| {
                    if rng.next_u64() % 5 == 3 {
                        (rng.next_u64() % 256) as u8
                    } else {
                        0
                    }
                })
                .collect();
            gan_data::idx::write_idx_gz(dir.join(format!("{images}.gz")), &[n, 6, 5], &px).unwrap();
            gan_data::idx::write_idx_gz(dir.join(format!("{labels}.gz")), &[n], &vec![0u8; n])
                .unwrap();
            out[k] = px;
        }
        out
    }

    fn read_folder(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let p = e.unwrap().path();
                let img = image::open(&p).unwrap().to_luma8();
                assert_eq!(img.dimensions(), (5, 6));
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    img.into_raw(),
                )
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn thin2thick_sets_are_disjoint_and_b_is_dilated() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("mnist");
        std::fs::create_dir_all(&src).unwrap();
        let pixels = fake_mnist(&src, 21, 10);
        let out = tmp.path().join("thin2thick");
        let w = make_thin2thick(&src, &out, None).unwrap();
        assert_eq!(w.counts, [10, 11, 5, 5]);
        for (split, px) in pixels.iter().enumerate() {
            let a = read_folder(&out.join(SPLITS[2 * split]));
            let b = read_folder(&out.join(SPLITS[2 * split + 1]));
            let ia: HashSet<usize> = a.iter().map(|(n, _)| source_index(n)).collect();
            let ib: HashSet<usize> = b.iter().map(|(n, _)| source_index(n)).collect();
            assert_eq!(ia.len(), a.len());
            assert!(
                ia.is_disjoint(&ib),
                "split {split}: A and B share a source image"
            );
            assert_eq!(
                ia.len() + ib.len(),
                px.len() / 30,
                "every image is used once"
            );
            for (name, img) in &a {
                let i = source_index(name);
                assert_eq!(
                    img,
                    &px[i * 30..(i + 1) * 30],
                    "{name}: A is the digit as is"
                );
            }
            let mut changed = 0;
            for (name, img) in &b {
                let i = source_index(name);
                let orig = &px[i * 30..(i + 1) * 30];
                assert_eq!(
                    img,
                    &dilate(orig, 6, 5, 1),
                    "{name}: B is the dilated digit"
                );
                changed += usize::from(img.as_slice() != orig);
            }
            assert!(changed > 0);
        }
        // The sorted order is shuffled (not the source order), and it is reproducible.
        let names: Vec<usize> = read_folder(&out.join("trainA"))
            .iter()
            .map(|(n, _)| source_index(n))
            .collect();
        assert!(names.windows(2).any(|w| w[0] > w[1]), "{names:?}");
        let again = tmp.path().join("again");
        make_thin2thick(&src, &again, Some(3)).unwrap();
        let capped: Vec<usize> = read_folder(&again.join("trainA"))
            .iter()
            .map(|(n, _)| source_index(n))
            .collect();
        assert_eq!(capped, names[..3]);
        // A missing source names the file.
        let err = make_thin2thick(&tmp.path().join("nowhere"), &again, None).unwrap_err();
        assert!(
            format!("{err:#}").contains("train-images-idx3-ubyte"),
            "{err:#}"
        );
        assert!(
            again.join("trainA").is_dir(),
            "a failed run leaves the old set in place"
        );
    }

    #[test]
    fn mnist2fashion_and_import_from_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let (mnist, fashion) = (tmp.path().join("m"), tmp.path().join("f"));
        std::fs::create_dir_all(&mnist).unwrap();
        std::fs::create_dir_all(&fashion).unwrap();
        fake_mnist(&mnist, 8, 4);
        fake_mnist(&fashion, 12, 6);
        let out = tmp.path().join("m2f");
        let w = make_mnist2fashion(&mnist, &fashion, &out, None).unwrap();
        assert_eq!(w.counts, [8, 8, 4, 4]);
        assert!(is_complete(&out));

        // --from: a folder in the layout, here one level down as a zip unpacks.
        let zip_like = tmp.path().join("unzipped");
        std::fs::create_dir_all(&zip_like).unwrap();
        std::fs::rename(&out, zip_like.join("m2f")).unwrap();
        let dest = tmp.path().join("datasets/m2f");
        let w = import_folder(&zip_like, &dest).unwrap();
        assert_eq!(w.counts, [8, 8, 4, 4]);
        assert_eq!(
            read_folder(&dest.join("testB")),
            read_folder(&zip_like.join("m2f/testB"))
        );
        // A file that is no image is named; the dataset already there stays.
        std::fs::write(zip_like.join("m2f/trainB/zz_broken.png"), b"not a png").unwrap();
        let err = import_folder(&zip_like, &dest).unwrap_err();
        assert!(format!("{err:#}").contains("zz_broken.png"), "{err:#}");
        assert!(is_complete(&dest));
        let err = import_folder(tmp.path(), &dest).unwrap_err();
        assert!(format!("{err:#}").contains("trainA"), "{err:#}");
    }

    fn png_bytes(v: u8) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        image::GrayImage::from_pixel(4, 4, image::Luma([v]))
            .write_to(&mut out, image::ImageFormat::Png)
            .unwrap();
        out.into_inner()
    }

    #[test]
    fn parquet_images_reads_both_domains_once() {
        use parquet::data_type::{ByteArray, ByteArrayType};
        use parquet::file::properties::WriterProperties;
        use parquet::file::writer::SerializedFileWriter;
        use std::sync::Arc;
        // The hub's layout: one row per index up to the larger domain, the smaller one padded
        // by repeating its images; a label column to ignore.
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("train.parquet");
        let schema = parquet::schema::parser::parse_message_type(
            "message schema { required group imageA { required binary bytes; } \
             required group imageB { required binary bytes; } required binary label; }",
        )
        .unwrap();
        let file = std::fs::File::create(&path).unwrap();
        let props = Arc::new(WriterProperties::builder().build());
        let mut writer = SerializedFileWriter::new(file, Arc::new(schema), props).unwrap();
        let mut rg = writer.next_row_group().unwrap();
        let columns = [
            vec![png_bytes(1), png_bytes(2), png_bytes(1)],
            vec![png_bytes(10), png_bytes(20), png_bytes(30)],
            vec![b"x".to_vec(), b"y".to_vec(), b"z".to_vec()],
        ];
        for values in &columns {
            let mut col = rg.next_column().unwrap().expect("a column");
            let values: Vec<ByteArray> =
                values.iter().map(|v| ByteArray::from(v.clone())).collect();
            col.typed::<ByteArrayType>()
                .write_batch(&values, None, None)
                .unwrap();
            col.close().unwrap();
        }
        rg.close().unwrap();
        writer.close().unwrap();

        let [a, b] = parquet_images(&path).unwrap();
        assert_eq!(a, [png_bytes(1), png_bytes(2)]);
        assert_eq!(b, [png_bytes(10), png_bytes(20), png_bytes(30)]);
        std::fs::write(tmp.path().join("bad.parquet"), b"PAR1 nope").unwrap();
        let err = parquet_images(&tmp.path().join("bad.parquet")).unwrap_err();
        assert!(format!("{err:#}").contains("bad.parquet"), "{err:#}");
    }
}
