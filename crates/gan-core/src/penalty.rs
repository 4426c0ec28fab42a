//! The WGAN-GP gradient penalty (placeholder, filled in by its owner).
