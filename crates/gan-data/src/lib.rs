//! gan-data
