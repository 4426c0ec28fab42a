//! Image folders and CycleGAN's unpaired layout.

use gan_data::{DataError, Dataset, ImageFolder, ImageFolderConfig, Split, Unpaired};

fn write_png(path: &std::path::Path, w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb(f(x, y)));
    img.save(path).unwrap();
}

#[test]
fn resize_and_center_crop() {
    let dir = tempfile::tempdir().unwrap();
    // 8 wide, 4 high: left half black, right half white, a red column in the middle.
    write_png(&dir.path().join("a.png"), 8, 4, |x, _| {
        if x < 4 {
            [0, 0, 0]
        } else {
            [255, 255, 255]
        }
    });
    let ds = ImageFolder::load(
        dir.path(),
        ImageFolderConfig {
            size: 4,
            channels: 3,
        },
    )
    .unwrap();
    assert_eq!(ds.len(), 1);
    assert_eq!(ds.item_shape(), &[3, 4, 4]);
    let item = ds.item(0);
    // Center crop keeps columns 2..6: two black then two white, all channels.
    for c in 0..3 {
        for y in 0..4 {
            let row = &item[c * 16 + y * 4..c * 16 + y * 4 + 4];
            assert_eq!(row, &[-1.0, -1.0, 1.0, 1.0]);
        }
    }
    let gray = ImageFolder::load(
        dir.path(),
        ImageFolderConfig {
            size: 2,
            channels: 1,
        },
    )
    .unwrap();
    assert_eq!(gray.item_shape(), &[1, 2, 2]);
    assert!(gray.data().iter().all(|v| (-1.0..=1.0).contains(v)));
}

#[test]
fn empty_folder_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "no images here").unwrap();
    let err = ImageFolder::load(
        dir.path(),
        ImageFolderConfig {
            size: 8,
            channels: 3,
        },
    )
    .unwrap_err();
    assert!(matches!(err, DataError::EmptyFolder { .. }), "{err:?}");
    assert!(err.to_string().contains(&dir.path().display().to_string()));
}

#[test]
fn text_file_named_png_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    write_png(&dir.path().join("good.png"), 4, 4, |_, _| [1, 2, 3]);
    std::fs::write(dir.path().join("fake.png"), "this is text, not a PNG").unwrap();
    let err = ImageFolder::load(
        dir.path(),
        ImageFolderConfig {
            size: 4,
            channels: 3,
        },
    )
    .unwrap_err();
    assert!(matches!(err, DataError::BadImage { .. }), "{err:?}");
    assert!(err.to_string().contains("fake.png"), "{err}");
}

#[test]
fn unpaired_layout() {
    let root = tempfile::tempdir().unwrap();
    for (sub, n) in [("trainA", 3), ("trainB", 2), ("testA", 1), ("testB", 1)] {
        let d = root.path().join(sub);
        std::fs::create_dir(&d).unwrap();
        for i in 0..n {
            write_png(&d.join(format!("{i}.png")), 6, 6, |x, y| {
                [(x * 40) as u8, (y * 40) as u8, 0]
            });
        }
    }
    let cfg = ImageFolderConfig {
        size: 4,
        channels: 3,
    };
    let train = Unpaired::load(root.path(), Split::Train, cfg).unwrap();
    assert_eq!((train.a.len(), train.b.len()), (3, 2));
    let test = Unpaired::load(root.path(), Split::Test, cfg).unwrap();
    assert_eq!((test.a.len(), test.b.len()), (1, 1));
    std::fs::remove_file(root.path().join("testB/0.png")).unwrap();
    let err = Unpaired::load(root.path(), Split::Test, cfg).unwrap_err();
    assert!(err.to_string().contains("testB"), "{err}");
}
