//! In-memory datasets and the trait the batch iterator reads them through.

/// A finite collection of equally shaped `f32` items, optionally labelled.
pub trait Dataset {
    /// Number of items.
    fn len(&self) -> usize;
    /// Whether the dataset holds no item.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The shape of one item, e.g. `[1, 28, 28]` for MNIST or `[2]` for a 2D point.
    fn item_shape(&self) -> &[usize];
    /// The item at `index`, as a flat slice of `item_shape().product()` values.
    fn item(&self, index: usize) -> &[f32];
    /// The label at `index`, if the dataset is labelled.
    fn label(&self, index: usize) -> Option<u32>;
}

/// Images (or any equally shaped items) held in memory as `f32`, with optional labels.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorDataset {
    shape: Vec<usize>,
    item_len: usize,
    data: Vec<f32>,
    labels: Option<Vec<u32>>,
}

impl TensorDataset {
    /// Builds a dataset from flat data; `data.len()` must be a multiple of the item size and the
    /// labels, if any, must number the items.
    pub fn new(shape: Vec<usize>, data: Vec<f32>, labels: Option<Vec<u32>>) -> crate::Result<Self> {
        let item_len: usize = shape.iter().product();
        if item_len == 0 || data.len() % item_len != 0 {
            return Err(crate::DataError::InvalidArgument(format!(
                "{} values do not make whole items of shape {shape:?}",
                data.len()
            )));
        }
        let n = data.len() / item_len;
        if let Some(l) = &labels {
            if l.len() != n {
                return Err(crate::DataError::InvalidArgument(format!(
                    "{} labels for {n} items",
                    l.len()
                )));
            }
        }
        Ok(Self {
            shape,
            item_len,
            data,
            labels,
        })
    }

    /// Builds a dataset of images from bytes, mapping 0..=255 linearly onto [-1, 1].
    pub fn from_u8_images(
        shape: Vec<usize>,
        bytes: &[u8],
        labels: Option<Vec<u32>>,
    ) -> crate::Result<Self> {
        let data = bytes.iter().map(|&b| b as f32 / 127.5 - 1.0).collect();
        Self::new(shape, data, labels)
    }

    /// All items, flat.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// All labels, if any.
    pub fn labels(&self) -> Option<&[u32]> {
        self.labels.as_deref()
    }

    /// The mean item (e.g. the mean image), flat.
    pub fn mean_item(&self) -> Vec<f32> {
        let n = self.len().max(1);
        let mut acc = vec![0f64; self.item_len];
        for item in self.data.chunks_exact(self.item_len) {
            for (a, &v) in acc.iter_mut().zip(item) {
                *a += v as f64;
            }
        }
        acc.into_iter().map(|a| (a / n as f64) as f32).collect()
    }

    /// A new dataset holding the items at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Self {
        let mut data = Vec::with_capacity(indices.len() * self.item_len);
        for &i in indices {
            data.extend_from_slice(self.item(i));
        }
        let labels = self
            .labels
            .as_ref()
            .map(|l| indices.iter().map(|&i| l[i]).collect());
        Self {
            shape: self.shape.clone(),
            item_len: self.item_len,
            data,
            labels,
        }
    }
}

impl Dataset for TensorDataset {
    fn len(&self) -> usize {
        self.data.len() / self.item_len
    }

    fn item_shape(&self) -> &[usize] {
        &self.shape
    }

    fn item(&self, index: usize) -> &[f32] {
        &self.data[index * self.item_len..(index + 1) * self.item_len]
    }

    fn label(&self, index: usize) -> Option<u32> {
        self.labels.as_ref().map(|l| l[index])
    }
}
