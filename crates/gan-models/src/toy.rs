//! The 2D toy GAN (placeholder, filled in by its owner).
