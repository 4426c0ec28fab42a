//! Image folders as PyTorch users lay them out: files that are not data, torchvision's
//! `ImageFolder` class subfolders, channels picked from the images, and errors that speak of
//! folders.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use gan_data::image_folder::{list_images, not_data_reason};
use gan_data::{
    detect_channels, DataError, Dataset, ImageFolder, ImageFolderConfig, ImageLayout, ImageSource,
    Split, Unpaired,
};

const RGB4: ImageFolderConfig = ImageFolderConfig {
    size: 4,
    channels: 3,
};

/// A 4×4 grayscale PNG filled with `v`.
fn gray_png(path: &Path, v: u8) {
    image::GrayImage::from_pixel(4, 4, image::Luma([v]))
        .save(path)
        .unwrap();
}

/// A 4×4 RGB PNG filled with `rgb`.
fn rgb_png(path: &Path, rgb: [u8; 3]) {
    image::RgbImage::from_pixel(4, 4, image::Rgb(rgb))
        .save(path)
        .unwrap();
}

fn mkdir(path: &Path) -> PathBuf {
    std::fs::create_dir_all(path).unwrap();
    path.to_path_buf()
}

/// What macOS leaves next to `img_000.png` on a non-Apple disk: 4 KiB of metadata.
fn apple_double(path: &Path) {
    let mut bytes = vec![0u8; 4096];
    bytes[..4].copy_from_slice(&[0x00, 0x05, 0x16, 0x07]);
    std::fs::write(path, bytes).unwrap();
}

/// Runs `f` with a subscriber that records debug lines, and returns them.
fn debug_lines(f: impl FnOnce()) -> String {
    #[derive(Clone)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf(Arc::default());
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let out = buf.0.lock().unwrap().clone();
    String::from_utf8(out).unwrap()
}

/// A folder of two PNGs with the files macOS, Windows and Jupyter leave around.
fn folder_with_litter(dir: &Path) {
    gray_png(&dir.join("img_000.png"), 0);
    gray_png(&dir.join("img_001.png"), 255);
    apple_double(&dir.join("._img_000.png"));
    apple_double(&dir.join("._img_001.png"));
    std::fs::write(dir.join(".DS_Store"), [0u8; 64]).unwrap();
    std::fs::write(dir.join("Thumbs.db"), [0u8; 64]).unwrap();
    std::fs::write(dir.join("desktop.ini"), "[.ShellClassInfo]").unwrap();
    apple_double(&mkdir(&dir.join("__MACOSX")).join("._img_000.png"));
    gray_png(
        &mkdir(&dir.join(".ipynb_checkpoints")).join("img_000.png"),
        9,
    );
    gray_png(&mkdir(&dir.join(".hidden")).join("x.png"), 9);
}

#[test]
fn files_that_are_not_data_are_skipped_with_a_debug_line() {
    let dir = tempfile::tempdir().unwrap();
    folder_with_litter(dir.path());
    let mut loaded = None;
    let log = debug_lines(|| loaded = Some(ImageFolder::open(dir.path(), 4, Some(1)).unwrap()));
    let folder = loaded.unwrap();
    assert_eq!(folder.dataset().len(), 2);
    assert_eq!(folder.dataset().labels(), None);
    assert!(folder.classes().is_empty());
    assert_eq!(
        folder.files(),
        [
            dir.path().join("img_000.png"),
            dir.path().join("img_001.png")
        ]
    );
    assert_eq!(folder.dataset().item(0), &[-1.0; 16]);
    assert_eq!(folder.dataset().item(1), &[1.0; 16]);
    for name in [
        "._img_000.png",
        "._img_001.png",
        ".DS_Store",
        "Thumbs.db",
        "desktop.ini",
        "__MACOSX",
        ".ipynb_checkpoints",
        ".hidden",
    ] {
        let line = log
            .lines()
            .find(|l| l.contains(&format!("{}", dir.path().join(name).display())))
            .unwrap_or_else(|| panic!("no debug line for {name}:\n{log}"));
        assert!(
            line.contains("DEBUG") && line.contains("skipped: not data"),
            "{line}"
        );
    }
    assert!(log.contains("macOS AppleDouble metadata"), "{log}");
    // The flat listing and the plain loader skip them too.
    assert_eq!(list_images(dir.path()).unwrap().len(), 2);
    assert_eq!(ImageFolder::load(dir.path(), RGB4).unwrap().len(), 2);
}

#[test]
fn names_that_are_not_data() {
    for name in [
        "._img_000.png",
        ".DS_Store",
        "__MACOSX",
        "__macosx",
        ".ipynb_checkpoints",
        "Thumbs.db",
        "thumbs.db",
        "desktop.ini",
        "Desktop.ini",
        "$RECYCLE.BIN",
        "System Volume Information",
        "@eaDir",
        "lost+found",
        ".git",
    ] {
        assert!(not_data_reason(name).is_some(), "{name}");
    }
    for name in [
        "img_000.png",
        "cat",
        "_a.png",
        "a.b.png",
        "MACOSX",
        "thumbs.png",
    ] {
        assert_eq!(not_data_reason(name), None, "{name}");
    }
}

#[test]
fn unpaired_folders_skip_what_is_not_data() {
    let root = tempfile::tempdir().unwrap();
    for (sub, n) in [("trainA", 3), ("trainB", 2)] {
        let d = mkdir(&root.path().join(sub));
        for i in 0..n {
            rgb_png(&d.join(format!("{i}.png")), [10, 20, 30]);
            apple_double(&d.join(format!("._{i}.png")));
        }
        std::fs::write(d.join(".DS_Store"), [0u8; 8]).unwrap();
        apple_double(&mkdir(&d.join("__MACOSX")).join("._0.png"));
    }
    mkdir(&root.path().join("__MACOSX"));
    let train = Unpaired::load(root.path(), Split::Train, RGB4).unwrap();
    assert_eq!((train.a.len(), train.b.len()), (3, 2));
    // Channels picked from both folders: RGB.
    let auto = Unpaired::open(root.path(), Split::Train, 4, None).unwrap();
    assert_eq!(auto.a.item_shape(), &[3, 4, 4]);
    assert_eq!(auto.b.item_shape(), &[3, 4, 4]);
}

#[test]
fn unpaired_missing_folders_are_named() {
    let root = tempfile::tempdir().unwrap();
    let gone = root.path().join("nowhere");
    let err = Unpaired::load(&gone, Split::Test, RGB4).unwrap_err();
    assert!(matches!(err, DataError::FolderNotFound { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("{}: folder not found", gone.display())
    );
    mkdir(&root.path().join("testA"));
    gray_png(&root.path().join("testA/0.png"), 1);
    let err = Unpaired::load(root.path(), Split::Test, RGB4).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{}: folder not found", root.path().join("testB").display())
    );
}

#[test]
fn every_unreadable_image_is_listed_up_to_ten() {
    let dir = tempfile::tempdir().unwrap();
    rgb_png(&dir.path().join("good.png"), [1, 2, 3]);
    std::fs::write(dir.path().join("bad_a.png"), "not a png").unwrap();
    std::fs::write(dir.path().join("bad_b.jpg"), "not a jpeg").unwrap();
    let err = ImageFolder::load(dir.path(), RGB4).unwrap_err();
    let DataError::BadImages { total, errors } = &err else {
        panic!("{err:?}")
    };
    assert_eq!((*total, errors.len()), (3, 2));
    let msg = err.to_string();
    assert!(msg.starts_with("2 of 3 images cannot be read:"), "{msg}");
    for name in ["bad_a.png", "bad_b.jpg"] {
        assert!(
            msg.contains(&format!(
                "{}: cannot decode image",
                dir.path().join(name).display()
            )),
            "{msg}"
        );
    }
    assert!(!msg.contains("good.png"), "{msg}");
    assert!(!msg.contains("more"), "{msg}");

    for i in 2..12 {
        std::fs::write(dir.path().join(format!("bad_{i:02}.png")), "text").unwrap();
    }
    let err = ImageFolder::load(dir.path(), RGB4).unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("12 of 13 images cannot be read:"), "{msg}");
    assert_eq!(msg.matches("cannot decode image").count(), 10, "{msg}");
    assert!(msg.ends_with("\n  and 2 more"), "{msg}");
    // Channel detection reads every header and lists the failures the same way.
    let err = detect_channels(dir.path()).unwrap_err();
    assert!(err.to_string().starts_with("12 of 13 images"), "{err}");
}

/// `root/bird/0.png`, `root/cat/{0.png, nested/1.png}`, `root/dog/{0,1,2}.png`, each class
/// in its own gray level; created in an unsorted order.
fn class_folders(root: &Path) {
    for (class, level, files) in [
        ("dog", 200u8, &["2.png", "0.png", "1.png"][..]),
        ("bird", 0, &["0.png"][..]),
        ("cat", 100, &["nested/1.png", "0.png"][..]),
    ] {
        for f in files {
            let p = root.join(class).join(f);
            mkdir(p.parent().unwrap());
            gray_png(&p, level);
        }
        apple_double(&root.join(class).join("._0.png"));
        std::fs::write(root.join(class).join("notes.txt"), "photos").unwrap();
    }
    std::fs::write(root.join(".DS_Store"), [0u8; 8]).unwrap();
    apple_double(&mkdir(&root.join("__MACOSX")).join("._bird"));
}

#[test]
fn class_subfolders_give_labels_and_class_names() {
    let root = tempfile::tempdir().unwrap();
    class_folders(root.path());
    let folder = ImageFolder::open(root.path(), 4, Some(1)).unwrap();
    assert_eq!(folder.classes(), ["bird", "cat", "dog"]);
    let ds = folder.dataset();
    assert_eq!(ds.len(), 6);
    assert_eq!(ds.labels(), Some(&[0, 1, 1, 2, 2, 2][..]));
    let rel: Vec<_> = folder
        .files()
        .iter()
        .map(|f| f.strip_prefix(root.path()).unwrap().to_path_buf())
        .collect();
    let expected: Vec<PathBuf> = [
        "bird/0.png",
        "cat/0.png",
        "cat/nested/1.png",
        "dog/0.png",
        "dog/1.png",
        "dog/2.png",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    assert_eq!(rel, expected);
    for (i, level) in [0u8, 100, 100, 200, 200, 200].into_iter().enumerate() {
        let v = level as f32 / 127.5 - 1.0;
        assert_eq!(ds.item(i), &[v; 16], "item {i}");
    }
    // The plain loader returns the same labelled dataset.
    let plain = ImageFolder::load(
        root.path(),
        ImageFolderConfig {
            size: 4,
            channels: 1,
        },
    )
    .unwrap();
    assert_eq!(&plain, ds);
    // As does `--data PATH`, with the class names for a conditional model's config.
    let src = ImageSource::resolve(Some(&root.path().to_string_lossy()), Path::new(".")).unwrap();
    assert!(!src.idx);
    assert_eq!(src.class_names().unwrap(), ["bird", "cat", "dog"]);
    assert_eq!(src.load_train(4, 1).unwrap(), plain);
    assert_eq!(src.load_train_with(4, None).unwrap(), plain);
    let ImageLayout::Classes { classes } = ImageLayout::read(root.path()).unwrap() else {
        panic!("not the class layout")
    };
    let counts: Vec<_> = classes
        .iter()
        .map(|c| (c.name.as_str(), c.files.len()))
        .collect();
    assert_eq!(counts, [("bird", 1), ("cat", 2), ("dog", 3)]);
}

#[test]
fn loose_images_stay_unlabelled() {
    let dir = tempfile::tempdir().unwrap();
    gray_png(&dir.path().join("b.png"), 0);
    gray_png(&dir.path().join("a.png"), 255);
    let src = ImageSource::resolve(Some(&dir.path().to_string_lossy()), Path::new(".")).unwrap();
    assert_eq!(src.class_names().unwrap(), Vec::<String>::new());
    let ds = src.load_train(4, 1).unwrap();
    assert_eq!((ds.len(), ds.labels()), (2, None));
    assert_eq!(ds.item(0), &[1.0; 16], "sorted: a.png first");
}

#[test]
fn images_and_subfolders_together_are_an_error() {
    let root = tempfile::tempdir().unwrap();
    class_folders(root.path());
    gray_png(&root.path().join("stray.png"), 3);
    let err = ImageFolder::load(root.path(), RGB4).unwrap_err();
    assert!(
        matches!(err, DataError::MixedFolder { images: 1, .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "{}: holds both images (1, e.g. stray.png) and subfolders (bird, cat, dog): put \
             every image in a class subfolder for a labelled set, or move the subfolders out \
             for an unlabelled one",
            root.path().display()
        )
    );
}

#[test]
fn class_subfolders_without_images_are_named() {
    let root = tempfile::tempdir().unwrap();
    class_folders(root.path());
    mkdir(&root.path().join("empty"));
    let fish = mkdir(&root.path().join("fish"));
    std::fs::write(fish.join("readme.txt"), "soon").unwrap();
    apple_double(&fish.join("._0.png"));
    mkdir(&fish.join("later"));
    let err = ImageFolder::open(root.path(), 4, None).unwrap_err();
    let DataError::EmptyClasses { path, empty } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(path, root.path());
    assert_eq!(
        empty.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["empty", "fish"]
    );
    assert_eq!(
        err.to_string(),
        format!(
            "{}: 2 class subfolders without images (PNG/JPEG): empty (found nothing), fish \
             (found 1 subfolder (searched): later; 1 other file: readme.txt; 1 skipped as not \
             data: ._0.png)",
            root.path().display()
        )
    );
}

#[test]
fn empty_folders_say_what_they_hold() {
    let dir = tempfile::tempdir().unwrap();
    let err = ImageFolder::load(dir.path(), RGB4).unwrap_err();
    assert!(matches!(err, DataError::EmptyFolder { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: holds no images (PNG/JPEG); found nothing",
            dir.path().display()
        )
    );
    apple_double(&dir.path().join("._a.png"));
    std::fs::write(dir.path().join("a.gif"), "GIF89a").unwrap();
    let err = ImageFolder::load(dir.path(), RGB4).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: holds no images (PNG/JPEG); found 1 other file: a.gif; 1 skipped as not data: \
             ._a.png",
            dir.path().display()
        )
    );
    // The flat listing does not search subfolders, and says so.
    let root = tempfile::tempdir().unwrap();
    class_folders(root.path());
    let err = list_images(root.path()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: holds no images (PNG/JPEG); found 3 subfolders (not searched): bird, cat, dog; \
             2 skipped as not data: .DS_Store, __MACOSX",
            root.path().display()
        )
    );
}

#[test]
fn channels_come_from_the_images() {
    let dir = tempfile::tempdir().unwrap();
    let gray = mkdir(&dir.path().join("gray"));
    gray_png(&gray.join("a.png"), 10);
    image::GrayAlphaImage::from_pixel(4, 4, image::LumaA([10, 128]))
        .save(gray.join("b.png"))
        .unwrap();
    image::GrayImage::from_pixel(4, 4, image::Luma([50]))
        .save(gray.join("c.jpg"))
        .unwrap();
    assert_eq!(detect_channels(&gray).unwrap(), 1);
    let folder = ImageFolder::open(&gray, 4, None).unwrap();
    assert_eq!(
        (folder.channels(), folder.dataset().item_shape()),
        (1, &[1, 4, 4][..])
    );

    let mixed = mkdir(&dir.path().join("mixed"));
    gray_png(&mixed.join("a.png"), 10);
    rgb_png(&mixed.join("b.png"), [10, 10, 10]);
    assert_eq!(detect_channels(&mixed).unwrap(), 3);
    assert_eq!(ImageFolder::open(&mixed, 4, None).unwrap().channels(), 3);

    let rgba = mkdir(&dir.path().join("rgba"));
    image::RgbaImage::from_pixel(4, 4, image::Rgba([1, 2, 3, 4]))
        .save(rgba.join("a.png"))
        .unwrap();
    assert_eq!(detect_channels(&rgba).unwrap(), 3);

    // Across class subfolders, and through `ImageSource`.
    let classes = mkdir(&dir.path().join("classes"));
    class_folders(&classes);
    assert_eq!(detect_channels(&classes).unwrap(), 1);
    let src = ImageSource::resolve(Some(&classes.to_string_lossy()), Path::new(".")).unwrap();
    assert_eq!(src.detect_channels().unwrap(), 1);
    rgb_png(&classes.join("cat/red.png"), [255, 0, 0]);
    assert_eq!(src.detect_channels().unwrap(), 3);
    assert_eq!(
        src.load_train_with(4, None).unwrap().item_shape(),
        &[3, 4, 4]
    );
    // A given channel count wins.
    assert_eq!(src.load_train(4, 1).unwrap().item_shape(), &[1, 4, 4]);
}

#[test]
fn idx_sources_have_one_channel_and_digit_classes() {
    common::require(common::datasets_dir().join("mnist-mini"), "it is committed");
    let src = ImageSource::resolve(Some("mnist-mini"), &common::datasets_dir()).unwrap();
    assert_eq!(src.detect_channels().unwrap(), 1);
    let digits: Vec<String> = (0..10).map(|d| d.to_string()).collect();
    assert_eq!(src.class_names().unwrap(), digits);
}

#[test]
fn folder_errors_speak_of_folders() {
    let dir = tempfile::tempdir().unwrap();
    let gone = dir.path().join("no-such-folder");
    let err = ImageSource::resolve(Some(&gone.to_string_lossy()), dir.path()).unwrap_err();
    assert!(matches!(err, DataError::FolderNotFound { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("{}: folder not found", gone.display())
    );
    assert!(!err.to_string().contains(".gz"));
    // A bare word that is no folder is probably a misspelt dataset name.
    let err = ImageSource::resolve(Some("mnsit"), dir.path()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "mnsit: folder not found (known dataset names: mnist, fashion-mnist, mnist-mini)"
    );
    let file = dir.path().join("img.png");
    gray_png(&file, 0);
    let err = ImageSource::resolve(Some(&file.to_string_lossy()), dir.path()).unwrap_err();
    assert!(matches!(err, DataError::NotAFolder { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: is a file, not a folder (give the folder that holds the images or the IDX files)",
            file.display()
        )
    );
    // The loaders themselves say the same.
    for err in [
        ImageFolder::load(&gone, RGB4).unwrap_err(),
        list_images(&gone).unwrap_err(),
        detect_channels(&gone).unwrap_err(),
    ] {
        assert_eq!(
            err.to_string(),
            format!("{}: folder not found", gone.display())
        );
    }
    let err = ImageFolder::load(&file, RGB4).unwrap_err();
    assert!(matches!(err, DataError::NotAFolder { .. }), "{err:?}");
}

#[test]
fn named_datasets_say_how_to_get_them() {
    let datasets = tempfile::tempdir().unwrap();
    let err = ImageSource::resolve(Some("mnist"), datasets.path()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "mnist: dataset not found in {}: the folder does not exist (run `cargo xtask \
             fetch-mnist`)",
            datasets.path().join("mnist").display()
        )
    );
    let mnist = mkdir(&datasets.path().join("mnist"));
    std::fs::write(mnist.join("train-images-idx3-ubyte.gz"), "").unwrap();
    std::fs::write(mnist.join("t10k-images-idx3-ubyte"), "").unwrap();
    let err = ImageSource::resolve(Some("mnist"), datasets.path()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "mnist: dataset not found in {}: missing train-labels-idx1-ubyte, \
             t10k-labels-idx1-ubyte, raw or .gz (run `cargo xtask fetch-mnist`)",
            mnist.display()
        )
    );
}

#[test]
fn bad_sizes_and_channels_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    gray_png(&dir.path().join("a.png"), 0);
    for (size, channels) in [(0, Some(3)), (100_000, None), (4, Some(2)), (4, Some(0))] {
        let err = ImageFolder::open(dir.path(), size, channels).unwrap_err();
        assert!(matches!(err, DataError::InvalidArgument(_)), "{err:?}");
    }
}
