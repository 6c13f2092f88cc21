//! lincheck: a linearizability checker for test histories (skeleton).

#![deny(missing_docs)]
