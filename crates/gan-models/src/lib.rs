//! gan-models
