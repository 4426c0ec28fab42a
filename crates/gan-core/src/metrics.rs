//! Sample-quality metrics (placeholder, filled in by its owner).
